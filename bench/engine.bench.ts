// engine-words-*: the bundled engine (`gatehouse engine` as its own process, reached over mTLS with
// an admission ticket as the gateway does) running examples/normalize_words.py over a CSV dataset of
// 64 partitions × 50,000 rows and one of 256 × 5,000, against the usual ways of running the same
// process() on this machine: multiprocessing.Pool(<cores>), Dask's LocalCluster with client.map,
// `xargs -P <cores>` starting a python3 per partition, and one python3 doing every partition.
// The baseline drivers are bench/engine/*.py; each imports process() from the same examples file.
//
// The runs take seconds, so one round runs every side once (in an order that rotates round by
// round) and every row of a size reads that shared round, as policy.bench.ts shares its stock
// sample: the engine runs 4 times per size, not 4 times per row. Wall times: for the engine from
// the submit (ticket signed, POST /jobs) to the line of its GET /events stream (the one the gateway
// holds open, opened before the submit) that says succeeded, so no poll interval is measured; for a
// baseline from spawning its process to its exit. Where the engine's time went comes from the
// phases of its "job finished" log line (src/compute/jobs/phase-clock.ts).
// Every side writes fresh outputs each round, and the outputs are checked to be the same bytes.
// The data is written once and the engine started once per size (neither is a per-job cost); Dask
// starts its cluster inside each run, as a user's script does. After the engine's job, each round
// also runs a 1-partition, 1-row job: the engine's fixed cost per job, for the summary on stderr.
// A fresh engine first runs ENGINE_WARM_JOBS untimed jobs (64 partitions of 500 rows, the same
// process()): the engine is a service, and over its first ~15 jobs V8 compiles its hot code on
// background threads that take 20-90 ms of CPU a job from the workers' cores (session 38's profile:
// 78 ms in job 2, next to nothing by job 20). What a person meets is a running engine. The warm-up's
// first and last job are printed; BENCH_ENGINE_WARM_JOBS=0 measures a cold engine.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { partitionFile } from '../src/catalog/index.js';
import { type PartitionData, writeDataset } from '../src/compute/catalog/index.js';
import { random } from '../src/compute/demo-data.js';
import { PACKAGE_ROOT } from '../src/version.js';
import type { JobSpec } from '../src/wire/index.js';
import { until } from '../test/support/until.js';
import { type Benchmark, median } from './measure.js';
import { EngineClient, type EngineProcess, startEngineProcess } from './support/engine.js';

/** Debian's python3 (it has python3-distributed and pandas); the one on PATH may lack dask. */
const PYTHON = '/usr/bin/python3';
const CORES = availableParallelism();
const EXAMPLE = join(PACKAGE_ROOT, 'examples', 'normalize_words.py');
const DRIVERS = join(PACKAGE_ROOT, 'bench', 'engine');
/** How long the engine's "job finished" line may take to reach its stderr after the pushed end. */
const LOG_LINE_TIMEOUT_MS = 10_000;
const WARMUP = 1;
const ROUNDS = 3;
const ENGINE_WARM_JOBS = Number(process.env.BENCH_ENGINE_WARM_JOBS ?? 16);
const WARM_SHAPE: Variant = { label: '64x500', partitions: 64, rows: 500 };
/** The engine's sandbox setting (auto, as shipped); BENCH_ENGINE_SANDBOX=none shows what isolation costs. */
const SANDBOX = process.env.BENCH_ENGINE_SANDBOX ?? 'auto';

interface Variant {
  label: string;
  partitions: number;
  rows: number;
}

const VARIANTS: Variant[] = [
  { label: '64x50k', partitions: 64, rows: 50_000 },
  { label: '256x5k', partitions: 256, rows: 5_000 },
];

const ALL_SIDES = ['engine', 'pool', 'xargs', 'dask', 'one'] as const;
type Side = (typeof ALL_SIDES)[number];

/**
 * Dask is the one baseline Debian's python3 lacks by default. Without it the Dask side is left out
 * of every round and its rows are skipped with this line; every other row still runs.
 */
let daskProbe: { missing: string | undefined } | undefined;
function daskMissing(): string | undefined {
  daskProbe ??= {
    missing:
      spawnSync(PYTHON, ['-c', 'import dask.distributed']).status === 0
        ? undefined
        : 'Dask is not installed for /usr/bin/python3: apt install python3-dask python3-distributed',
  };
  return daskProbe.missing;
}
/**
 * BENCH_ENGINE_SIDES=engine,pool runs only those sides (the engine against its main baseline,
 * without xargs' python3 start per partition, for repeated before/after runs on a busy machine);
 * the rows that need a side left out are skipped.
 */
