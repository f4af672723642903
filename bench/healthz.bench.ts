// gateway-healthz: GET /healthz through the real gateway over HTTPS, against a bare node:https
// server in the same process with the same certificate and the same JSON body. The gap between
// the two is what the gateway's own machinery costs on its cheapest route.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { type RunningService, startGateway } from '../src/gateway/index.js';
import { PACKAGE_ROOT, VERSION } from '../src/version.js';
import { CERT_FILES, readTlsMaterial } from '../src/wire/index.js';
import type { Benchmark } from './measure.js';
import { throughput } from './support/load.js';

const CONCURRENCY = 16; // requests in flight, one keep-alive socket each
const REQUESTS_PER_ROUND = 10_000; // ~0.5 s a side on 2 cores: long enough to smooth out GC, short enough for a quick run
const ROUND_LIMIT_MS = 20_000; // a round that takes longer is broken, not slow
const REQUEST_TIMEOUT_MS = 5_000;

interface Context {
  dir: string;
  gateway: RunningService;
  gatewayUrl: URL;
  gatewayAgent: Agent;
  bare: Server;
  bareUrl: URL;
  bareAgent: Agent;
}

const healthz: Benchmark<Context> = {
  name: 'gateway-healthz',
  unit: 'req/s',
  baseline: 'bare node:https server, same TLS and body',

  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
    try {
      // Silent: a log line a request on stdout would also corrupt `--json`.
      const { config } = loadConfig({
        path: undefined,
        cwd: dir,
        env: {
          GATEHOUSE_SERVER_PORT: '0',
          GATEHOUSE_ENGINE_PORT: '0',
          GATEHOUSE_LOG_LEVEL: 'silent',
          GATEHOUSE_POLICIES_DIR: join(PACKAGE_ROOT, 'policies'),
        },
      });
      // /healthz does not touch the engine, so none is started: the figure is the gateway alone.
      const gateway = await startGateway(config);
      const tls = readTlsMaterial(config.certs.dir, 'gateway');
      const bare = await startBare(tls.cert, tls.key);
      const ca = readFileSync(join(config.certs.dir, CERT_FILES.ca.cert), 'utf8');
      const ctx: Context = {
        dir,
        gateway,
        gatewayUrl: new URL('/healthz', gateway.url),
        gatewayAgent: clientAgent(ca),
        bare,
        bareUrl: new URL(`https://127.0.0.1:${(bare.address() as AddressInfo).port}/healthz`),
        bareAgent: clientAgent(ca),
      };
      await sameBody(ctx);
      return ctx;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  },

  candidate: (ctx) => throughputOf(ctx.gatewayAgent, ctx.gatewayUrl),
  baselineRun: (ctx) => throughputOf(ctx.bareAgent, ctx.bareUrl),

  async teardown(ctx) {
    // Clients first, so neither server waits on a keep-alive socket to go idle.
    ctx.gatewayAgent.destroy();
    ctx.bareAgent.destroy();
    ctx.bare.closeAllConnections();
    await Promise.all([ctx.gateway.close(), new Promise<void>((resolve) => ctx.bare.close(() => resolve()))]);
    rmSync(ctx.dir, { recursive: true, force: true });
  },
};

export const benchmarks: Benchmark[] = [healthz];

/** The baseline: what answering /healthz costs with nothing but Node's TLS and HTTP in the way. */
function startBare(cert: string, key: string): Promise<Server> {
  const server = createServer({ cert, key, minVersion: 'TLSv1.2' }, (req, res) => {
    // Built per request, as the gateway's handler does, so both sides pay for the JSON.
    const body = JSON.stringify({ status: 'ok', service: 'gateway', version: VERSION, uptime_s: Math.round(process.uptime()) });
    res.writeHead(req.url === '/healthz' ? 200 : 404, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.keepAliveTimeout = 72_000; // fastify's default, so neither side drops idle sockets between rounds
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function clientAgent(ca: string): Agent {
  return new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca });
}

/** Guards the comparison: if /healthz grows a field, the baseline must grow it too. */
async function sameBody(ctx: Context): Promise<void> {
  const [gateway, bare] = await Promise.all([fetchJson(ctx.gatewayAgent, ctx.gatewayUrl), fetchJson(ctx.bareAgent, ctx.bareUrl)]);
  const keys = (o: Record<string, unknown>) => Object.keys(o).sort().join(',');
  if (keys(gateway) !== keys(bare) || gateway.status !== bare.status || gateway.version !== bare.version) {
    throw new Error(`the baseline body no longer matches the gateway's /healthz: ${JSON.stringify(gateway)} vs ${JSON.stringify(bare)}`);
  }
}

function throughputOf(agent: Agent, url: URL): Promise<number> {
  return throughput({ agent, url, concurrency: CONCURRENCY, requests: REQUESTS_PER_ROUND, limitMs: ROUND_LIMIT_MS, timeoutMs: REQUEST_TIMEOUT_MS });
}

function fetchJson(agent: Agent, url: URL): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${url.href} answered ${res.statusCode}: ${body}`));
        else resolve(JSON.parse(body) as Record<string, unknown>);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.href} timed out after ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}
