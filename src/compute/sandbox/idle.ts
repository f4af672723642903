// A spare's workers start at nice 19 (launch.ts, TaskLimits.idle), so their start takes only CPU no one
// else wants; the job that takes them runs at the usual 0. Lowering a nice value needs root (the task
// may not, and never goes below 0): the engine does it for the whole job uid in one setpriority
// (PRIO_USER) through util-linux's renice.
import type { Isolation } from './isolation.js';
import { run } from './system-tools.js';

/** Every process of the job uid back to nice 0; null when done, else why not. */
export async function unidleUid(iso: Isolation, uid: number): Promise<string | null> {
  if (iso.tools.renice === null) return 'renice is not installed';
  const ran = await run(iso.tools.renice, ['-n', '0', '-u', String(uid)]).catch((err: Error) => ({ code: -1, output: err.message }));
  return ran.code === 0 ? null : ran.output.slice(0, 200) || `renice exited ${ran.code}`;
}
