// Reading a dataset through the gateway (issue: data in and out), against the same bytes fetched
// straight from the engine over the same mTLS the gateway itself uses, in the same run:
//   dataset-download       MB/s of one large partition (>= 200 MB) through GET /v1/datasets/:name/partitions/0
//                          (data.gateway_reads auto, as `npm start` runs: the gateway reads data.root itself)
//                          vs GET /dataset/partition on the engine with the gateway's client certificate
//   dataset-download-proxied  the same through a second gateway with data.gateway_reads: engine (the engine
//                          streams to it over mTLS, as for a gateway on another machine), same baseline
//   dataset-download-rss   the gateway process's peak RSS growth while it serves that download vs the
//                          partition's own size: the fraction of the file the gateway held (the engine's
//                          own growth, the earlier baseline, can be 0 and makes no ratio)
//   dataset-preview        ms for ?preview=20 through the gateway vs the first 64 KiB straight from the engine
//   dataset-manifest       ms for GET /v1/datasets/:name (decided, one durable audit record) vs the engine's
//                          GET /dataset: what a decided, recorded read costs before any partition byte
// The gateway and the engine are separate processes (as `npm start` runs them), so their memory is
// read from /proc and the client's own work is in neither.
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createIdentityService } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { loadConfig } from '../src/config/index.js';
import { openStore } from '../src/store/index.js';
import { PACKAGE_ROOT } from '../src/version.js';
import type { Benchmark } from './measure.js';
import { startEngineProcess } from './support/engine.js';
import { type Service, startService } from './support/service-process.js';

const DATASET = 'scratch/bench-big';
/** Rows of `id,word,amount`: about 210 MB (21 bytes a row). */
const ROWS = 10_000_000;
const PREVIEW_ROWS = 20;
const PREVIEWS_PER_ROUND = 25;
const RSS_SAMPLE_MS = 20;

interface World {
  dir: string;
  engine: Service;
  gateway: Service;
  token: string;
  /** A gateway of its own state (store, audit) with data.gateway_reads: engine, and its token. */
  proxied: Service;
  proxiedToken: string;
  proxiedAgent: Agent;
  etag: string;
  bytes: number;
  gatewayAgent: Agent;
  engineAgent: Agent;
}

let world: Promise<World> | null = null;
let users = 0;

async function build(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-read-'));
  chmodSync(dir, 0o711);
  const policies = join(dir, 'policies');
  cpSync(join(PACKAGE_ROOT, 'test', 'fixtures', 'policies'), policies, { recursive: true });
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(
    configFile,
    stringify({
      server: { port: 0 },
      engine: { port: 0, slots: 1, task_uids: '397000-397999' },
      data: { root: 'data' },
      state: { dir: 'var' },
      certs: { dir: 'certs' },
      policies: { dir: policies },
      dev_idp: { enabled: false },
      log: { level: 'silent' },
    }),
  );
  const lines: string[] = ['id,word,amount'];
  for (let i = 0; i < ROWS; i++) lines.push(`${i},w${(i * 7919) % 100_003},${(i % 997) * 1.25}`);
  const text = `${lines.join('\n')}\n`;
  // Owned by the bench user in its own scratch namespace: the read is decided as for any owner.
  await writeDataset(join(dir, 'data'), DATASET, { format: 'csv', columns: ['id', 'word', 'amount'], owner: 'bench', labels: [], produced_by: 'bench', partitions: [{ text, rows: ROWS }] });
  const engine = await startEngineProcess(configFile, dir);
  const env = { GATEHOUSE_ENGINE_PORT: new URL(engine.url).port };
  const proxiedEnv = { ...env, GATEHOUSE_DATA_GATEWAY_READS: 'engine', GATEHOUSE_STATE_DIR: 'var-proxied' };
  const gateway = await startService(configFile, dir, 'gateway', env);
  const proxied = await startService(configFile, dir, 'gateway', proxiedEnv);
  const tokenOf = async (vars: Record<string, string>) => {
    const { config } = loadConfig({ path: configFile, cwd: dir, env: vars });
    const store = await openStore({ stateDir: config.state.dir });
    const identity = await createIdentityService(config, store);
    const token = (await identity.tokens.login({ user: 'bench', groups: ['analysts'], auth_method: 'ldap' })).access_token;
    identity.close();
    await store.close();
    return token;
  };
  const token = await tokenOf(env);
  const proxiedToken = await tokenOf(proxiedEnv);
  const certs = join(dir, 'certs');
  const ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
  const gatewayAgent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const proxiedAgent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const engineAgent = new Agent({ keepAlive: true, maxSockets: 1, ca, cert: readFileSync(join(certs, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(certs, 'gateway-client.key'), 'utf8') });
  const read = JSON.parse((await fetchAll(engineAgent, new URL(`/dataset?name=${encodeURIComponent(DATASET)}`, engine.url))).text) as { etag: string; manifest: { partitions: { bytes: number }[] } };
  return { dir, engine, gateway, token, proxied, proxiedToken, proxiedAgent, etag: read.etag, bytes: read.manifest.partitions[0]!.bytes, gatewayAgent, engineAgent };
}

function theWorld(): Promise<World> {
  users++;
  world ??= build();
  return world;
}

async function teardown(): Promise<void> {
  if (world === null || --users > 0) return;
  const w = await world;
  world = null;
  w.gatewayAgent.destroy();
  w.proxiedAgent.destroy();
  w.engineAgent.destroy();
  await w.gateway.stop();
  await w.proxied.stop();
  await w.engine.stop();
  rmSync(w.dir, { recursive: true, force: true });
}

const viaGateway = (w: World, query = '') => ({ agent: w.gatewayAgent, url: new URL(`/v1/datasets/${DATASET}/partitions/0${query}`, w.gateway.url), headers: { authorization: `Bearer ${w.token}` } });
const viaProxied = (w: World) => ({ agent: w.proxiedAgent, url: new URL(`/v1/datasets/${DATASET}/partitions/0`, w.proxied.url), headers: { authorization: `Bearer ${w.proxiedToken}` } });
const direct = (w: World, end: number) => ({
  agent: w.engineAgent,
  url: new URL(`/dataset/partition?${new URLSearchParams({ name: DATASET, n: '0', etag: w.etag, start: '0', end: String(end) })}`, w.engine.url),
  headers: {},
});

interface Fetched {
  status: number;
  bytes: number;
  text: string;
}

/** GETs a URL, counting the body's bytes (kept as text only when asked: a 200 MB body is only counted). */
function fetchAll(agent: Agent, url: URL, headers: Record<string, string> = {}, keep = true): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent, headers }, (res) => {
      let bytes = 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (keep) chunks.push(c);
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = keep || status >= 400 ? Buffer.concat(chunks).toString('utf8') : '';
        if (status >= 400) reject(new Error(`GET ${url.pathname}: ${status} ${text}`));
        else resolve({ status, bytes, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** MB/s of one whole download; the bytes must be the partition's. */
async function download(w: World, target: { agent: Agent; url: URL; headers: Record<string, string> }): Promise<number> {
  const t0 = performance.now();
  const got = await fetchAll(target.agent, target.url, target.headers, false);
  const seconds = (performance.now() - t0) / 1000;
  if (got.bytes !== w.bytes) throw new Error(`${target.url.pathname}: ${got.bytes} bytes, the partition has ${w.bytes}`);
  return w.bytes / 1e6 / seconds;
}

function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) / 1024;
}

/** Peak RSS growth (MB) of `pid` over a download, sampled every RSS_SAMPLE_MS. */
async function rssGrowth(w: World, pid: number, target: { agent: Agent; url: URL; headers: Record<string, string> }): Promise<number> {
  const before = rssMb(pid);
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid))), RSS_SAMPLE_MS);
  try {
    await download(w, target);
  } finally {
    clearInterval(timer);
  }
  return Math.max(0, Math.max(peak, rssMb(pid)) - before);
}

