// An attacker's review of issue 16's chain (the authorization stage and the job path in backend-
// shaped pieces), as tests against the real pieces:
//
// 1. What start-up accepts as a declaration. A need that mixes `own` or `decidedInHandler` with the
//    fields of a policy need (object, action, audit, denial, details) looks like a policy decision
//    but is treated as `own`/`decidedInHandler`: the stage never decides it. TypeScript accepts such
//    a literal (every field belongs to some member of the union), so start-up must refuse it. And
//    `config.public` that is not a boolean: authentication skips a route whose `public` is merely
//    truthy, while the stage and the start-up check read only `public === true`; start-up must
//    refuse anything but true or false, so the two stages cannot disagree.
// 2. Where the stage runs: HEAD of a GET route, a route in an encapsulated plugin with a prefix,
//    `app.route` with several methods; the handler never runs on a denial, and a need whose object
//    is named by the request cannot be steered past the policy with `*`, `..`, commas or encodings.
// 3. Fail closed: when the trail refuses the decision, 503 audit_unavailable and no handler, for an
//    allowed caller as for a denied one.
// 4. The job path on a second backend: a job pending on `lab` is decided again as it leaves the
//    queue on lab's catalog (labels and owners as lab has them then), not on the first backend's,
//    where the same names are harmless; the overwrite ownership rule is lab's too, at submission.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey, type AuditEvent } from '../../src/audit/index.js';
import { createIdentityService, ensureServiceCertificates, type IdentityService } from '../../src/auth/index.js';
import { loadConfig } from '../../src/config/index.js';
import { buildGateway } from '../../src/gateway/index.js';
import { NoQuery, serverOptions } from '../../src/http/index.js';
import { loadPolicy, policyAuthorizer, PolicyReloader, type PolicySnapshot, requireDeclaredAccess } from '../../src/policy/index.js';
import type { BackendSubmission, ComputeBackend } from '../../src/proxy/index.js';
import type { Store } from '../../src/store/index.js';
import { type DatasetInfo, type JobSpec, type JobStatus, readTlsMaterial } from '../../src/wire/index.js';
import { readTrail } from '../support/audit-trail.js';
import { type Sandbox, sandbox, TEST_POLICIES } from '../support/gatehouse.js';
import { fetchTls, type Response } from '../support/https.js';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';
import { testBackend, testDataset } from '../support/test-backend.js';
import { openStoreOf } from '../support/test-store.js';
import { until } from '../support/until.js';

const AUDITORS_ONLY = { object: 'audit:events', action: 'read', audit: 'audit.query', denial: 403 } as const;

let demo: PolicySnapshot;

beforeAll(async () => {
  demo = await loadPolicy(TEST_POLICIES);
});

describe('start-up refuses a declaration the stage would not enforce as it reads', () => {
  /** The real start-up hook on a bare app: whether adding the route throws, and with what. */
  const added = async (config: Record<string, unknown>): Promise<string | null> => {
    const bare = Fastify({ ...serverOptions(), logger: false });
    requireDeclaredAccess(bare);
    try {
      bare.get('/v1/x', { config, schema: { querystring: NoQuery } }, async () => ({}));
      return null;
    } catch (err) {
      return (err as Error).message;
    } finally {
      await bare.close();
    }
  };

  it('refuses `own` or `decidedInHandler` beside the fields of a policy need (the policy part would be silently skipped)', async () => {
    const mixed: Record<string, unknown>[] = [
      { ...AUDITORS_ONLY, own: 'the caller’s own events' },
      { ...AUDITORS_ONLY, decidedInHandler: 'each event' },
      { own: 'mine', object: 'audit:events' },
      { own: 'mine', denial: 404 },
      { decidedInHandler: 'per item', action: 'admin' },
      { own: 'mine', details: () => ({}) },
    ];
    for (const authorize of mixed) {
      expect(await added({ authorize }), `${JSON.stringify(authorize)} was accepted`).toEqual(expect.stringMatching(/route GET \/v1\/x config\.authorize (mixes|has both)/));
    }
  });

  it('refuses `public` that is not true or false (authentication would skip a merely truthy one)', async () => {
    for (const config of [{ public: 1 }, { public: 'yes' }, { public: 'yes', authorize: { own: "the caller's own" } }, { public: {}, authorize: { decidedInHandler: 'per item' } }]) {
      expect(await added(config), `${JSON.stringify(config)}`).toEqual(expect.stringMatching(/route GET \/v1\/x config\.public must be true or false/));
    }
  });

  it('still accepts each valid kind alone (the refusals above are about the mix)', async () => {
    for (const config of [{ public: true }, { public: false, authorize: { own: 'mine' } }, { authorize: { decidedInHandler: 'per item' } }, { authorize: AUDITORS_ONLY }, { authorize: { ...AUDITORS_ONLY, object: () => 'audit:events', details: () => ({}) } }]) {
      expect(await added(config), JSON.stringify(config)).toBeNull();
    }
  });
});

