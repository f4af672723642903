// The job path's own cost: the same calls through the gateway (authenticate, authorize, admit,
// audit, proxy) and made directly to the engine with a ticket the bench signs as the gateway would.
//   gateway-submit      median latency of POST /v1/jobs vs POST /jobs on the engine (one at a time,
//                       each job left to finish before the next, so both sides meet an idle engine)
//   gateway-job-status  GET /v1/jobs/:id throughput vs GET /jobs/:id on the engine, for a running job
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createIdentityService } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { loadConfig } from '../src/config/index.js';
import { type RunningService, startGateway } from '../src/gateway/index.js';
import { openStore, type Store } from '../src/store/index.js';
import type { JobSpec } from '../src/wire/index.js';
import type { Benchmark } from './measure.js';
import { EngineClient, type EngineProcess, startEngineProcess } from './support/engine.js';
import { gatewayCall, unboundedBenchPolicies } from './support/gateway-calls.js';
import { throughput } from './support/load.js';

const SUBMITS_PER_ROUND = 15;
const CONCURRENCY = 16;
const STATUS_REQUESTS_PER_ROUND = 5_000;
const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";

interface World {
  dir: string;
  engine: EngineProcess;
  /** The engine as the bench reaches it directly (the gateway's certificate and ticket key). */
  direct: EngineClient;
  gateway: RunningService;
  store: Store;
  token: string;
  ca: string;
  gatewayAgent: Agent;
  engineAgent: Agent;
  outputs: number;
  /** A long job, for the status comparison: the same job asked for on both sides. */
  running: string | null;
}

let world: Promise<World> | null = null;
let users = 0;

function theWorld(): Promise<World> {
  world ??= build();
  return world;
}

async function build(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-jobs-'));
  chmodSync(dir, 0o711); // task uids walk down to the data root
  const policies = unboundedBenchPolicies(dir);
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(
    configFile,
    stringify({
      server: { port: 0 },
      // Its own task uids: two engines on one machine must not hand out the same ones.
      engine: { port: 0, slots: 2, task_uids: '391000-391999' },
      data: { root: 'data' },
      state: { dir: 'var' },
      certs: { dir: 'certs' },
      policies: { dir: policies },
      log: { level: 'silent' },
    }),
  );
  await writeDataset(join(dir, 'data'), 'scratch/bench-in', { format: 'csv', columns: ['id', 'word'], owner: 'bench', labels: [], produced_by: 'bench', partitions: [{ text: 'id,word\n1,a\n2,b\n', rows: 2 }] });
  const engine = await startEngineProcess(configFile, dir);
  const { config } = loadConfig({ path: configFile, cwd: dir, env: { GATEHOUSE_ENGINE_PORT: new URL(engine.url).port } });
  const gateway = await startGateway(config);
  // A login as the gateway would issue it (same store, same signing keys), without an IdP in the way.
  const store = await openStore({ stateDir: config.state.dir });
  const identity = await createIdentityService(config, store);
  const token = (await identity.tokens.login({ user: 'bench', groups: ['analysts'], auth_method: 'ldap' })).access_token;
  identity.close();
  const ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
  const certs = join(dir, 'certs');
  return {
    dir,
    engine,
    direct: new EngineClient(engine.url, certs),
    gateway,
    store,
    token,
    ca,
    gatewayAgent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca }),
    engineAgent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca, cert: readFileSync(join(certs, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(certs, 'gateway-client.key'), 'utf8') }),
    outputs: 0,
    running: null,
  };
}

async function teardown(): Promise<void> {
  if (world === null || --users > 0) return;
  const w = await world;
  world = null;
  w.gatewayAgent.destroy();
  w.engineAgent.destroy();
  w.direct.close();
  await w.gateway.close();
  await w.store.close();
  await w.engine.stop();
  rmSync(w.dir, { recursive: true, force: true });
}

function spec(w: World, source = COPY): JobSpec {
  w.outputs += 1;
  return { name: 'bench', input: 'scratch/bench-in', output: `scratch/bench-out-${w.outputs}`, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 600 } };
}

function post(w: World, body: JobSpec): Promise<{ status: number; text: string }> {
  return gatewayCall({ url: w.gateway.url, agent: w.gatewayAgent, token: w.token }, 'POST', '/v1/jobs', body);
}

/** Median of SUBMITS_PER_ROUND submissions, each timed alone and left to finish before the next. */
async function submitLatency(w: World, submit: (s: JobSpec) => Promise<string>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < SUBMITS_PER_ROUND; i++) {
    const s = spec(w);
    const t0 = performance.now();
    const id = await submit(s);
    times.push(performance.now() - t0);
    const done = await w.direct.waitFinal(id, 10);
    if (done.status.state !== 'succeeded') throw new Error(`bench job ${id} ${done.status.state}: ${done.status.error}`);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const submitBench: Benchmark<World> = {
  name: 'gateway-submit',
  unit: 'ms',
  baseline: 'POST /jobs straight to the engine (ticket signed by the bench)',
  setup: async () => {
    users++;
    return theWorld();
  },
  candidate: (w) =>
    submitLatency(w, async (s) => {
      const answer = await post(w, s);
      if (answer.status !== 201) throw new Error(`POST /v1/jobs answered ${answer.status}: ${answer.text}`);
      return (JSON.parse(answer.text) as { id: string }).id;
    }),
  baselineRun: (w) => submitLatency(w, (s) => w.direct.submit(s)),
  teardown,
};

const statusBench: Benchmark<World> = {
  name: 'gateway-job-status',
  unit: 'req/s',
  baseline: 'GET /jobs/:id straight to the engine',
  async setup() {
    users++;
    const w = await theWorld();
    if (w.running === null) {
      const answer = await post(w, spec(w, 'import time\ndef process(i, o, ctx):\n    time.sleep(3600)\n'));
      if (answer.status !== 201) throw new Error(`POST /v1/jobs answered ${answer.status}: ${answer.text}`);
      w.running = (JSON.parse(answer.text) as { id: string }).id;
    }
    return w;
  },
  candidate: (w) => load(w.gatewayAgent, new URL(`/v1/jobs/${w.running}`, w.gateway.url), { authorization: `Bearer ${w.token}` }),
  baselineRun: (w) => load(w.engineAgent, new URL(`/jobs/${w.running}`, w.engine.url)),
  teardown,
};

function load(agent: Agent, url: URL, headers: Record<string, string> = {}): Promise<number> {
  return throughput({ agent, url, headers, concurrency: CONCURRENCY, requests: STATUS_REQUESTS_PER_ROUND, limitMs: 30_000, timeoutMs: 5_000 });
}

export const benchmarks: Benchmark[] = [submitBench as Benchmark, statusBench as Benchmark];