const ONLY = process.env.BENCH_ENGINE_SIDES?.split(',').map((s) => s.trim());
const leftOut = (...needed: Side[]) => {
  const missing = needed.filter((s) => ONLY !== undefined && !ONLY.includes(s));
  return missing.length === 0 ? undefined : `BENCH_ENGINE_SIDES leaves out ${missing.join(', ')}`;
};
/** The sides a round runs: asked when the first round starts, not when the runner lists the files. */
const sides = (): readonly Side[] => ALL_SIDES.filter((s) => (s !== 'dask' || !daskMissing()) && (ONLY === undefined || ONLY.includes(s)));

interface Run {
  wall_s: number;
  /** Timings the side reports of itself (seconds), for the summary. */
  parts: Record<string, number>;
}

/** Every side once, and `probe`: the engine on a 1-partition, 1-row job (what any job costs). */
type Sample = Record<Side, Run> & { probe: Run };

/** One size: its input dataset and the rounds measured on it, shared by that size's rows. */
interface World {
  v: Variant;
  dataset: string;
  /** 1 partition of 1 row, beside it. */
  tiny: string;
  samples: Sample[];
  reported: boolean;
}

/** The bench's folder: gatehouse.yaml, the engine's certs and state, the data root, the baselines' outputs. */
interface Place {
  dir: string;
  data: string;
  config: string;
  engine: EngineProcess | null;
  client: EngineClient | null;
  jobs: number;
}

let place: Place | null = null;
const worlds = new Map<string, World>();

function thePlace(): Place {
  if (place !== null) return place;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-engine-'));
  // The engine's task uids must be able to walk down to the data root.
  chmodSync(dir, 0o711);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'gatehouse.yaml');
  writeFileSync(
    config,
    stringify({
      server: { port: 0 },
      // Its own task uids: an engine ends a job by killing every process of the job's uid, so two
      // engines on one machine (a test suite's and this one) must not hand out the same uids.
      engine: { port: 0, slots: CORES, python: PYTHON, sandbox: SANDBOX, task_uids: '390000-390999' },
      data: { root: 'data' },
      state: { dir: 'var' },
      certs: { dir: 'certs' },
      policies: { dir: join(PACKAGE_ROOT, 'policies') },
      log: { level: 'info' },
    }),
  );
  mkdirSync(join(dir, 'run'));
  place = { dir, data: join(dir, 'data'), config, engine: null, client: null, jobs: 0 };
  return place;
}

