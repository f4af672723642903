// Where one job's fixed cost goes inside the engine, job after job: `node dist/bench/engine-phases.js
// [N] [PARTITIONS] [ROWS]` (after `npm run build`). Starts the engine as its own process (log level
// info), writes person.bench's CSV shape (default 16 × 50 000 rows), submits N jobs of
// bench/engine/aggregate.py one at a time as the gateway would (ticket, POST /jobs, the pushed end on
// GET /events) and prints, per job, the submit's answer time, the pushed end, the phases of the
// engine's "job finished" line, and the engine's CPU for the job from /proc (cpu_main: its main
// thread; cpu_threads: the others, libuv's pool and V8's helpers; 10 ms ticks; wakeups: the times
// its main thread slept and was woken, each one a turn of its event loop); then the medians.
// A profiling tool, not a bench row: relative offsets inside one job, fit to compare before and
// after a change under moderate load.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { writeDataset } from '../src/compute/catalog/index.js';
import { PACKAGE_ROOT } from '../src/version.js';
import type { JobSpec } from '../src/wire/index.js';
import { until } from '../test/support/until.js';
import { median } from './measure.js';
import { EngineClient, startEngineProcess } from './support/engine.js';

/** Voluntary context switches of the engine's main thread: each one a wait of its event loop that something ended. */
function engineWakeups(pid: number): number {
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
}

/** CPU ms of the engine's main thread and of its other threads (libuv's pool, V8's), from /proc. */
function engineCpuMs(pid: number): { main: number; other: number } {
  let main = 0;
  let other = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    // utime and stime: fields 14 and 15, counted after the ")" that ends the name; USER_HZ is 100.
    const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const ms = (Number(fields[11]) + Number(fields[12])) * 10;
    if (Number(tid) === pid) main += ms;
    else other += ms;
  }
  return { main, other };
}

const [N = 8, PARTITIONS = 16, ROWS = 50_000] = process.argv.slice(2).map(Number);
/**
 * PHASES_CPUACCT: a cgroup (v1 cpuacct) folder this bench was started in. Its cpuacct.usage counts
 * every process of the run (this one, the engine, its launcher, the sandboxes and the workers), so
 * cpu_all is a job's CPU wherever it went: a count that other processes' load does not inflate much.
 */
const CPUACCT = process.env.PHASES_CPUACCT;
const cpuAllMs = (): number => (CPUACCT === undefined ? Number.NaN : Number(readFileSync(join(CPUACCT, 'cpuacct.usage'), 'utf8')) / 1e6);
const CORES = availableParallelism();
const REGIONS = ['north', 'south', 'east', 'west', 'centre', 'islands'];
const CATEGORIES = ['groceries', 'travel', 'electronics', 'clothing', 'rent', 'health', 'leisure', 'fees'];

function partitionText(p: number): string {
  let x = 12345 + p * 7919;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648);
  const lines = ['id,region,category,amount'];
  for (let r = 0; r < ROWS!; r++) lines.push(`${p * ROWS! + r},${REGIONS[next() % REGIONS.length]},${CATEGORIES[next() % CATEGORIES.length]},${(next() % 100_000) / 100}`);
  return `${lines.join('\n')}\n`;
}

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-engine-phases-'));
chmodSync(dir, 0o711);
const config = join(dir, 'gatehouse.yaml');
writeFileSync(
  config,
  stringify({
    server: { port: 0 },
    engine: { port: 0, slots: CORES, python: '/usr/bin/python3', task_uids: '398000-398999' },
    data: { root: 'data' },
    state: { dir: 'var' },
    certs: { dir: 'certs' },
    policies: { dir: join(PACKAGE_ROOT, 'policies') },
    log: { level: 'info' },
  }),
);
await writeDataset(join(dir, 'data'), 'phases_in', { format: 'csv', columns: ['id', 'region', 'category', 'amount'], owner: 'bench', labels: [], produced_by: 'bench', partitions: Array.from({ length: PARTITIONS! }, (_, p) => ({ text: partitionText(p), rows: ROWS! })) });
const engine = await startEngineProcess(config, dir);
const client = new EngineClient(engine.url, join(dir, 'certs'));
const source = readFileSync(join(PACKAGE_ROOT, 'bench', 'engine', 'aggregate.py'), 'utf8');
const rows: Record<string, number>[] = [];
try {
  const events = await client.events();
  for (let k = 0; k < N!; k++) {
    const spec: JobSpec = { name: 'aggregate', input: 'phases_in', output: `phases_out_${k}`, runtime: 'python', source, resources: { cores: CORES, memory_mb: 512, time_limit_s: 600 } };
    const cpu0 = engineCpuMs(engine.pid);
    const wakeups0 = engineWakeups(engine.pid);
    const all0 = cpuAllMs();
    const t0 = performance.now();
    const id = await client.submit(spec);
    const answered = performance.now() - t0;
    const { status } = await events.final(id);
    const wall = performance.now() - t0;
    if (status.state !== 'succeeded') throw new Error(`${id} ${status.state}: ${status.error}`);
    const line = await until(() => engine.output().split('\n').find((l) => l.includes(`"job":"${id}"`) && l.includes('"msg":"job finished"')), 10_000, 'job finished line', 5);
    const phases = (JSON.parse(line) as { phases: Record<string, number> }).phases;
    const cpu1 = engineCpuMs(engine.pid);
    const wakeups = engineWakeups(engine.pid) - wakeups0;
    const cpuAll: Record<string, number> = CPUACCT === undefined ? {} : { cpu_all: Math.round((cpuAllMs() - all0) * 10) / 10 };
    const row = { answered: Math.round(answered * 10) / 10, ...phases, pushed_seen: Math.round(wall * 10) / 10, cpu_main: cpu1.main - cpu0.main, cpu_threads: cpu1.other - cpu0.other, wakeups, ...cpuAll };
    rows.push(row);
    process.stderr.write(`${id} load ${loadavg()[0]!.toFixed(2)}: ${Object.entries(row).map(([k2, v]) => `${k2} ${v}`).join(', ')}\n`);
    rmSync(join(dir, 'data', spec.output), { recursive: true, force: true });
  }
} finally {
  client.close();
  await engine.stop();
  rmSync(dir, { recursive: true, force: true });
}
const keys = [...new Set(rows.slice(1).flatMap((r) => Object.keys(r)))];
const meds = keys.map((k) => [k, median(rows.slice(1).map((r) => r[k]).filter((v): v is number => v !== undefined))] as const).sort((a, b) => a[1] - b[1]);
process.stdout.write(`medians after the first job (ms since the engine received it; answered and pushed_seen from the client's send; cpu_main and cpu_threads: the engine's CPU ms for the job, its main thread and its others; wakeups: its main thread's; cpu_all: every process of the run, PHASES_CPUACCT): ${meds.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}\n`);
