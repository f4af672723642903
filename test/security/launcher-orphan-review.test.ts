// orphan38, as a task that wants to outlive its engine: the engine is killed -9 while its workers
// start, or while they run, and nothing of the job's uid may be left. Each process of the launch
// chain (setpriv, prlimit, bubblewrap's two halves) gets its parent-death signal some time after its
// fork: one whose parent died before that lived on, and bubblewrap's sandboxed half, whose outer half
// was killed before it signalled it, waited forever (pid 1 of its namespace, deaf to SIGTERM). The
// engine's launcher now kills every process of its tasks' job uids as the engine goes.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { rm, } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAUNCHER_OPTIONS, launcherArgv } from '../../src/compute/runners/index.js';
import { detectIsolation, type Isolation, killUidProcesses, parseUidRange, prepareJobArea, type TaskLimits, taskLaunch, UidPool } from '../../src/compute/sandbox/index.js';
import { launcherPlace } from '../support/launcher-place.js';
import { describeProcess, liveProcesses, type UidProcess } from '../support/uid-processes.js';
import { until } from '../support/until.js';

const ROOT = process.getuid?.() === 0;
const BWRAP = existsSync('/usr/bin/bwrap');
const UIDS = '234200-234249'; // no other suite's (engine-spares 2340xx, launcher-review 2341xx)
const LIMITS: TaskLimits = { memoryMb: 512, addressSpace: true, maxFileBytes: 64 * 1024 * 1024 };
const WORKERS = 4; // a job's workers (or the spares) starting together

let base = '';
let stagingRoot = '';
let runtimeDir = '';
const pool = new UidPool(parseUidRange(UIDS));
const usedUids = new Set<number>();

beforeAll(async () => {
  if (!ROOT) return;
  ({ base, stagingRoot, runtimeDir } = await launcherPlace('gh-launcher-orphan-', UIDS, 'id\n1\n'));
});

afterAll(async () => {
  for (const uid of usedUids) await killUidProcesses(uid);
  if (base) await rm(base, { recursive: true, force: true });
});

/**
 * A stand-in engine: a node process that starts the launcher as the engine does and asks it for
 * `launches`. With `killAtSpawn` it kills itself -9 as the launcher reports the first one forked (its
 * chain at its very start); otherwise the test kills it.
 */
function standInEngine(launches: object[], killAtSpawn: boolean) {
  const argv = launcherArgv(ROOT ? '/usr/bin/setpriv' : null);
  const code = `const {spawn} = require('node:child_process');
const l = spawn(${JSON.stringify(argv[0])}, ${JSON.stringify(argv.slice(1))}, ${JSON.stringify(LAUNCHER_OPTIONS)});
l.stderr.pipe(process.stderr);
l.on('message', (m) => { if (m.op === 'spawned' && ${killAtSpawn}) process.kill(process.pid, 'SIGKILL'); });
${JSON.stringify(launches)}.forEach((launch, i) => l.send({ op: 'spawn', id: i + 1, file: launch.file, args: launch.args, env: launch.env, cwd: launch.cwd, uid: launch.taskUid }));
setInterval(() => {}, 1000);`;
  const engine = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => engine.once('exit', () => resolve()));
  return { engine, exited };
}

const modes: [string, () => Promise<Isolation>][] = [
  ['namespaces (no bubblewrap)', () => detectIsolation({ mode: 'none', taskUids: UIDS })],
  ...(BWRAP ? ([['bubblewrap', () => detectIsolation({ mode: 'bwrap', taskUids: UIDS })]] as [string, () => Promise<Isolation>][]) : []),
];

describe.skipIf(!ROOT)('the engine killed -9 leaves no process of its job uids', () => {
  for (const [mode, isolation] of modes) {
    for (const moment of ['as its workers start', 'while its workers run'] as const) {
      it(`${mode}: ${moment}`, async () => {
        const iso = await isolation();
        const jobId = `orphan-${mode.slice(0, 4)}-${moment.startsWith('as') ? 'start' : 'run'}`;
        const uid = pool.take(jobId);
        usedUids.add(uid);
        const area = await prepareJobArea(iso, { stagingRoot, jobId, uid, inputs: [] });
        // Each worker marks itself ready in its job's work folder ($HOME), then waits on a child.
        const launch = taskLaunch(iso, area, runtimeDir, ['/bin/sh', '-c', 'sleep 300 & touch "$HOME/ready-$(cat /proc/sys/kernel/random/uuid)"; wait'], LIMITS);
        expect(launch.taskUid).toBe(uid);
        const { engine, exited } = standInEngine(Array.from({ length: WORKERS }, () => launch), moment === 'as its workers start');
        if (moment === 'while its workers run') {
          await until(() => (readdirSync(area.work).filter((f) => f.startsWith('ready-')).length === WORKERS ? true : undefined), 30_000, 'every worker running');
          engine.kill('SIGKILL');
        }
        await exited;
        let left: UidProcess[] = [];
        await until(async () => ((left = await liveProcesses(uid)).length === 0 ? true : undefined), 15_000, () => `every process of uid ${uid} gone with the engine (left: ${left.map(describeProcess).join('; ')})`);
      }, 60_000);
    }
  }
});