describe('the stage on every road into a handler', () => {
  let app: IdentityApp;
  const ran: string[] = [];
  const token: Record<string, string> = {};
  const call = (path: string, user: string | null, method = 'GET') => app.call(path, { method, headers: user ? { authorization: `Bearer ${token[user]}` } : {} });
  const eventsOf = (answer: Response): AuditEvent[] => app.events().filter((e) => e.request_id === answer.headers['x-request-id']);
  const handler = (name: string) => async () => {
    ran.push(name);
    return { ran: name };
  };

  beforeAll(async () => {
    app = await startIdentityApp({
      authorization: {
        authorizer: policyAuthorizer(() => demo),
        routes: (server) => {
          server.get('/v1/review/trail', { config: { authorize: AUDITORS_ONLY }, schema: { querystring: NoQuery } }, handler('trail'));
          // Encapsulated, with a prefix: its own context, the same hooks.
          void server.register(
            async (child) => {
              child.get('/trail', { config: { authorize: AUDITORS_ONLY }, schema: { querystring: NoQuery } }, handler('plugin'));
            },
            { prefix: '/v1/review/plugin' },
          );
          server.route({ method: ['GET', 'DELETE'], url: '/v1/review/multi', config: { authorize: AUDITORS_ONLY }, schema: { querystring: NoQuery }, handler: handler('multi') });
          // A need named by the request, with a deliberately loose schema: the policy must still hold.
          server.get(
            '/v1/review/datasets/:name',
            { config: { authorize: { object: (r) => `dataset:${r.params.name}`, action: 'read', audit: 'dataset.authorize', denial: 404 } }, schema: { params: Type.Object({ name: Type.String({ maxLength: 200 }) }, { additionalProperties: false }), querystring: NoQuery } },
            handler('dataset'),
          );
        },
      },
    });
    for (const [user, groups] of [['alice', ['analysts']], ['carol', ['auditors']]] as const) {
      token[user] = (await app.identity.tokens.login({ user, groups: [...groups], auth_method: 'ldap' })).access_token;
    }
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it('decides HEAD of a GET route, a prefixed plugin route and every method of app.route before the handler', async () => {
    for (const [path, method] of [['/v1/review/trail', 'HEAD'], ['/v1/review/plugin/trail', 'GET'], ['/v1/review/plugin/trail', 'HEAD'], ['/v1/review/multi', 'GET'], ['/v1/review/multi', 'DELETE']] as const) {
      const before = ran.length;
      const denied = await call(path, 'alice', method);
      expect(denied.status, `${method} ${path}`).toBe(403);
      expect(eventsOf(denied), `${method} ${path}`).toEqual([expect.objectContaining({ action: 'audit.query', object: 'audit:events', decision: 'deny' })]);
      expect(ran.length, `${method} ${path} ran its handler on a denial`).toBe(before);
      expect((await call(path, null, method)).status, `${method} ${path} without a credential`).toBe(401);
      const allowed = await call(path, 'carol', method);
      expect(allowed.status, `${method} ${path}`).toBe(200);
      expect(eventsOf(allowed)).toEqual([expect.objectContaining({ decision: 'allow' })]);
    }
    expect((await call('/v1/review/trail', 'alice', 'OPTIONS')).status).toBe(404);
  });

  it('cannot be steered by the name a request carries: *, .., commas and encodings are denied as absent, the handler never runs', async () => {
    expect((await call('/v1/review/datasets/scratch%2Fmine', 'alice')).status).toBe(200); // the route works: scratch/* is alice's to read
    ran.length = 0;
    for (const name of ['*', 'scratch%2F..%2Fsecrets', 'scratch%2F*', '%2A', 'scratch%2Fa,read', 'scratch%2Fa%00', 'scratch%2F%2E%2E%2Fsecrets', '..%2Fscratch%2Fx', 'customers%2C%20read']) {
      const answer = await call(`/v1/review/datasets/${name}`, 'alice');
      expect(answer.status, name).toBe(404);
      expect(answer.json<{ error: string }>().error).toBe('not_found');
      expect(eventsOf(answer), name).toEqual([expect.objectContaining({ action: 'dataset.authorize', decision: 'deny' })]);
    }
    expect(ran).toEqual([]);
  });

  it('fails closed: with the trail refusing, 503 audit_unavailable for the allowed and the denied, and no handler runs', async () => {
    ran.length = 0;
    await app.auditDown();
    try {
      for (const user of ['carol', 'alice']) {
        for (const [path, method] of [['/v1/review/trail', 'GET'], ['/v1/review/trail', 'HEAD'], ['/v1/review/plugin/trail', 'GET'], ['/v1/review/multi', 'DELETE']] as const) {
          const answer = await call(path, user, method);
          expect(answer.status, `${user} ${method} ${path}`).toBe(503);
          if (method !== 'HEAD') expect(answer.json<{ error: string }>().error).toBe('audit_unavailable');
        }
      }
    } finally {
      await app.auditUp();
    }
    expect(ran).toEqual([]);
  });
});

// --- The job path on a second backend --------------------------------------------------------------

/** A backend whose jobs run until the test releases them; its catalog is the test's to change. */
interface GatedBackend extends ComputeBackend {
  readonly received: BackendSubmission[];
  readonly catalog: Map<string, DatasetInfo>;
  release(id: string): void;
}

function gatedBackend(name: string, datasets: DatasetInfo[]): GatedBackend {
  const catalog = new Map(datasets.map((d) => [d.name, d]));
  const jobs = new Map<string, JobStatus>();
  const received: BackendSubmission[] = [];
  return {
    name,
    location: `test:${name}`,
    received,
    catalog,
    readinessCheck: `backend:${name}`,
    readiness: async () => `ok (gated test backend ${name})`,
    capacity: async () => ({ slots: 8 }),
    datasets: async () => [...catalog.values()],
    submit: async (job) => {
      received.push(job);
      const now = new Date().toISOString();
      jobs.set(job.id, {
        id: job.id,
        name: job.spec.name,
        user: job.user,
        state: 'running',
        input: job.spec.input,
        output: job.spec.output,
        runtime: job.spec.runtime,
        resources: job.granted,
        partitions: { total: 1, done: 0, failed: 0, running: 1 },
        workers: 1,
        rows_in: 0,
        rows_out: 0,
        bytes_in: 0,
        bytes_out: 0,
        created_at: now,
        started_at: now,
        finished_at: null,
        core_seconds: 0,
        attempts: 1,
        error: null,
        reason: null,
      });
      return { backendId: job.id };
    },
    status: async (id) => jobs.get(id) ?? null,
    active: async () => [...jobs.values()].filter((j) => j.finished_at === null),
    logs: async (id) => (jobs.has(id) ? Readable.from([`ran on ${name}\n`]) : null),
    cancel: async (id) => jobs.get(id) ?? null,
    release(id) {
      const j = jobs.get(id);
      if (j) jobs.set(id, { ...j, state: 'succeeded', finished_at: new Date().toISOString(), partitions: { total: 1, done: 1, failed: 0, running: 0 }, workers: 0 });
    },
    close: () => undefined,
  };
}

describe('a job on a second backend, as it leaves the queue', () => {
  let home: string;
  let box: Sandbox;
  let store: Store;
  let policy: PolicyReloader;
  let identity: IdentityService;
  let audit: AuditTrail;
  let app: FastifyInstance;
  let lab: GatedBackend;
  let url = '';
  let ca = '';
  let auditDir = '';
  let carla = '';

  const api = (path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> =>
    fetchTls(`${url}${path}`, {
      ca,
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${carla}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });
  const job = (o: Partial<JobSpec>): JobSpec => ({ name: 'copy', input: 'words', output: 'scratch-carla/out', runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, backend: 'lab', ...o });
  const stateOf = async (id: string) => (await api(`/v1/jobs/${id}`)).json<{ state: string; error: string | null }>();

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'gatehouse-chain-review-'));
    const policies = join(home, 'policies');
    cpSync(TEST_POLICIES, policies, { recursive: true });
    // One job at a time for carla, so her second waits in the queue.
    writeFileSync(join(policies, 'policy.csv'), `${readFileSync(join(policies, 'policy.csv'), 'utf8')}\np2, user:carla, max_concurrent_jobs, 1\n`);
    const dataRoot = join(home, 'data');
    mkdirSync(dataRoot);
    box = sandbox({ data: { root: dataRoot }, state: { dir: join(home, 'var') }, certs: { dir: join(home, 'certs') }, policies: { dir: policies }, log: { level: 'warn' } });
    const { config } = loadConfig({ path: box.configFile, env: {} });
    ensureServiceCertificates(config);
    store = await openStoreOf(config);
    policy = await PolicyReloader.start(policies, { requireTests: true });
    identity = await createIdentityService(config, store);
    auditDir = join(home, 'audit');
    audit = await AuditTrail.open({ dir: auditDir, key: loadAuditKey(config.certs.dir), checkpointMs: 3_600_000 });
    // The first (default) backend has the same names, harmless there: words unlabelled, carla's own
    // scratch dataset hers. On lab they start the same, and change while her job waits.
    const main = testBackend('main', [testDataset('words'), testDataset('scratch-carla/mine', [], 'carla'), testDataset('scratch-carla/kept', [], 'carla')]);
    lab = gatedBackend('lab', [testDataset('words'), testDataset('scratch-carla/mine', [], 'carla'), testDataset('scratch-carla/kept', [], 'ana')]);
    const tls = readTlsMaterial(config.certs.dir, 'gateway');
    ca = tls.ca;
    app = await buildGateway({
      tls,
      logLevel: 'warn',
      bodyLimit: config.server.body_limit_bytes,
      store,
      policy,
      backends: [main, lab],
      jobs: { maxPendingPerUser: 4, pollMs: 50, statusCacheMs: 0 },
      identity,
      publicUrl: () => url,
      audit,
      auditRetention: { maxAgeMs: 0, archiveDir: join(auditDir, 'archive') },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    carla = (await identity.tokens.login({ user: 'carla', groups: ['contractors'], auth_method: 'oidc' })).access_token;
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    policy?.close();
    identity?.close();
    await audit?.close();
    await store?.close();
    box?.remove();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it("refuses, at submission, an overwrite of a dataset lab says is someone else's (the first backend says it is hers)", async () => {
    const r = await api('/v1/jobs', { method: 'POST', body: job({ output: 'scratch-carla/kept', mode: 'overwrite' }) });
    expect(r.status, r.body).toBe(403);
    expect(r.json<{ message: string }>().message).toMatch(/scratch-carla\/kept belongs to ana/);
    expect(lab.received).toEqual([]);
  });

  it("decides a pending job again on lab's catalog as it leaves the queue: a label and an owner lab gave meanwhile refuse it", async () => {
    const holder = await api('/v1/jobs', { method: 'POST', body: job({ output: 'scratch-carla/first' }) });
    expect(holder.status, holder.body).toBe(201);
    const holderId = holder.json<{ id: string }>().id;
    await until(() => lab.received.some((s) => s.id === holderId), 10_000, 'the first job on lab');

    const reader = await api('/v1/jobs', { method: 'POST', body: job({ output: 'scratch-carla/second' }) });
    expect(reader.status, reader.body).toBe(201);
    expect(reader.json()).toMatchObject({ state: 'pending' });
    const readerId = reader.json<{ id: string }>().id;
    const overwriter = await api('/v1/jobs', { method: 'POST', body: job({ input: 'scratch-carla/kept', output: 'scratch-carla/mine', mode: 'overwrite' }) });
    expect(overwriter.status, overwriter.body).toBe(201);
    expect(overwriter.json()).toMatchObject({ state: 'pending' });
    const overwriterId = overwriter.json<{ id: string }>().id;

    // While they wait, lab (and only lab) labels words pii and gives scratch-carla/mine to ana.
    lab.catalog.set('words', testDataset('words', ['pii']));
    lab.catalog.set('scratch-carla/mine', testDataset('scratch-carla/mine', [], 'ana'));
    lab.release(holderId);

    for (const id of [readerId, overwriterId]) {
      // Leaving the queue, a job shows as queued while its datasets are decided again: only its end,
      // or its arrival on lab, is an answer (seen in CI, where the re-check took longer than a poll).
      const ended = await until(async () => {
        const s = await stateOf(id);
        return ['failed', 'succeeded', 'running'].includes(s.state) || lab.received.some((x) => x.id === id) ? s : undefined;
      }, 20_000, `job ${id} to leave the queue`);
      expect(ended.state, `job ${id}`).toBe('failed');
      expect(ended.error ?? '').toMatch(/no longer allowed when admitted from the queue/);
    }
    // Neither reached lab; each refusal is recorded on lab's terms, leaving the queue.
    expect(lab.received.map((s) => s.id)).toEqual([holderId]);
    const trail = readTrail(auditDir).filter((e) => e.action === 'dataset.authorize' && e.details?.leaving_queue === true);
    expect(trail).toContainEqual(expect.objectContaining({ object: 'dataset:words', decision: 'deny', details: expect.objectContaining({ requested: 'read', job: readerId, rule_line: expect.stringMatching(/^policy\.csv:\d+$/) }) }));
    expect(trail).toContainEqual(expect.objectContaining({ object: 'dataset:scratch-carla/mine', decision: 'deny', details: expect.objectContaining({ requested: 'overwrite', owner: 'ana', job: overwriterId }) }));
  });
});