/** CPU seconds the engine's own process (node: HTTP, scheduling, logs, the job database) has used. */
function engineCpu(p: Place): number {
  // /proc/<pid>/stat: utime and stime are fields 14 and 15, counted after the ")" that ends the name.
  const fields = readFileSync(`/proc/${p.engine!.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100; // USER_HZ, 100 on every Linux architecture

async function theEngine(p: Place): Promise<EngineClient> {
  if (p.client !== null) return p.client;
  p.engine = await startEngineProcess(p.config, p.dir);
  p.client = new EngineClient(p.engine.url, join(p.dir, 'certs'));
  await warmUp(p, p.client);
  return p.client;
}

/** ENGINE_WARM_JOBS untimed jobs on a fresh engine (see the header); their first and last wall time on stderr. */
async function warmUp(p: Place, client: EngineClient): Promise<void> {
  if (ENGINE_WARM_JOBS <= 0) return;
  const dataset = `words_warm_${WARM_SHAPE.label}`;
  if (!existsSync(join(p.data, dataset))) {
    await writeDataset(p.data, dataset, { format: 'csv', columns: ['id', 'word'], owner: 'bench', labels: [], produced_by: 'engine.bench', partitions: partitionsOf(WARM_SHAPE) });
  }
  const walls: number[] = [];
  for (let i = 0; i < ENGINE_WARM_JOBS; i++) {
    const output = `${dataset}_out_${++p.jobs}`;
    walls.push((await engineRun(p, client, dataset, output, WARM_SHAPE.partitions * WARM_SHAPE.rows)).wall_s);
    rmSync(join(p.data, output), { recursive: true, force: true });
  }
  process.stderr.write(`    engine warm-up: ${ENGINE_WARM_JOBS} jobs of ${WARM_SHAPE.label}, untimed: first ${walls[0]!.toFixed(3)} s, last ${walls[walls.length - 1]!.toFixed(3)} s\n`);
}

async function stopEngine(p: Place): Promise<void> {
  p.client?.close();
  p.client = null;
  await p.engine?.stop();
  p.engine = null;
}

// ---- the data: deterministic words, mixed case, punctuation around them, some non-ASCII ----

// mulberry32, the demo data's generator: the same numbers on every machine.
const prng = random;

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'ber', 'dan', 'el', 'for', 'gra', 'hen', 'is', 'jo', 'ler', 'mon', 'or', 'pel', 'qua', 'ris', 'sten', 'ur', 'wel', 'zä', 'ö', 'ß', 'é', 'ço', 'ñu', 'ﬁ'];
const VOCABULARY_SIZE = 20_000;
const VOCABULARY: string[] = (() => {
  const r = prng(7);
  return Array.from({ length: VOCABULARY_SIZE }, () => {
    let w = '';
    for (let n = 1 + Math.floor(r() * 3); n > 0; n--) w += SYLLABLES[Math.floor(r() * SYLLABLES.length)];
    return w;
  });
})();
/** Around a word: most bare, some with the punctuation and spaces text has (ASCII and not). */
const WRAPS: [number, (w: string) => string][] = [
  [0.55, (w) => w],
  [0.25, (w) => `${w}${',.;:!?'[w.length % 6]}`],
  [0.06, (w) => `"${w}"`],
  [0.04, (w) => `(${w})`],
  [0.03, (w) => `«${w}»`],
  [0.02, (w) => `“${w}”`],
  [0.03, (w) => `  ${w} `],
  [0.02, (w) => `...${w}...`],
];

function word(r: () => number): string {
  // Zipf-like: a few words make most of the text, as in real text.
  let w = VOCABULARY[Math.floor(VOCABULARY_SIZE * r() ** 3)]!;
  const c = r();
  if (c < 0.25) w = w[0]!.toUpperCase() + w.slice(1);
  else if (c < 0.37) w = w.toUpperCase();
  else if (c < 0.45) w = [...w].map((ch, i) => (i % 2 ? ch.toUpperCase() : ch)).join('');
  else if (c < 0.46) w = [...w].map((ch) => (ch >= 'a' && ch <= 'z' ? String.fromCodePoint(ch.codePointAt(0)! + 0xfee0) : ch)).join(''); // fullwidth
  let x = r();
  for (const [p, wrap] of WRAPS) {
    if (x < p) return wrap(w);
    x -= p;
  }
  return w;
}

const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

function* partitionsOf(v: Variant): Iterable<PartitionData> {
  for (let p = 0; p < v.partitions; p++) {
    const r = prng(1000 + p);
    const lines = ['id,word'];
    for (let i = 0; i < v.rows; i++) lines.push(`${p * v.rows + i},${quote(word(r))}`);
    yield { text: `${lines.join('\n')}\n`, rows: v.rows };
  }
}

async function world(v: Variant): Promise<World> {
  const found = worlds.get(v.label);
  if (found !== undefined) return found;
  const p = thePlace();
  const dataset = `words_${v.label.toLowerCase()}`;
  const tiny = 'words_1x1';
  const manifest = { format: 'csv' as const, columns: ['id', 'word'], owner: 'bench', labels: [], produced_by: 'engine.bench' };
  await writeDataset(p.data, dataset, { ...manifest, partitions: partitionsOf(v) });
  await writeDataset(p.data, tiny, { ...manifest, partitions: partitionsOf({ label: '1x1', partitions: 1, rows: 1 }) });
  const w: World = { v, dataset, tiny, samples: [], reported: false };
  worlds.set(v.label, w);
  return w;
}

// ---- one round: every side once ----

/** The k-th round of a size, run on first demand and then read by every row of the size. */
async function sample(w: World, k: number): Promise<Sample> {
  const p = thePlace();
  const running = sides();
  while (w.samples.length <= k) {
    const round = w.samples.length;
    const client = await theEngine(p);
    const outputs = Object.fromEntries(running.map((s) => [s, join(p.dir, 'out', s)])) as Record<Side, string>;
    for (const s of running) {
      rmSync(outputs[s], { recursive: true, force: true });
      if (s !== 'engine') mkdirSync(outputs[s], { recursive: true });
    }
    const output = `${w.dataset}_out_${++p.jobs}`;
    const input = join(p.data, w.dataset);
    const runs: Partial<Sample> = {};
    const probeOutput = `${w.tiny}_out_${p.jobs}`;
    // Rotated each round, so drift over the run does not always land on the same side.
    const order = running.map((_, i) => running[(i + round) % running.length]!);
    for (const side of order) {
      const o = outputs[side];
      if (side === 'engine') {
        runs.engine = await engineRun(p, client, w.dataset, output, w.v.partitions * w.v.rows);
        runs.probe = await engineRun(p, client, w.tiny, probeOutput, 1);
      } else if (side === 'pool') runs.pool = await python(['pool.py', EXAMPLE, input, o, String(CORES)]);
      else if (side === 'dask') runs.dask = await python(['dask_map.py', EXAMPLE, input, o, String(CORES)]);
      else if (side === 'one') runs.one = await python(['one_process.py', EXAMPLE, input, o]);
      else runs.xargs = await xargs(input, o);
    }
    const done = runs as Sample;
    sameOutputs(w, { ...outputs, engine: join(p.data, output) });
    for (const o of [output, probeOutput]) rmSync(join(p.data, o), { recursive: true, force: true });
    for (const s of running) rmSync(outputs[s], { recursive: true, force: true });
    w.samples.push(done);
    const f = (s: Side) => `${s} ${done[s].wall_s.toFixed(2)} s`;
    process.stderr.write(`    ${w.v.label} round ${round + 1} (${order.join(', ')}): ${running.map(f).join(', ')}; load average ${loadavg()[0]!.toFixed(2)}\n`);
  }
  return w.samples[k]!;
}

async function engineRun(p: Place, client: EngineClient, input: string, output: string, total: number): Promise<Run> {
  const spec: JobSpec = {
    name: 'normalize-words',
    input,
    output,
    runtime: 'python',
    source: readFileSync(EXAMPLE, 'utf8'),
    entrypoint: 'process',
    resources: { cores: CORES, memory_mb: 1024, time_limit_s: 600 },
  };
  const partitionSecondsBefore = await client.metric('gatehouse_engine_partition_duration_seconds_sum');
  const events = await client.events();
  const cpuBefore = engineCpu(p);
  const submittedAt = Date.now();
  const t0 = performance.now();
  const id = await client.submit(spec);
  const { status } = await events.final(id);
  const wall_s = (performance.now() - t0) / 1000;
  const engine_cpu_s = engineCpu(p) - cpuBefore;
  if (status.state !== 'succeeded') throw new Error(`engine job ${id} ${status.state}: ${status.error ?? ''}\n${(await client.logs(id)).slice(-2000)}`);
  if (status.rows_out !== total) throw new Error(`engine job ${id} wrote ${status.rows_out} rows; expected ${total}`);
  const partitionSeconds = (await client.metric('gatehouse_engine_partition_duration_seconds_sum')) - partitionSecondsBefore;
  const created = Date.parse(status.created_at);
  const phases = await jobPhases(p, id);
  const at = (phase: string) => (phases[phase] ?? Number.NaN) / 1000;
  return {
    wall_s,
    parts: {
      submit_s: (created - submittedAt) / 1000, // ticket, POST, spec checks, job row (two clocks of one machine)
      // The engine's own phases, seconds since it received the job (its "job finished" log line):
      ...Object.fromEntries(Object.keys(phases).map((k) => [`at_${k}`, at(k)])),
      compute_s: at('last_done') - at('first_handed'), // the first partition handed until the last one kept
      told_s: at('told'), // the engine published the end; the bench saw it (wall_s) one stream line later
      engine_cpu_s,
      partition_s: partitionSeconds, // Σ of the workers' own per-partition times
      core_s: status.core_seconds,
      attempts: status.attempts,
    },
  };
}

/** The phases of the engine's "job finished" line for the job (ms since it received the job). */
async function jobPhases(p: Place, id: string): Promise<Record<string, number>> {
  const line = await until(
    () => p.engine!.output().split('\n').find((l) => l.includes(`"job":"${id}"`) && l.includes('"msg":"job finished"')),
    LOG_LINE_TIMEOUT_MS,
    `the engine's "job finished" line for ${id}`,
    5,
  );
  return (JSON.parse(line) as { phases?: Record<string, number> }).phases ?? {};
}

