// A job that runs until the test lets it end: each partition waits for a file named `go` in the
// job's work folder. It stays running as long as a test needs, on any machine, with no sleep in the test.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './until.js';

/** The job's python source: process() returns once `go` exists in its working folder. */
export const GATED = "import os, time\ndef process(i, o, ctx):\n    while not os.path.exists(os.path.join(os.getcwd(), 'go')):\n        time.sleep(0.05)\n    open(o, 'w').write(open(i).read())\n";

/**
 * Lets a GATED job end once its work folder exists (it does once the job runs), without asking the
 * engine, whose request log some tests read.
 */
export async function releaseGated(dataRoot: string, id: string, withinMs = 30_000): Promise<void> {
  const work = join(dataRoot, '.staging', id, 'work');
  await until(() => existsSync(work), withinMs, `job ${id}'s work folder`);
  writeFileSync(join(work, 'go'), '');
}
