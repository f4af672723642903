// One Gatehouse for the replicas bench, as separate processes in a temporary folder: its own
// engine, development IdP and gateway(s), over the embedded SQLite store or over a PostgreSQL
// database (then more gateways can be added, each with its own state.dir and audit trail, as
// test/support/stack.ts startReplica does). Bench users benchNN (analysts) each log in once through
// the device flow, and each gets one long job that holds their max_concurrent_jobs of 1, so every
// further submission of theirs is decided `pending`. Nothing outside the folder is touched.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { PACKAGE_ROOT } from '../../src/version.js';
import type { JobSpec } from '../../src/wire/index.js';
import { approveDevice } from '../../test/support/oidc-browser.js';
import type { Postgres } from '../../test/support/postgres.js';
import { until } from '../../test/support/until.js';
import { type Service, startService } from './service-process.js';

const TIMEOUT_MS = 30_000;
/** Holds its user's one concurrent job for the whole run (the engine is stopped at the end). */
const HOLD = 'import time\ndef process(i, o, ctx):\n    time.sleep(3600)\n';


export interface Answer {
  status: number;
  body: string;
}

/** One gateway as a client reaches it: its URL and a kept-alive agent. */
export class Gateway {
  private readonly agent: Agent;

  constructor(
    readonly service: Service,
    ca: string,
    sockets: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets, ca });
  }

  call(method: string, path: string, token?: string, body?: unknown): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      const text = body === undefined ? undefined : JSON.stringify(body);
      if (text !== undefined) headers['content-type'] = 'application/json';
      const req = request(`${this.service.url}${path}`, { method, agent: this.agent, headers, timeout: TIMEOUT_MS }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.end(text);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface WorldOptions {
  /** Absent: the embedded SQLite store. */
  postgres?: Postgres;
  users: number;
  /** The engine's task uids; two worlds on one host must not overlap. */
  taskUids: string;
  /** Sockets each gateway client keeps (the most submissions in flight to one gateway). */
  sockets: number;
}

export class World {
  readonly gateways: Gateway[] = [];
  /** benchNN → an access token, valid on every gateway of the world (one store, one set of keys). */
  readonly tokens = new Map<string, string>();
  private outputs = 0;
  private readonly services: Service[] = [];
  private readonly names: string[] = [];

  private constructor(
    readonly dir: string,
    private readonly configFile: string,
    readonly ca: string,
    private readonly sockets: number,
    private readonly engine: Service,
    private readonly idp: Service,
  ) {}

  static async start(o: WorldOptions): Promise<World> {
    const dir = mkdtempSync(join(tmpdir(), `gatehouse-bench-replicas-${o.postgres ? 'pg' : 'sqlite'}-`));
    chmodSync(dir, 0o711); // task uids walk down to the data root
    const names = benchUsers(o.users);
    const demo = (parse(readFileSync(join(PACKAGE_ROOT, 'dev-idp', 'users.yaml'), 'utf8')) as { users: unknown[] }).users;
    const extra = names.map((n) => ({ username: n, password: `${n}-bench`, name: n, email: `${n}@example.test`, groups: ['analysts'] }));
    writeFileSync(join(dir, 'users.yaml'), stringify({ users: [...demo, ...extra] }));
    const policies = join(dir, 'policies');
    cpSync(join(PACKAGE_ROOT, 'policies'), policies, { recursive: true });
    // One running job each: the held one, so every submission after it waits (see replicas.bench.ts).
    const quota = names.map((n) => `p2, user:${n}, max_concurrent_jobs, 1`).join('\n');
    writeFileSync(join(policies, 'policy.csv'), `${readFileSync(join(policies, 'policy.csv'), 'utf8')}\n${quota}\n`);
    await writeDataset(join(dir, 'data'), 'scratch/bench-in', { format: 'csv', columns: ['id', 'word'], owner: 'bench', labels: [], produced_by: 'bench', partitions: [{ text: 'id,word\n1,a\n2,b\n', rows: 2 }] });
    const configFile = join(dir, 'gatehouse.yaml');
    writeFileSync(
      configFile,
      stringify({
        server: { host: '127.0.0.1', port: 0 },
        engine: { host: '127.0.0.1', port: 0, slots: 2, task_uids: o.taskUids },
        dev_idp: { enabled: true, port: 0, users_file: join(dir, 'users.yaml') },
        data: { root: join(dir, 'data') },
        state: { dir: join(dir, 'var') },
        certs: { dir: join(dir, 'certs') },
        policies: { dir: policies },
        // A run lasts longer than the default 15 minutes of an access token.
        tokens: { access_ttl: '4h' },
        ...(o.postgres ? { store: { url: await o.postgres.database('bench'), password_file: o.postgres.passwordFile } } : {}),
        log: { level: 'warn' },
      }),
    );
    const started: Service[] = [];
    try {
      const engine = await startService(configFile, dir, 'engine');
      started.push(engine);
      const idp = await startService(configFile, dir, 'dev-idp');
      started.push(idp);
      const world = new World(dir, configFile, readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8'), o.sockets, engine, idp);
      await world.addGateway('a');
      for (const n of names) world.tokens.set(n, await world.login(n));
      await world.holdOneJobEach();
      return world;
    } catch (err) {
      await Promise.all(started.map((s) => s.stop()));
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Another `gatehouse gateway` over the same store, engine, IdP and certificates, with its own state.dir and audit trail. */
  async addGateway(name: string): Promise<Gateway> {
    const home = join(this.dir, 'replicas', name);
    mkdirSync(home, { recursive: true });
    const service = await startService(this.configFile, this.dir, 'gateway', {
      GATEHOUSE_ENGINE_PORT: new URL(this.engine.url).port,
      GATEHOUSE_DEV_IDP_PORT: new URL(this.idp.url).port,
      GATEHOUSE_STATE_DIR: join(home, 'var'),
      GATEHOUSE_AUDIT_DIR: join(home, 'audit'),
    });
    this.services.push(service);
    this.names.push(name);
    const gateway = new Gateway(service, this.ca, this.sockets);
    this.gateways.push(gateway);
    return gateway;
  }

  /** Each gateway's pid by `gateway-<name>`, and the engine's (whose tree holds its tasks). */
  processes(): Record<string, number> {
    return { ...Object.fromEntries(this.services.map((s, i) => [`gateway-${this.names[i]}`, s.pid])), engine: this.engine.pid };
  }

  /** A submission to scratch/bench-in with an output of its own. */
  spec(source = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n"): JobSpec {
    this.outputs += 1;
    return { name: 'bench', input: 'scratch/bench-in', output: `scratch/bench-out-${this.outputs}`, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 3600 } };
  }

  async stop(): Promise<void> {
    for (const g of this.gateways) g.close();
    await Promise.all(this.services.map((s) => s.stop()));
    await Promise.all([this.idp.stop(), this.engine.stop()]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SSO through the first gateway's device grant, approved in the development provider as a browser would. */
  private async login(user: string): Promise<string> {
    const g = this.gateways[0]!;
    const start = await g.call('POST', '/v1/auth/device', undefined, {});
    if (start.status !== 200) throw new Error(`POST /v1/auth/device answered ${start.status}: ${start.body}`);
    const { device_code, verification_uri_complete } = JSON.parse(start.body) as { device_code: string; verification_uri_complete: string };
    const { outcome } = await approveDevice(verification_uri_complete, { username: user, password: `${user}-bench` });
    if (outcome !== 'approved') throw new Error(`the IdP did not approve ${user}'s device login: ${outcome}`);
    const answer = await g.call('POST', '/v1/auth/device/token', undefined, { device_code });
    if (answer.status !== 200) throw new Error(`POST /v1/auth/device/token answered ${answer.status}: ${answer.body}`);
    return (JSON.parse(answer.body) as { access_token: string }).access_token;
  }

  /** Each user's one allowed job, admitted and handed to the engine (queued there or running: held either way). */
  private async holdOneJobEach(): Promise<void> {
    const g = this.gateways[0]!;
    for (const [user, token] of this.tokens) {
      const answer = await g.call('POST', '/v1/jobs', token, this.spec(HOLD));
      const created = answer.status === 201 ? (JSON.parse(answer.body) as { state: string }) : null;
      if (created === null || created.state === 'pending') throw new Error(`${user}'s held job: ${answer.status} ${answer.body}`);
    }
    // The quota as the gateway sees it: one job held by each, nothing waiting.
    for (const [user, token] of this.tokens) {
      await until(
        async () => {
          const q = JSON.parse((await g.call('GET', '/v1/quota', token)).body) as { usage: { running_jobs: number }; pending: unknown[] };
          return q.usage.running_jobs === 1 && q.pending.length === 0 ? true : undefined;
        },
        30_000,
        `${user} holding one job`,
      );
    }
  }
}

export function benchUsers(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `bench${String(i + 1).padStart(2, '0')}`);
}