/** Runs a driver of bench/engine with Debian's python3; wall time from spawn to exit, and its JSON line. */
function python(args: string[]): Promise<Run> {
  const [script, ...rest] = args;
  return timed(PYTHON, [join(DRIVERS, script!), ...rest]);
}

function xargs(input: string, out: string): Promise<Run> {
  const files = readdirSync(input).filter((f) => f.startsWith('part-')).sort().map((f) => join(input, f));
  return timed('xargs', ['-P', String(CORES), '-I{}', PYTHON, join(DRIVERS, 'xargs_one.py'), EXAMPLE, '{}', out], `${files.join('\n')}\n`);
}

function timed(command: string, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // cwd: Dask puts its dask-worker-space in the working directory.
    const child = spawn(command, args, { cwd: join(thePlace().dir, 'run'), stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8192)));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const wall_s = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')}: exit ${code ?? signal}\n${stderr}`));
      const last = stdout.trim().split('\n').pop() ?? '';
      resolve({ wall_s, parts: last.startsWith('{') ? (JSON.parse(last) as Record<string, number>) : {} });
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

/** Every side wrote every partition, and the same bytes (first and last partition compared whole). */
function sameOutputs(w: World, dirs: Record<Side, string>): void {
  const names = Array.from({ length: w.v.partitions }, (_, i) => partitionFile(i, 'csv'));
  const running = sides();
  for (const s of running) {
    const missing = names.find((n) => !existsSync(join(dirs[s], n)));
    if (missing !== undefined) throw new Error(`${s} did not write ${missing}`);
  }
  for (const n of [names[0]!, names[names.length - 1]!]) {
    const reference = readFileSync(join(dirs.pool, n));
    for (const s of running) {
      if (!readFileSync(join(dirs[s], n)).equals(reference)) throw new Error(`${s}'s ${n} differs from multiprocessing.Pool's`);
    }
  }
}

