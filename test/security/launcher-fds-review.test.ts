// review38 (review37's known L), as a job that wants to hold a worker, and so its uid and cores, to its
// time limit. The engine's launcher hands each worker's stdout, stderr and channel back over its IPC
// channel; an engine out of descriptors receives those messages without them. The worker then started
// with no channel: its ready was never read and it waited to the job's time limit. Made for real: this
// process's own descriptor limit lowered to what it holds while the launcher hands a worker back.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { TaskLauncher } from '../../src/compute/runners/index.js';

const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p));
const launcher = new TaskLauncher(null);

afterAll(() => {
  if (launcher.pid !== undefined) process.kill(launcher.pid, 'SIGKILL');
});

/**
 * Lowers this process's descriptor limit to its lowest free descriptor, so it can open none; the
 * returned function puts it back through a helper started before (restoring needs no descriptor here).
 */
async function outOfDescriptors(): Promise<() => Promise<void>> {
  const before = execFileSync(PRLIMIT!, ['--pid', String(process.pid), '--nofile', '--output', 'SOFT', '--noheadings'], { encoding: 'utf8' }).trim();
  const helper = spawn('/bin/sh', ['-c', `read go; exec ${PRLIMIT} --pid ${process.pid} --nofile=${before}:`], { stdio: ['pipe', 'ignore', 'inherit'] });
  await new Promise((resolve) => helper.once('spawn', resolve));
  const lowest = openSync('/dev/null', 'r');
  closeSync(lowest);
  execFileSync(PRLIMIT!, ['--pid', String(process.pid), `--nofile=${lowest}:`]);
  return async () => {
    const done = new Promise((resolve) => helper.once('exit', resolve));
    helper.stdin.end('go\n');
    await done;
  };
}

describe.runIf(PRLIMIT !== undefined)('a worker whose streams do not reach the engine (out of descriptors)', () => {
  it('fails at once with a clear error, and is stopped', async () => {
    // The launcher's own start needs descriptors: a first worker, with every descriptor there.
    const first = launcher.start({ file: '/bin/sh', args: ['-c', 'exit 0'], env: {}, cwd: '/' });
    await new Promise<void>((resolve, reject) => {
      first.once('spawn', () => resolve());
      first.once('error', reject);
    });
    for (const s of [first.stdout, first.stderr, first.channel]) s?.resume();

    let outcome: { event: 'spawn' } | { event: 'error'; message: string };
    let exited: Promise<unknown>;
    const restore = await outOfDescriptors();
    try {
      // A worker that would wait for ever: it is the engine that must end it.
      const task = launcher.start({ file: '/bin/sh', args: ['-c', 'exec sleep 600'], env: {}, cwd: '/' });
      exited = new Promise((resolve) => task.once('exit', resolve));
      outcome = await new Promise((resolve) => {
        task.once('spawn', () => resolve({ event: 'spawn' }));
        task.once('error', (err) => resolve({ event: 'error', message: err.message }));
      });
    } finally {
      await restore();
    }
    expect(outcome).toEqual({ event: 'error', message: expect.stringMatching(/could not take the worker's .*channel \(fd 3\) from its task launcher \(out of file descriptors\?\); the worker was stopped/) });
    // Stopped, not left to sleep: its exit comes from the launcher.
    await exited;
  });
});
