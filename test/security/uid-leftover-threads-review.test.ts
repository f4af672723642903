// review39, as a process a dead engine left running as a task uid that hides from the start's sweep
// (uid-leftovers.ts). /proc lists processes by their first thread; a process whose first thread
// has ended (pthread_exit in the main thread) while another runs on shows `State: Z` there, though
// it runs and holds its uid. The sweep skipped every `Z` as a zombie, so such a survivor stayed,
// its uid was not withheld, and the next job given that uid shared it (uid-leftover-review shows
// what the survivor then reads). Real processes, real /proc; the survivor is started by the test as
// the uid directly, as uid-leftover-review does.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { killRangeLeftovers, killUidProcesses } from '../../src/compute/sandbox/index.js';
import { uidsWithProcesses } from '../../src/compute/sandbox/uid-leftovers.js';
import { liveProcesses } from '../support/uid-processes.js';
import { until } from '../support/until.js';

const ROOT = process.getuid?.() === 0;
const PYTHON = '/usr/bin/python3';
// No other suite's (uid-leftover-review 234300-234331, launcher suites 2340xx-2342xx).
const RANGE = { first: 234340, last: 234341 };

// Its main thread ends, its second thread runs on as the uid (and could read whatever the uid may).
const HIDDEN = `
import ctypes, threading, time
def run():
    while True:
        time.sleep(0.05)
threading.Thread(target=run).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
`;

const status = (pid: number): string | null => {
  try {
    return readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
};
/** Threads of `pid` that still run (not zombie or dead), from /proc/<pid>/task. */
const runningThreads = (pid: number): number => {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  return tids.filter((t) => {
    try {
      return !/^State:\s*[ZX]/m.test(readFileSync(`/proc/${pid}/task/${t}/status`, 'latin1'));
    } catch {
      return false;
    }
  }).length;
};

describe.skipIf(!ROOT)("a dead engine's process whose first thread ended is still found and ended as the engine opens", () => {
  let child: ChildProcess | undefined;

  afterAll(async () => {
    child?.kill('SIGKILL');
    await killUidProcesses(RANGE.first);
  });

  it('is counted as a process of its uid, and killed before any uid is given', async () => {
    child = spawn('/usr/bin/setpriv', ['--reuid', String(RANGE.first), '--regid', String(RANGE.first), '--clear-groups', '--no-new-privs', '--', PYTHON, '-c', HIDDEN], {
      detached: true,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child!.on('exit', (code, signal) => resolve(signal ?? code)));
    await until(() => out.includes('ready'), 30_000, 'the hidden process ready');
    const pid = child.pid!;
    // What /proc's listing shows of it: a zombie, with a thread that runs as the uid.
    await until(() => /^State:\s*Z/m.test(status(pid) ?? ''), 30_000, 'its first thread ended');
    expect(runningThreads(pid)).toBe(1);
    // The suites' own look at a uid (nothing of a job outlives it) sees it too.
    expect((await liveProcesses(RANGE.first)).map((p) => p.pid)).toEqual([pid]);

    expect(uidsWithProcesses(RANGE)).toEqual([RANGE.first]);
    expect(await killRangeLeftovers(RANGE)).toEqual([]);
    expect(await exited).toBe('SIGKILL');
    expect(runningThreads(pid)).toBe(0);
    expect(await liveProcesses(RANGE.first)).toEqual([]);
  }, 60_000);
});
