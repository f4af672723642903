// Whether the user's process() runs slower inside an engine worker than outside it: `node
// dist/bench/partition-speed.js [ROUNDS] [PARTITIONS] [ROWS] [WORKERS]` (after `npm run build`, as root for the
// uid switch). The same examples/normalize_words.py over the same partitions, one partition at a time
// per worker, WORKERS workers at once (default 1: none on the other core), three ways per round, in turn:
//   sandbox  the engine's warm worker as the engine starts it (setpriv, prlimit, bubblewrap, its env)
//   plain    the same runner and protocol, started as a plain root process (no setpriv, prlimit, bwrap)
//   baseline bench/engine/one_process.py (pool.py for several workers): process() as Pool's workers call it
// and prints the sum of the partitions' seconds for each (the runner's own figure: process() and the
// count of the output's rows; the baseline's: process() alone). A profiling tool, not a bench row.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runnerScript, runtimeArgv, type TaskResult, WarmWorker } from '../src/compute/runners/index.js';
import { detectIsolation, installRuntime, prepareJobArea, secureDataRoot, taskLaunch, taskPaths, writeJobSource } from '../src/compute/sandbox/index.js';
import { PACKAGE_ROOT } from '../src/version.js';
import { median } from './measure.js';

const [ROUNDS = 5, PARTITIONS = 16, ROWS = 50_000, WORKERS = 1] = process.argv.slice(2).map(Number);
const PYTHON = '/usr/bin/python3';
const EXAMPLE = join(PACKAGE_ROOT, 'examples', 'normalize_words.py');

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-partition-speed-'));
chmodSync(dir, 0o711);
const iso = await detectIsolation({ mode: 'auto', taskUids: '395000-395099' });
mkdirSync(join(dir, 'data'));
const { stagingRoot } = await secureDataRoot(join(dir, 'data'), iso);
const runtimeDir = await installRuntime(stagingRoot, [runnerScript('python'), runnerScript('node')]);

// Words with case and punctuation around them, a few common ones making most of the text.
let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const vocabulary = Array.from({ length: 5000 }, () => Array.from({ length: 2 + Math.floor(random() * 8) }, () => 'abcdefghijklmnopqrstuvwxyzÄÉ'[Math.floor(random() * 28)]).join(''));
const marks = ['', '', '', ',', '.', '!', '"', '«', '»', '(', ')'];
const inputsDir = join(dir, 'inputs');
mkdirSync(inputsDir);
const inputs = Array.from({ length: PARTITIONS! }, (_, p) => {
  const lines = ['id,word'];
  for (let i = 0; i < ROWS!; i++) {
    const word = vocabulary[Math.min(Math.floor(1 / (random() + 1e-4)) - 1, 4999)]!;
    lines.push(`${i},${marks[Math.floor(random() * marks.length)]}${random() < 0.2 ? word.toUpperCase() : word}${marks[Math.floor(random() * marks.length)]}`);
  }
  const file = join(inputsDir, `part-${String(p).padStart(5, '0')}.csv`);
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  return file;
});

const area = await prepareJobArea(iso, { stagingRoot, jobId: 'speed', uid: iso.root ? 395001 : null, inputs });
await writeJobSource(area, 'job.py', readFileSync(EXAMPLE, 'utf8'));
const limits = { memoryMb: 1024, addressSpace: true, maxFileBytes: 1 << 30 };

async function runnerWay(sandboxed: boolean): Promise<number> {
  const paths = sandboxed ? taskPaths(iso, area, runtimeDir) : { input: area.input, output: area.output, work: area.work, runtime: runtimeDir };
  const argv = runtimeArgv('python', { runtimeDir: paths.runtime, source: join(paths.work, 'job.py'), entrypoint: 'process', jobId: 'speed', python: PYTHON, memoryMb: 1024, node: process.execPath });
  const launch = taskLaunch(iso, area, runtimeDir, argv, limits, { GATEHOUSE_PDEATHSIG: '1' });
  const workers = Array.from({ length: WORKERS! }, () => WarmWorker.start(sandboxed ? launch : { file: argv[0]!, args: argv.slice(1), env: launch.env, cwd: area.work }, () => {}));
  let seconds = 0;
  let next = 0;
  const loop = async (worker: WarmWorker) => {
    for (let p = next++; p < PARTITIONS!; p = next++) {
      const name = `part-${String(p).padStart(5, '0')}.csv`;
      const result: TaskResult = await worker.run({ partition: p, attempt: 1, input: join(paths.input, name), output: join(paths.output, `${name}.a1`), format: 'csv' });
      if (!result.ok) throw new Error(`partition ${p}: ${result.error}`);
      seconds += result.seconds;
      rmSync(join(area.output, `${name}.a1`), { force: true });
    }
  };
  try {
    await Promise.all(workers.map(loop));
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  return seconds;
}

function baseline(): number {
  const out = join(dir, 'baseline-out');
  mkdirSync(out, { recursive: true });
  const driver = WORKERS === 1 ? ['one_process.py', EXAMPLE, inputsDir, out] : ['pool.py', EXAMPLE, inputsDir, out, String(WORKERS)];
  const r = spawnSync(PYTHON, [join(PACKAGE_ROOT, 'bench', 'engine', driver[0]!), ...driver.slice(1)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${driver[0]}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { process_s: number }).process_s;
}

const sums: Record<string, number[]> = { sandbox: [], plain: [], baseline: [] };
try {
  for (let round = 0; round < ROUNDS!; round++) {
    const ways: [string, () => Promise<number> | number][] = [
      ['sandbox', () => runnerWay(true)],
      ['plain', () => runnerWay(false)],
      ['baseline', baseline],
    ];
    if (round % 2 === 1) ways.reverse();
    for (const [name, way] of ways) sums[name]!.push(await way());
    process.stderr.write(`  round ${round + 1}: ${Object.entries(sums).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(3)} s`).join(', ')}\n`);
  }
  console.log(`${iso.describe()}; ${PARTITIONS} partitions x ${ROWS} rows, ${WORKERS} worker(s); medians of ${ROUNDS} rounds, sum of partition seconds: ${Object.entries(sums).map(([k, v]) => `${k} ${median(v).toFixed(3)} s`).join(', ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