async function medianMs(times: number, once: () => Promise<unknown>): Promise<number> {
  const all: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await once();
    all.push(performance.now() - t0);
  }
  all.sort((a, b) => a - b);
  return all[Math.floor(all.length / 2)]!;
}

const downloadBench: Benchmark<World> = {
  name: 'dataset-download',
  unit: 'MB/s',
  baseline: "GET /dataset/partition straight from the engine, same mTLS (the gateway's client certificate)",
  warmup: 1,
  rounds: 5,
  setup: theWorld,
  candidate: (w) => download(w, viaGateway(w)),
  baselineRun: (w) => download(w, direct(w, w.bytes - 1)),
  teardown,
};

const proxiedBench: Benchmark<World> = {
  ...downloadBench,
  name: 'dataset-download-proxied',
  candidate: (w) => download(w, viaProxied(w)),
};

const rssBench: Benchmark<World> = {
  name: 'dataset-download-rss',
  unit: 'MB',
  baseline: 'the partition itself (the ratio: the fraction of the file the gateway held)',
  warmup: 1,
  rounds: 3,
  setup: theWorld,
  candidate: (w) => rssGrowth(w, w.gateway.pid, viaGateway(w)),
  // A size, not a measurement: it can be neither 0 nor noise.
  baselineRun: async (w) => w.bytes / 1024 / 1024,
  teardown,
};

const previewBench: Benchmark<World> = {
  name: 'dataset-preview',
  unit: 'ms',
  baseline: 'the first 64 KiB of the partition straight from the engine',
  setup: theWorld,
  candidate: (w) =>
    medianMs(PREVIEWS_PER_ROUND, async () => {
      const t = viaGateway(w, `?preview=${PREVIEW_ROWS}`);
      const got = await fetchAll(t.agent, t.url, t.headers);
      const rows = (JSON.parse(got.text) as { rows: unknown[] }).rows;
      if (rows.length !== PREVIEW_ROWS) throw new Error(`preview answered ${rows.length} rows, asked ${PREVIEW_ROWS}`);
    }),
  baselineRun: (w) =>
    medianMs(PREVIEWS_PER_ROUND, async () => {
      const t = direct(w, 64 * 1024 - 1);
      await fetchAll(t.agent, t.url, t.headers);
    }),
  teardown,
};

const manifestBench: Benchmark<World> = {
  name: 'dataset-manifest',
  unit: 'ms',
  baseline: "the manifest straight from the engine (GET /dataset)",
  setup: theWorld,
  candidate: (w) =>
    medianMs(PREVIEWS_PER_ROUND, async () => {
      await fetchAll(w.gatewayAgent, new URL(`/v1/datasets/${DATASET}`, w.gateway.url), { authorization: `Bearer ${w.token}` });
    }),
  baselineRun: (w) =>
    medianMs(PREVIEWS_PER_ROUND, async () => {
      await fetchAll(w.engineAgent, new URL(`/dataset?name=${encodeURIComponent(DATASET)}`, w.engine.url));
    }),
  teardown,
};

export const benchmarks: Benchmark[] = [downloadBench as Benchmark, proxiedBench as Benchmark, rssBench as Benchmark, previewBench as Benchmark, manifestBench as Benchmark];