// ---- the rows ----

interface Ctx {
  w: World;
  /** The next sample each side reads (one sample holds both sides' runs): whichever side goes first in a round, both read the same. */
  candidateRound: number;
  baselineRound: number;
}

const BASELINES: Record<Exclude<Side, 'engine'>, string> = {
  pool: `multiprocessing.Pool(${CORES}).map, same process(), same files`,
  dask: `Dask LocalCluster(${CORES} processes x 1 thread) client.map + gather, cluster start-up included`,
  xargs: `xargs -P ${CORES}, a python3 per partition`,
  one: 'one python3 process doing every partition in turn',
};

function rows(v: Variant): Benchmark<Ctx>[] {
  const base = `engine-words-${v.label}`;
  const total = v.partitions * v.rows;
  const rate = (r: Run) => total / r.wall_s;
  /** rows/s ÷ (cores × one process's rows/s) of the same round. */
  const efficiency = (s: Sample, side: Side) => rate(s[side]) / (CORES * rate(s.one));
  const common = {
    warmup: WARMUP,
    rounds: ROUNDS,
    setup: async (): Promise<Ctx> => ({ w: await world(v), candidateRound: 0, baselineRound: 0 }),
    teardown: async ({ w }: Ctx) => {
      if (w.samples.length >= WARMUP + ROUNDS && !w.reported) {
        w.reported = true;
        process.stderr.write(summary(w));
      }
      // The next size starts it again: no benchmark can tell whether another one follows it.
      await stopEngine(thePlace());
    },
  };
  const row = (name: string, unit: string, baseline: string, value: (s: Sample) => number, baselineValue: (s: Sample) => number): Benchmark<Ctx> => ({
    name,
    unit,
    baseline,
    ...common,
    candidate: async (ctx) => value(await sample(ctx.w, ctx.candidateRound++)),
    baselineRun: async (ctx) => baselineValue(await sample(ctx.w, ctx.baselineRound++)),
  });
  return [
    { ...row(base, 'rows/s', BASELINES.pool, (s) => rate(s.engine), (s) => rate(s.pool)), skip: () => leftOut('engine', 'pool') },
    { ...row(`${base}-vs-dask`, 'rows/s', BASELINES.dask, (s) => rate(s.engine), (s) => rate(s.dask)), skip: () => daskMissing() ?? leftOut('engine', 'dask') },
    { ...row(`${base}-vs-xargs`, 'rows/s', BASELINES.xargs, (s) => rate(s.engine), (s) => rate(s.xargs)), skip: () => leftOut('engine', 'xargs') },
    { ...row(`${base}-vs-one-process`, 'rows/s', BASELINES.one, (s) => rate(s.engine), (s) => rate(s.one)), skip: () => leftOut('engine', 'one') },
    {
      ...row(
        `${base}-efficiency`,
        'efficiency',
        `multiprocessing.Pool's; both rows/s / (${CORES} x one process's rows/s)`,
        (s) => efficiency(s, 'engine'),
        (s) => efficiency(s, 'pool'),
      ),
      skip: () => leftOut('engine', 'pool', 'one'),
    },
    {
      ...row(`${base}-ms-per-partition`, 'ms/partition', `multiprocessing.Pool(${CORES})'s wall time / partitions`, (s) => (s.engine.wall_s * 1000) / v.partitions, (s) => (s.pool.wall_s * 1000) / v.partitions),
      skip: () => leftOut('engine', 'pool'),
    },
  ];
}

