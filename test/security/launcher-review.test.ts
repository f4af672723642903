// review37, as a task that wants to outlive its engine or reach what the engine's launcher holds. The
// engine's warm workers are started by its launcher process (runners/launcher.ts), not by the engine:
// what sandbox.test checks of a launch spawned directly must hold of one the launcher starts, in each
// mode, as root with the job's own uid: the uid and no groups, no_new_privs, the limits, no
// descriptor but its three streams and stdin, and nothing of it left once the launcher is killed -9.
import { rm, } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskLauncher, type TaskProcess } from '../../src/compute/runners/index.js';
import { detectIsolation, type Isolation, killUidProcesses, parseUidRange, prepareJobArea, type TaskLimits, taskLaunch, UidPool } from '../../src/compute/sandbox/index.js';
import { inheritedHere } from '../support/inherited-fds.js';
import { launcherPlace } from '../support/launcher-place.js';
import { describeProcess, liveProcesses } from '../support/uid-processes.js';
import { until } from '../support/until.js';

const ROOT = process.getuid?.() === 0;
const BWRAP = existsSync('/usr/bin/bwrap');
const UIDS = '234100-234149'; // no other suite's (sandbox 231xxx, engine suites 232xxx-233xxx, engine-spares 2340xx, launcher-orphan-review 2342xx, stacks 300000+): an engine kills every process of its range as it opens
const LIMITS: TaskLimits = { memoryMb: 512, addressSpace: true, maxFileBytes: 64 * 1024 * 1024 };

let base = '';
let dataRoot = '';
let stagingRoot = '';
let runtimeDir = '';
const pool = new UidPool(parseUidRange(UIDS));
const usedUids = new Set<number>();
const launchers: TaskLauncher[] = [];

function collect(task: TaskProcess): { out: () => string; err: () => string; started: Promise<void> } {
  let out = '';
  let err = '';
  const started = new Promise<void>((resolve, reject) => {
    task.once('spawn', () => {
      task.stdout!.on('data', (d: Buffer) => (out += d));
      task.stderr!.on('data', (d: Buffer) => (err += d));
      resolve();
    });
    task.once('error', reject);
  });
  return { out: () => out, err: () => err, started };
}

beforeAll(async () => {
  if (!ROOT) return;
  ({ base, dataRoot, stagingRoot, runtimeDir } = await launcherPlace('gh-launcher-review-', UIDS, 'id,word\n1,one\n'));
});

afterAll(async () => {
  for (const uid of usedUids) await killUidProcesses(uid);
  if (base) await rm(base, { recursive: true, force: true });
});

const SCRIPT = [
  'echo "ids $(id -u) $(id -g) [$(id -G)]"',
  'grep -E "^(NoNewPrivs|Groups):" /proc/self/status | tr "\\t" " "',
  'echo "fds $(ls /proc/self/fd | sort -n | tr "\\n" " ")"',
  'echo "nofile $(ulimit -n) core $(ulimit -c)"',
  'sleep 300 &',
  'echo "ready"',
  'wait',
].join('\n');

const modes: [string, () => Promise<Isolation>][] = [
  ['namespaces (no bubblewrap)', () => detectIsolation({ mode: 'none', taskUids: UIDS })],
  ...(BWRAP ? ([['bubblewrap', () => detectIsolation({ mode: 'bwrap', taskUids: UIDS })]] as [string, () => Promise<Isolation>][]) : []),
];

describe.skipIf(!ROOT)('a worker started by the launcher, as root with its job uid', () => {
  for (const [mode, isolation] of modes) {
    it(`${mode}: runs as the job uid with no groups, no_new_privs and its limits, holds nothing of the launcher's, and goes with it`, async () => {
      const iso = await isolation();
      const jobId = `launcher-${mode.slice(0, 4)}`;
      const uid = pool.take(jobId)!;
      usedUids.add(uid);
      const area = await prepareJobArea(iso, { stagingRoot, jobId, uid, inputs: [join(dataRoot, 'sales', 'part-00000.csv')] });
      const launcher = new TaskLauncher(iso.tools.setpriv);
      launchers.push(launcher);
      const task = launcher.start(taskLaunch(iso, area, runtimeDir, ['/bin/sh', '-c', SCRIPT], LIMITS));
      const seen = collect(task);
      await seen.started;
      await until(() => (seen.out().includes('ready\n') ? true : undefined), 15_000, () => `the task ready (stdout ${seen.out()}, stderr ${seen.err()})`);
      const out = seen.out();
      expect(out).toContain(`ids ${uid} ${uid} [${uid}]`);
      expect(out).toMatch(/NoNewPrivs: 1/);
      expect(out).toMatch(/^Groups: *$/m);
      // stdin, stdout, stderr, the channel, and ls's own listing of the folder; besides them only what
      // this test process was itself handed without close-on-exec (the engine closes those as it
      // starts, inherited-fds.ts; the test harness leaves one open here).
      const fds = /^fds (.*)$/m.exec(out)![1]!.trim().split(' ').map(Number);
      expect(fds.slice(0, 4), out).toEqual([0, 1, 2, 3]);
      expect(fds.filter((fd) => fd > 3 && !inheritedHere().includes(fd)).length, out).toBeLessThanOrEqual(1);
      expect(out).toContain('nofile 1024 core 0');
      const before = await liveProcesses(uid);
      expect(before.length).toBeGreaterThanOrEqual(2); // the shell and its sleep, at least
      process.kill(launcher.pid!, 'SIGKILL');
      let left = before;
      await until(async () => ((left = await liveProcesses(uid)).length === 0 ? true : undefined), 10_000, () => `every process of uid ${uid} gone with the launcher (left: ${left.map(describeProcess).join(', ')})`);
    });
  }
});
