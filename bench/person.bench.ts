// What a person waits for: a CSV aggregation of 16 partitions × 50 000 rows submitted through the
// gateway (POST /v1/jobs) until GET /v1/jobs/:id says `succeeded`, against the same process() run by
// multiprocessing.Pool(cores) as a whole command (python3 started to python3 exited) on the same files.
//   person-csv-aggregation-16x50k   rows/s (rows ÷ wall time) of both; goal: the gateway ≥ 0.95× Pool
// The gateway runs with its shipped defaults (jobs.poll_ms 250, jobs.status_cache_ms 500), the
// engine as its own process with engine.slots = cores and its default sandbox; the status is waited
// for as a person's `--wait` and `Job.wait()` wait: held waits (GET /v1/jobs/:id?wait_s=25&seen=...,
// answered the moment the job changes), on one kept-alive connection.
// Before any round, PERSON_WARM_JOBS untimed jobs go the same way on a small input (16 × 2 000 rows):
// the gateway and the engine are services, and V8 compiles their hot code over their first ~15 jobs on
// background threads that share the workers' cores. What a person meets is a running Gatehouse. The
// warm-up's first and last wall time are printed; BENCH_PERSON_WARM_JOBS=0 measures a cold start.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createIdentityService } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { loadConfig } from '../src/config/index.js';
import { type RunningService, startGateway } from '../src/gateway/index.js';
import { openStore, type Store } from '../src/store/index.js';
import { PACKAGE_ROOT } from '../src/version.js';
import type { JobSpec } from '../src/wire/index.js';
import type { Benchmark } from './measure.js';
import { type EngineProcess, startEngineProcess } from './support/engine.js';
import { gatewayCall, unboundedBenchPolicies } from './support/gateway-calls.js';

const PARTITIONS = 16;
const ROWS = 50_000;
const CORES = availableParallelism();
const PYTHON = '/usr/bin/python3';
const DRIVERS = join(PACKAGE_ROOT, 'bench', 'engine');
const EXAMPLE = join(DRIVERS, 'aggregate.py');
const REGIONS = ['north', 'south', 'east', 'west', 'centre', 'islands'];
const CATEGORIES = ['groceries', 'travel', 'electronics', 'clothing', 'rent', 'health', 'leisure', 'fees'];
const PERSON_WARM_JOBS = Number(process.env.BENCH_PERSON_WARM_JOBS ?? 16);
const WARM_ROWS = 2_000;
const INPUT = 'scratch/person-in';
const WARM_INPUT = 'scratch/person-warm';

interface World {
  dir: string;
  engine: EngineProcess;
  gateway: RunningService;
  store: Store;
  token: string;
  agent: Agent;
  input: string;
  outputs: number;
}

/** Deterministic rows: a linear congruential walk, so every run aggregates the same data. */
function partitionText(p: number, rows = ROWS): string {
  let x = 12345 + p * 7919;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648);
  const lines = ['id,region,category,amount'];
  for (let r = 0; r < rows; r++) lines.push(`${p * rows + r},${REGIONS[next() % REGIONS.length]},${CATEGORIES[next() % CATEGORIES.length]},${(next() % 100_000) / 100}`);
  return `${lines.join('\n')}\n`;
}

async function setup(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-person-'));
  chmodSync(dir, 0o711); // task uids walk down to the data root
  const policies = unboundedBenchPolicies(dir);
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(
    configFile,
    stringify({
      server: { port: 0 },
      engine: { port: 0, slots: CORES, task_uids: '392000-392999' }, // its own uids: other benches' engines may run
      data: { root: 'data' },
      state: { dir: 'var' },
      certs: { dir: 'certs' },
      policies: { dir: policies },
      log: { level: 'silent' },
    }),
  );
  const manifest = { format: 'csv' as const, columns: ['id', 'region', 'category', 'amount'], owner: 'bench', labels: [], produced_by: 'bench' };
  await writeDataset(join(dir, 'data'), INPUT, { ...manifest, partitions: Array.from({ length: PARTITIONS }, (_, p) => ({ text: partitionText(p), rows: ROWS })) });
  await writeDataset(join(dir, 'data'), WARM_INPUT, { ...manifest, partitions: Array.from({ length: PARTITIONS }, (_, p) => ({ text: partitionText(p, WARM_ROWS), rows: WARM_ROWS })) });
  mkdirSync(join(dir, 'run'));
  const engine = await startEngineProcess(configFile, dir);
  const { config } = loadConfig({ path: configFile, cwd: dir, env: { GATEHOUSE_ENGINE_PORT: new URL(engine.url).port } });
  const gateway = await startGateway(config);
  const store = await openStore({ stateDir: config.state.dir });
  const identity = await createIdentityService(config, store);
  const token = (await identity.tokens.login({ user: 'bench', groups: ['analysts'], auth_method: 'ldap' })).access_token;
  identity.close();
  const ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
  const w: World = { dir, engine, gateway, store, token, agent: new Agent({ keepAlive: true, maxSockets: 1, ca }), input: join(dir, 'data', INPUT), outputs: 0 };
  if (PERSON_WARM_JOBS > 0) {
    const walls: number[] = [];
    for (let i = 0; i < PERSON_WARM_JOBS; i++) walls.push((await submitAndWait(w, WARM_INPUT)).wall);
    process.stderr.write(`    warm-up: ${PERSON_WARM_JOBS} jobs of ${PARTITIONS}x${WARM_ROWS} through the gateway, untimed: first ${(walls[0]! * 1000).toFixed(0)} ms, last ${(walls[walls.length - 1]! * 1000).toFixed(0)} ms\n`);
  }
  return w;
}

