// Processes of the task uid range that no job of this engine started: what a dead engine left. An
// engine killed together with its launcher (one process group SIGKILL, the OOM killer) leaves
// running whatever of its launch chains had not yet set its parent-death signal; such a process
// shares its uid with the next job given it (files on a shared file system, the per-uid process limit).
// The engine ends them all as it opens, before it restores or gives any uid: one engine per range.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { UidRange } from './uid-range.js';
import { killUidProcesses } from './uids.js';

// A kill runs `kill -KILL -1` twice as the uid; a fork bomb racing it may need another round.
const ROUNDS = 4;

// How long the name service may take to say whether a uid is an account's (a directory's may be slow).
const ACCOUNT_LOOKUP_MS = 5000;

/**
 * Kills every process whose real, effective, saved or file-system uid lies in `range`, then looks
 * again. Returns the uids some live process still holds after every round (one `kill -1` as the uid
 * cannot reach: a process of root's made to act as it), which no job may be given. A uid the name
 * service knows as an account (a directory's, which the range check at start-up cannot see) is not
 * a dead engine's: its processes are a person's, never killed, and the uid is returned too.
 */
export async function killRangeLeftovers(range: UidRange): Promise<number[]> {
  const found = uidsWithProcesses(range);
  const accounts = new Set<number>();
  for (const uid of found) if (await isAccount(uid)) accounts.add(uid);
  let held = found.filter((uid) => !accounts.has(uid));
  for (let round = 0; round < ROUNDS && held.length > 0; round++) {
    await Promise.all(held.map((uid) => killUidProcesses(uid)));
    held = uidsWithProcesses(range).filter((uid) => !accounts.has(uid));
  }
  return [...held, ...accounts].sort((a, b) => a - b);
}

/**
 * Whether the name service (getent passwd, so LDAP/SSSD too) names `uid`. Not known (no getent): no.
 * No answer in time: yes, so a person's processes are not killed and the uid is given to no job.
 */
function isAccount(uid: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('getent', ['passwd', String(uid)], { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' }, timeout: ACCOUNT_LOOKUP_MS });
    child.on('error', () => resolve(false));
    child.on('close', (code, signal) => resolve(signal !== null || code === 0));
  });
}

/**
 * The uids of `range` a live (not zombie) process has, read from /proc, lowest first: a process
 * whose first thread ended counts while any thread of it runs. Synchronous: a
 * few ms for a couple of hundred processes where a read each through the thread pool took 20-300 ms
 * under load; it runs as the engine opens, when nothing else waits on its thread.
 */
export function uidsWithProcesses(range: UidRange): number[] {
  const found = new Set<number>();
  const inRange = (n: number): boolean => n >= range.first && n <= range.last;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = statusOf(`/proc/${entry}`);
    if (status === null) continue;
    // /proc lists a process by its first thread, which shows Z once it has ended while other threads
    // run on (pthread_exit in main): a process, not a zombie, unless none of its threads runs.
    const running = dead(status) ? runningThreads(entry) : [status];
    for (const s of running) {
      const uids = /^Uid:\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(s)?.slice(1).map(Number) ?? [];
      for (const uid of uids) if (inRange(uid)) found.add(uid);
    }
  }
  return [...found].sort((a, b) => a - b);
}

const dead = (status: string): boolean => /^State:\s*[ZX]/m.test(status);

/** The status of each thread of `pid` that still runs. */
function runningThreads(pid: string): string[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // gone meanwhile
  }
  return tids.map((tid) => statusOf(`/proc/${pid}/task/${tid}`)).filter((s): s is string => s !== null && !dead(s));
}

function statusOf(dir: string): string | null {
  try {
    return readFileSync(`${dir}/status`, 'latin1');
  } catch {
    return null; // gone meanwhile
  }
}