/** Medians over the counted rounds of where each side's time went, printed once per size. */
function summary(w: World): string {
  const counted = w.samples.slice(WARMUP);
  const m = (side: Side | 'probe', key?: string) => median(counted.map((x) => (key === undefined ? (x[side]?.wall_s ?? Number.NaN) : (x[side]?.parts[key] ?? Number.NaN))));
  const s = (n: number) => `${n.toFixed(2)} s`;
  const ms = (n: number) => `${(n * 1000).toFixed(0)} ms`;
  // Each phase the engine reached, ms since it received the job (medians; see phase-clock.ts).
  const phases = (side: 'engine' | 'probe') => {
    const keys = Object.keys(counted[0]![side].parts).filter((k) => k.startsWith('at_'));
    const at = keys.map((k) => `${k.slice(3)} ${ms(m(side, k))}`).join(', ');
    return `submit ${ms(m(side, 'submit_s'))}; in the engine: ${at}; the engine process used ${ms(m(side, 'engine_cpu_s'))} of CPU`;
  };
  const overhead = median(counted.map((x) => ((x.engine.wall_s - x.pool.wall_s) * 1000) / w.v.partitions));
  // Worker time not spent in a partition: starting, waiting for the next one, or for a core.
  const idle = (x: Sample, side: 'engine' | 'pool') =>
    side === 'engine' ? x.engine.parts.compute_s! * CORES - x.engine.parts.partition_s! : x.pool.parts.run_s! * CORES - x.pool.parts.process_s!;
  return [
    `${w.dataset}: ${w.v.partitions} partitions x ${w.v.rows} rows, ${CORES} cores, engine sandbox ${SANDBOX}; medians of ${counted.length} rounds:`,
    `  engine ${s(m('engine'))}: ${phases('engine')}; the workers' own partition times add up to ${s(m('engine', 'partition_s'))}, core-seconds ${m('engine', 'core_s').toFixed(2)}`,
    `  engine, a 1-partition 1-row job: ${ms(m('probe'))}: ${phases('probe')}`,
    `  Pool ${s(m('pool'))}: pool start ${ms(m('pool', 'startup_s'))}, map ${s(m('pool', 'run_s'))}, close ${ms(m('pool', 'close_s'))}; process() times add up to ${s(m('pool', 'process_s'))}`,
    ...(daskMissing() ? [] : [`  Dask ${s(m('dask'))}: import ${s(m('dask', 'import_s'))}, cluster start ${s(m('dask', 'startup_s'))}, map + gather ${s(m('dask', 'run_s'))}, close ${s(m('dask', 'close_s'))}; process() times add up to ${s(m('dask', 'process_s'))}`]),
    `  xargs ${s(m('xargs'))}; one process ${s(m('one'))}, process() times add up to ${s(m('one', 'process_s'))}`,
    `  ${CORES} workers' time outside partitions: engine ${s(median(counted.map((x) => idle(x, 'engine'))))} (first partition handed to last kept x ${CORES} - partition times), Pool ${s(median(counted.map((x) => idle(x, 'pool'))))} (map x ${CORES} - process() times)`,
    `  engine overhead per partition vs Pool: ${overhead.toFixed(2)} ms (median of (engine wall - Pool wall) / partitions)`,
    '',
  ].join('\n');
}

export const benchmarks: Benchmark[] = VARIANTS.flatMap((v) => rows(v) as Benchmark[]);