function call(w: World, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return gatewayCall({ url: w.gateway.url, agent: w.agent, token: w.token }, method, path, body);
}

/** Submit → the first status that says succeeded, through the gateway; rows/s. */
async function throughGateway(w: World): Promise<number> {
  const { id, wall, state } = await submitAndWait(w, INPUT);
  // Where the wall time went, on stderr: the engine's own start and end (same machine, same clock) and
  // how long after the engine's end the gateway showed it.
  const started = Date.parse(state.started_at ?? '');
  const finished = Date.parse(state.finished_at ?? '');
  process.stderr.write(`    ${id}: wall ${(wall * 1000).toFixed(0)} ms; engine ran ${(finished - started).toFixed(0)} ms; succeeded seen ${(state.seen_at - finished).toFixed(0)} ms after the engine's finished_at\n`);
  return (PARTITIONS * ROWS) / wall;
}

/** One job of `input` submitted through the gateway and waited for until it says succeeded; seconds. */
async function submitAndWait(w: World, input: string): Promise<{ id: string; wall: number; state: Awaited<ReturnType<typeof waitForEnd>> }> {
  w.outputs += 1;
  const spec: JobSpec = { name: 'aggregate', input, output: `scratch/person-out-${w.outputs}`, runtime: 'python', source: readFileSync(EXAMPLE, 'utf8'), resources: { cores: CORES, memory_mb: 512, time_limit_s: 600 } };
  const t0 = performance.now();
  const created = await call(w, 'POST', '/v1/jobs', spec);
  if (created.status !== 201) throw new Error(`POST /v1/jobs answered ${created.status}: ${created.text}`);
  const { id } = JSON.parse(created.text) as { id: string };
  const state = await waitForEnd(w, id);
  const wall = (performance.now() - t0) / 1000;
  if (state.state !== 'succeeded') throw new Error(`bench job ${id} ${state.state}: ${state.error}`);
  return { id, wall, state };
}

/** The job's end as `--wait` sees it: each look held until the job differs from the one before. */
async function waitForEnd(w: World, id: string): Promise<{ state: string; error: string | null; finished_at: string | null; started_at: string | null; seen_at: number }> {
  let seen = '';
  for (;;) {
    const answer = await call(w, 'GET', `/v1/jobs/${id}?wait_s=25${seen === '' ? '' : `&seen=${seen}`}`);
    if (answer.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${answer.status}: ${answer.text}`);
    const s = JSON.parse(answer.text) as { state: string; error: string | null; finished_at: string | null; started_at: string | null; seen: string };
    if (['succeeded', 'failed', 'cancelled'].includes(s.state)) return { ...s, seen_at: Date.now() };
    seen = s.seen;
  }
}

/** python3 pool.py, spawned to exited; rows/s. */
function pool(w: World): Promise<number> {
  const out = mkdtempSync(join(w.dir, 'run', 'pool-'));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(PYTHON, [join(DRIVERS, 'pool.py'), EXAMPLE, w.input, out, String(CORES)], { cwd: join(w.dir, 'run'), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4096)));
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`pool.py exited ${code}: ${stderr}`));
      const written = readdirSync(out).filter((f) => f.startsWith('part-')).length;
      rmSync(out, { recursive: true, force: true });
      if (written !== PARTITIONS) return reject(new Error(`pool.py wrote ${written} of ${PARTITIONS} partitions`));
      resolve((PARTITIONS * ROWS) / wall);
    });
  });
}

const personBench: Benchmark<World> = {
  name: 'person-csv-aggregation-16x50k',
  unit: 'rows/s',
  baseline: `multiprocessing.Pool(${CORES}) as a whole command (python3 start to exit), same process(), same files`,
  warmup: 1,
  rounds: 5,
  setup,
  candidate: throughGateway,
  baselineRun: pool,
  teardown: async (w) => {
    w.agent.destroy();
    await w.gateway.close();
    await w.store.close();
    await w.engine.stop();
    rmSync(w.dir, { recursive: true, force: true });
  },
};

export const benchmarks: Benchmark[] = [personBench as Benchmark];
