// How long a warm Python worker takes to start in the engine's sandbox, by layer: `node
// dist/bench/worker-start.js [N] [WORKERS]` (after `npm run build`, as root for the uid switch).
// Builds one job area as the engine does, then starts WORKERS warm workers at once N times,
// measuring spawn → the runner's ready message (the runner from its source and from the .pyc the
// engine compiles at its start, alternated); the same for the bare interpreter inside the
// same launch (python3 -c pass) to separate the sandbox and interpreter from the runner's own start.
// A profiling tool, not a bench row.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { compilePythonRunner, runnerScript, runtimeArgv, WarmWorker } from '../src/compute/runners/index.js';
import { detectIsolation, installRuntime, prepareJobArea, secureDataRoot, taskLaunch, taskPaths, writeJobSource } from '../src/compute/sandbox/index.js';
import { median } from './measure.js';

const [N = 10, WORKERS = 2] = process.argv.slice(2).map(Number);
const PYTHON = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-worker-start-'));
chmodSync(dir, 0o711);
const iso = await detectIsolation({ mode: 'auto', taskUids: '394000-394099' });
mkdirSync(join(dir, 'data'));
const { stagingRoot } = await secureDataRoot(join(dir, 'data'), iso);
const runtimeDir = await installRuntime(stagingRoot, [runnerScript('python'), runnerScript('node')]);
const input = join(dir, 'p0.csv');
writeFileSync(input, 'a\n1\n');
const area = await prepareJobArea(iso, { stagingRoot, jobId: 'j1', uid: iso.root ? 394001 : null, inputs: [input] });
await writeJobSource(area, 'job.py', 'import csv\n\ndef process(i, o, ctx):\n    pass\n');
const paths = taskPaths(iso, area, runtimeDir);
const limits = { memoryMb: 512, addressSpace: true, maxFileBytes: 1 << 30 };
const argvOf = (pythonCompiled: boolean) => runtimeArgv('python', { runtimeDir: paths.runtime, source: join(paths.work, 'job.py'), entrypoint: 'process', jobId: 'j1', python: PYTHON, memoryMb: 512, node: process.execPath, pythonCompiled });
// The engine's own step at its start: python_runner.pyc beside the source (the source's row runs python_runner.py).
const compileProblem = await compilePythonRunner(PYTHON, runtimeDir, paths.runtime);
if (compileProblem !== null) throw new Error(`could not compile the runner: ${compileProblem}`);

/** stop() → the worker's process gone and its pipes drained, per warm(): what the end of every job waits for. */
const stops: number[] = [];

async function warm(pythonCompiled: boolean): Promise<number> {
  const t0 = performance.now();
  const w = WarmWorker.start(taskLaunch(iso, area, runtimeDir, argvOf(pythonCompiled), limits), () => {});
  await w.ready();
  const t = performance.now() - t0;
  const t1 = performance.now();
  await w.stop();
  stops.push(performance.now() - t1);
  return t;
}

function bare(cmd: string[]): Promise<number> {
  const launch = taskLaunch(iso, area, runtimeDir, cmd, limits);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn(launch.file, launch.args, { env: launch.env, cwd: launch.cwd, stdio: 'ignore' });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`exit ${code}`))));
  });
}

const rows: Record<string, number[]> = { true: [], 'python -c pass': [], 'python runner imports': [], 'warm worker ready (runner from source)': [], 'warm worker ready (compiled runner)': [] };
for (let k = 0; k < N!; k++) {
  const at = async (key: string, f: () => Promise<number>) => rows[key]!.push(median(await Promise.all(Array.from({ length: WORKERS! }, f))));
  await at('true', () => bare(['/usr/bin/true']));
  await at('python -c pass', () => bare([PYTHON, '-c', 'pass']));
  await at('python runner imports', () => bare([PYTHON, '-c', 'import argparse, importlib.util, json, logging, re, traceback, csv']));
  // Alternated, the first of the pair changing round by round.
  const sides = [['warm worker ready (runner from source)', false], ['warm worker ready (compiled runner)', true]] as const;
  for (const [key, compiled] of k % 2 === 0 ? sides : [...sides].reverse()) await at(key, () => warm(compiled));
}
console.log(`${iso.describe()}, ${WORKERS} at once, medians of ${N}: ${Object.entries(rows).map(([k, v]) => `${k} ${median(v).toFixed(1)} ms`).join(', ')}; a warm worker's stop() ${median(stops).toFixed(1)} ms`);
if (!process.env.SHOW_LAUNCH) rmSync(dir, { recursive: true, force: true });
if (process.env.SHOW_LAUNCH) console.log(JSON.stringify(taskLaunch(iso, area, runtimeDir, [PYTHON, '-c', 'pass'], limits)));
