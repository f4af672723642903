// Each job is authorized against ITS OWN backend's catalog. A real gateway (built in this process
// with buildGateway: real store, policy, identity, audit trail, HTTPS) has two backends: the bundled
// engine (a real engine process, first, the default) and a second, in-process test backend `lab`
// (test/support/test-backend.ts) whose catalog holds `lab-patients`, labelled pii there and nowhere
// else. A job naming `backend: lab` over it is decided by lab's labels: a contractor (pii denied)
// gets 403 naming the rule, an analyst gets 201 and the job runs on lab with the label carried to
// its output. The listing, explain and readiness go through the backend list too.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { createIdentityService, ensureServiceCertificates, type IdentityService } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { loadConfig } from '../src/config/index.js';
import { buildGateway } from '../src/gateway/index.js';
import { PolicyReloader } from '../src/policy/index.js';
import { createBackends } from '../src/proxy/index.js';
import type { Store } from '../src/store/index.js';
import { type JobSpec, readTlsMaterial } from '../src/wire/index.js';
import { readTrail } from './support/audit-trail.js';
import { type EngineProcess, startEngineProcess } from './support/engine.js';
import { type Sandbox, sandbox, TEST_POLICIES } from './support/gatehouse.js';
import { followLog } from './support/followed-log.js';
import { fetchTls, type Response } from './support/https.js';
import { type TestBackend, testBackend, testDataset } from './support/test-backend.js';
import { openStoreOf } from './support/test-store.js';
import { until } from './support/until.js';

let home: string;
let box: Sandbox;
let engine: EngineProcess;
let lab: TestBackend;
let store: Store;
let policy: PolicyReloader;
let identity: IdentityService;
let audit: AuditTrail;
let app: FastifyInstance;
let url = '';
let ca = '';
let auditDir = '';
const tokens: Record<string, string> = {};

const CARLA = { user: 'carla', groups: ['contractors'], auth_method: 'oidc' as const };
const ANA = { user: 'ana', groups: ['analysts'], auth_method: 'oidc' as const };

function api(path: string, who: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  return fetchTls(`${url}${path}`, {
    ca,
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${tokens[who]}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

const job = (o: Partial<JobSpec>): JobSpec => ({ name: 'copy', input: 'lab-patients', output: 'scratch-x/out', runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, ...o });

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-job-backends-'));
  const policies = join(home, 'policies');
  cpSync(TEST_POLICIES, policies, { recursive: true });
  // Both roles may read lab's datasets by name; the label lab gives lab-patients decides the rest.
  writeFileSync(join(policies, 'policy.csv'), `${readFileSync(join(policies, 'policy.csv'), 'utf8')}\np, role:analysts, dataset:lab-*, read, allow\np, role:contractors, dataset:lab-*, read, allow\n`);
  const dataRoot = join(home, 'data');
  mkdirSync(dataRoot);
  box = sandbox({ data: { root: dataRoot }, state: { dir: join(home, 'var') }, certs: { dir: join(home, 'certs') }, policies: { dir: policies }, log: { level: 'warn' } });
  const { config } = loadConfig({ path: box.configFile, env: {} });
  ensureServiceCertificates(config);
  await writeDataset(dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  engine = await startEngineProcess(box);
  config.engine.port = Number(new URL(engine.url).port);

  store = await openStoreOf(config);
  policy = await PolicyReloader.start(policies, { requireTests: true });
  identity = await createIdentityService(config, store);
  auditDir = join(home, 'audit');
  audit = await AuditTrail.open({ dir: auditDir, key: loadAuditKey(config.certs.dir), checkpointMs: 3_600_000 });
  lab = testBackend('lab', [testDataset('lab-patients', ['pii'], 'lab'), testDataset('lab-sites')]);
  const tls = readTlsMaterial(config.certs.dir, 'gateway');
  ca = tls.ca;
  app = await buildGateway({
    tls,
    logLevel: 'warn',
    bodyLimit: config.server.body_limit_bytes,
    store,
    policy,
    backends: [...createBackends(config, readTlsMaterial(config.certs.dir, 'gatewayClient'), store), lab],
    jobs: { maxPendingPerUser: 4, pollMs: 50, statusCacheMs: 0 },
    identity,
    publicUrl: () => url,
    audit,
    auditRetention: { maxAgeMs: 0, archiveDir: join(auditDir, 'archive') },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  tokens.carla = (await identity.tokens.login(CARLA)).access_token;
  tokens.ana = (await identity.tokens.login(ANA)).access_token;
  tokens.anaPosix = (await identity.tokens.login({ ...ANA, posix_user: 'ana_lab' })).access_token;
}, 60_000);

afterAll(async () => {
  await app?.close();
  policy?.close();
  identity?.close();
  await audit?.close();
  await store?.close();
  await engine?.stop();
  box?.remove();
  rmSync(home, { recursive: true, force: true });
});

describe('a job on a second backend', () => {
  it("is denied by that backend's labels: a contractor gets 403 naming the rule, recorded", async () => {
    const r = await api('/v1/jobs', 'carla', { method: 'POST', body: job({ output: 'scratch-carla/out', backend: 'lab' }) });
    expect(r.status, r.body).toBe(403);
    const body = r.json<{ error: string; message: string; rule: string; line: string }>();
    expect(body.error).toBe('forbidden');
    expect(body.rule).toMatch(/role:contractors, label:pii, read, deny/);
    expect(body.line).toMatch(/^policy\.csv:\d+$/);
    expect(lab.received).toHaveLength(0);
    const denied = readTrail(auditDir).filter((e) => e.action === 'dataset.authorize' && e.actor.user === 'carla' && e.object === 'dataset:lab-patients');
    expect(denied).toEqual([expect.objectContaining({ decision: 'deny', details: expect.objectContaining({ requested: 'read', rule_line: body.line }) })]);
  });

  it('is allowed for someone with access to the label: 201, runs on that backend, its output carries the label', async () => {
    const r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ output: 'scratch-ana/out', backend: 'lab' }) });
    expect(r.status, r.body).toBe(201);
    const { id } = r.json<{ id: string }>();
    expect(lab.received.map((s) => s.id)).toEqual([id]);
    expect(lab.received[0]!.spec.labels).toEqual(['pii']);
    const done = await until(async () => {
      const v = (await api(`/v1/jobs/${id}`, 'ana')).json<{ state: string; backend: string }>();
      return v.state === 'succeeded' ? v : undefined;
    }, 20_000, 'the job to succeed on lab');
    expect(done.state).toBe('succeeded');
  });

  it("is decided on its own backend's catalog only: a dataset the default backend has is not there", async () => {
    const r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ input: 'words', output: 'scratch-ana/words', backend: 'lab' }) });
    expect(r.status, r.body).toBe(404);
    expect(r.json<{ message: string }>().message).toBe('no dataset words');
    // Without `backend`, the default (the bundled engine) does not know lab-patients either.
    const onDefault = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ output: 'scratch-ana/out2' }) });
    expect(onDefault.status, onDefault.body).toBe(404);
  });

  it("appears in GET /v1/datasets beside the bundled engine's datasets, each naming its backend", async () => {
    const r = await api('/v1/datasets', 'ana');
    expect(r.status, r.body).toBe(200);
    const listed = r.json<{ datasets: { name: string; backend?: string; labels?: string[] }[] }>().datasets;
    expect(listed).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'lab-patients', backend: 'lab', labels: ['pii'] }), expect.objectContaining({ name: 'words', backend: 'bundled' })]));
    // The contractor never sees it: lab's pii label denies every action.
    const forCarla = (await api('/v1/datasets', 'carla')).json<{ datasets: { name: string }[] }>().datasets.map((d) => d.name);
    expect(forCarla).not.toContain('lab-patients');
    expect(forCarla).toContain('words');
  });

  it("is explained with that backend's labels", async () => {
    const r = await api('/v1/policy/explain', 'carla', { method: 'POST', body: { user: 'carla', object: 'dataset:lab-patients', action: 'read' } });
    expect(r.status, r.body).toBe(200);
    const e = r.json<{ labels: string[]; labels_source: string; decision: { allowed: boolean } }>();
    expect(e).toMatchObject({ labels: ['pii'], labels_source: 'catalog', decision: { allowed: false } });
  });

  it("has its readiness line beside the engine's", async () => {
    const r = await fetchTls(`${url}/readyz`, { ca });
    expect(r.status, r.body).toBe(200);
    const { checks } = r.json<{ checks: Record<string, string> }>();
    expect(checks.engine).toMatch(/^ok \(https:\/\/127\.0\.0\.1:\d+/);
    expect(checks['backend:lab']).toMatch(/^ok \(test backend lab/);
  });

  it('stays ready when a second backend is down, and says so on its line', async () => {
    lab.down = 'lab is unplugged';
    try {
      const r = await fetchTls(`${url}/readyz`, { ca });
      expect(r.status, r.body).toBe(200);
      expect(r.json<{ checks: Record<string, string> }>().checks['backend:lab']).toBe('unavailable: lab is unplugged');
    } finally {
      lab.down = null;
    }
  });
});

describe('the POSIX account a job runs as', () => {
  it('comes from the login: handed to the backend, named in job.submit, and kept by a pending job until it is admitted', async () => {
    const submitted = async (o: Partial<JobSpec>): Promise<{ id: string; state: string }> => {
      const r = await api('/v1/jobs', 'anaPosix', { method: 'POST', body: job({ backend: 'lab', ...o }) });
      expect(r.status, r.body).toBe(201);
      return r.json<{ id: string; state: string }>();
    };
    // All 8 of ana's cores held by a job that keeps running, so the next one waits in the queue.
    const hold = await submitted({ name: 'keep-running', output: 'scratch-ana/hold', resources: { cores: 8, memory_mb: 256, time_limit_s: 60 } });
    const parked = await submitted({ output: 'scratch-ana/later' });
    expect(parked.state).toBe('pending');
    expect(lab.received.find((s) => s.id === hold.id)?.posix_user).toBe('ana_lab');
    expect(lab.received.find((s) => s.id === parked.id)).toBeUndefined();
    const row = await store.db.selectFrom('jobs').select(['posix_user']).where('id', '=', parked.id).executeTakeFirstOrThrow();
    expect(row.posix_user).toBe('ana_lab');

    expect((await api(`/v1/jobs/${hold.id}`, 'anaPosix', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    const admitted = await until(async () => lab.received.find((s) => s.id === parked.id), 20_000, 'the pending job to be handed to lab');
    expect(admitted.posix_user).toBe('ana_lab');

    const submits = readTrail(auditDir).filter((e) => e.action === 'job.submit');
    expect(submits.find((e) => e.object === `job:${hold.id}`)?.details).toMatchObject({ backend: 'lab', posix_user: 'ana_lab' });
    expect(submits.find((e) => e.object === `job:${parked.id}`)?.details).toMatchObject({ state: 'pending', posix_user: 'ana_lab' });
    // A login without an account: nothing named, nothing handed over.
    const plain = lab.received.find((s) => s.spec.output === 'scratch-ana/out')!;
    expect(plain.posix_user).toBeUndefined();
    expect(submits.find((e) => e.object === `job:${plain.id}`)?.details).not.toHaveProperty('posix_user');
  });
});

// session 36: on the embedded store an admitted job is answered 201 once its job.submit and its record
// are durable and its backend holds it checked (the held handover), without waiting for the backend
// to admit it. The person was told `queued`: a backend that then refuses it must not make it vanish.
describe('a job its backend refuses after the gateway answered 201', () => {
  const runningJobs = async () => (await api('/v1/quota', 'ana')).json<{ usage: { running_jobs: number } }>().usage.running_jobs;
  // Ana's jobs of the cases above end first (lab's ends are seen by the reconciler's polls), so her usage says only what these leave.
  beforeAll(async () => {
    await until(async () => (await runningJobs()) === 0, 20_000, "ana's earlier jobs ended");
  });

  it.runIf((process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite')('ends failed with the refusal, its end on the trail after its job.submit and its quota freed', async () => {
    lab.refuseAfterHolding = 'the lab lost its scratch disk';
    let r: Response;
    try {
      r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ output: 'scratch-ana/refused-late', backend: 'lab' }) });
    } finally {
      lab.refuseAfterHolding = null;
    }
    expect(r.status, r.body).toBe(201);
    expect(r.json()).toMatchObject({ state: 'queued' });
    const { id } = r.json<{ id: string }>();
    const ended = await until(async () => {
      const v = (await api(`/v1/jobs/${id}`, 'ana')).json<{ state: string; error: string | null }>();
      return v.state === 'queued' ? undefined : v;
    }, 20_000, `${id} leaving queued`);
    expect(ended).toMatchObject({ state: 'failed', error: expect.stringContaining('the lab lost its scratch disk') });
    expect(lab.received.filter((s) => s.id === id)).toHaveLength(1);
    // The record ends before its job.finish is appended (JobBook.end): a loaded machine shows the gap.
    await until(() => readTrail(auditDir).some((e) => e.action === 'job.finish' && e.object === `job:${id}`), 20_000, `job.finish of ${id} on the trail`);
    const events = readTrail(auditDir).filter((e) => e.object === `job:${id}`);
    expect(events.map((e) => `${e.action} ${e.decision}`)).toEqual(['job.submit allow', 'job.finish error']);
    expect(await runningJobs()).toBe(0);
  });

  it.runIf((process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite')('is cancelled by a cancel that came while its release was on its way', async () => {
    let open: () => void = () => {};
    lab.releaseGate = new Promise<void>((resolve) => (open = resolve));
    let r: Response;
    try {
      r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ name: 'keep-running', output: 'scratch-ana/cancelled-early', backend: 'lab' }) });
    } finally {
      lab.releaseGate = null;
    }
    expect(r.status, r.body).toBe(201);
    const { id } = r.json<{ id: string }>();
    // The cancel is decided and recorded, then waits for the handover to settle, so the backend has the job to cancel.
    const cancel = api(`/v1/jobs/${id}`, 'ana', { method: 'DELETE' });
    await until(() => readTrail(auditDir).some((e) => e.action === 'job.cancel' && e.object === `job:${id}`), 20_000, `job.cancel of ${id} on the trail`);
    open();
    const cancelled = await cancel;
    expect(cancelled.status, cancelled.body).toBe(200);
    expect(cancelled.json()).toMatchObject({ state: 'cancelled' });
    expect((await lab.status(id))?.state).toBe('cancelled');
    // (Its start is on the trail too, as the backend reported it started.)
    const events = readTrail(auditDir).filter((e) => e.object === `job:${id}` && e.action !== 'job.start');
    expect(events.map((e) => `${e.action} ${e.decision} ${e.reason}`)).toEqual(['job.submit allow admitted to lab', 'job.cancel allow cancelled by its owner', 'job.finish error cancelled']);
    expect(await runningJobs()).toBe(0);
  });
});

// CI10: the Python client's logs(follow=True), asked right after its submit, came back empty. On the
// embedded store the 201 goes out while the release is on its way, and the gateway answered a follow
// of a job its backend did not have yet with an empty log, ended at once. A followed log now answers
// its head at once (the clients time out only until the head) and follows the backend's log from the
// handover on; a job that ends without reaching its backend ends it empty.
describe('a job whose log is followed before its backend has it', () => {
  const follow = (id: string, who: string) => followLog(url, ca, tokens[who]!, id);
  const runningJobs = async () => (await api('/v1/quota', 'ana')).json<{ usage: { running_jobs: number } }>().usage.running_jobs;
  beforeAll(async () => {
    await until(async () => (await runningJobs()) === 0, 20_000, "ana's earlier jobs ended");
  });

  it.runIf((process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite')('while its release is on its way: the whole log, once the backend has the job', async () => {
    let open: () => void = () => {};
    lab.releaseGate = new Promise<void>((resolve) => (open = resolve));
    let r: Response;
    try {
      r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ output: 'scratch-ana/followed-early', backend: 'lab' }) });
    } finally {
      lab.releaseGate = null;
    }
    expect(r.status, r.body).toBe(201);
    const { id } = r.json<{ id: string }>();
    // The head comes while the backend still holds the job unreleased; the log follows the release.
    const followed = await follow(id, 'ana');
    expect(followed.status).toBe(200);
    expect(lab.received.filter((s) => s.id === id)).toHaveLength(1);
    open();
    expect(await followed.body).toBe('ran on lab\n');
  });

  it('while it waits in its owner’s queue: the whole log once it is admitted; nothing for one cancelled there', async () => {
    const submitted = async (o: Partial<JobSpec>): Promise<{ id: string; state: string }> => {
      const r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ backend: 'lab', ...o }) });
      expect(r.status, r.body).toBe(201);
      return r.json<{ id: string; state: string }>();
    };
    const hold = await submitted({ name: 'keep-running', output: 'scratch-ana/follow-hold', resources: { cores: 8, memory_mb: 256, time_limit_s: 60 } });
    const parked = await submitted({ output: 'scratch-ana/follow-later' });
    const dropped = await submitted({ output: 'scratch-ana/follow-dropped' });
    expect([parked.state, dropped.state]).toEqual(['pending', 'pending']);
    const [later, never] = [await follow(parked.id, 'ana'), await follow(dropped.id, 'ana')];
    expect([later.status, never.status]).toEqual([200, 200]);
    expect((await api(`/v1/jobs/${dropped.id}`, 'ana', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    expect(await never.body).toBe('');
    expect((await api(`/v1/jobs/${hold.id}`, 'ana', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    expect(await later.body).toBe('ran on lab\n');
    expect(lab.received.map((s) => s.id)).not.toContain(dropped.id);
  });

  it('is held as a wait on the job is, within the same bounds (the attacker: a seventeenth is refused 429; a caller that hangs up gives its place back)', async () => {
    const submitted = async (o: Partial<JobSpec>): Promise<{ id: string; state: string }> => {
      const r = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ backend: 'lab', ...o }) });
      expect(r.status, r.body).toBe(201);
      return r.json<{ id: string; state: string }>();
    };
    const hold = await submitted({ name: 'keep-running', output: 'scratch-ana/follow-bound-hold', resources: { cores: 8, memory_mb: 256, time_limit_s: 60 } });
    const parked = await submitted({ output: 'scratch-ana/follow-bound-later' });
    expect(parked.state).toBe('pending');
    // Each answer's head comes once its place is taken: sixteen held, one after the other.
    const sixteen = [];
    for (let i = 0; i < 16; i++) sixteen.push(await follow(parked.id, 'ana'));
    expect(sixteen.map((f) => f.status)).toEqual(Array(16).fill(200));
    const refused = await api(`/v1/jobs/${parked.id}/logs?follow=1`, 'ana');
    expect(refused.status, refused.body).toBe(429);
    expect(refused.json()).toMatchObject({ error: 'too_many_requests', message: expect.stringMatching(/16 waits on jobs/) });
    // The same bounds as a held status wait: that is refused too; a plain look, or the log unfollowed, never.
    const seen = (await api(`/v1/jobs/${parked.id}`, 'ana')).json<{ seen: string }>().seen;
    expect((await api(`/v1/jobs/${parked.id}?wait_s=1&seen=${seen}`, 'ana')).status).toBe(429);
    expect((await api(`/v1/jobs/${parked.id}/logs`, 'ana')).status).toBe(200);
    // One hangs up: its place is given back (the next follow is held, not refused).
    sixteen.shift()!.hangUp();
    const again = await until(async () => {
      const f = await follow(parked.id, 'ana');
      if (f.status === 200) return f;
      await f.body;
      return undefined;
    }, 20_000, 'a follow held after one caller hung up');
    // Every body still held gets the log once the job is admitted and runs.
    expect((await api(`/v1/jobs/${hold.id}`, 'ana', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    for (const f of [...sixteen, again]) expect(await f.body).toBe('ran on lab\n');
    // Ended, they gave their places back: a held wait is taken again (answered at once, the job having ended).
    const ended = await until(async () => {
      const v = (await api(`/v1/jobs/${parked.id}`, 'ana')).json<{ state: string; seen: string }>();
      return v.state === 'succeeded' ? v : undefined;
    }, 20_000, `${parked.id} to succeed`);
    expect((await api(`/v1/jobs/${parked.id}?wait_s=1&seen=${ended.seen}`, 'ana')).status).toBe(200);
  });

  it('gets none of the log when the login that submitted the job and follows it is logged out while it waits (the attacker with a stolen token)', async () => {
    const stolen = (await identity.tokens.login(ANA)).access_token;
    const hold = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ name: 'keep-running', backend: 'lab', output: 'scratch-ana/follow-out-hold', resources: { cores: 8, memory_mb: 256, time_limit_s: 60 } }) });
    expect(hold.status, hold.body).toBe(201);
    tokens.stolen = stolen;
    const parked = await api('/v1/jobs', 'stolen', { method: 'POST', body: job({ backend: 'lab', output: 'scratch-ana/follow-out-later' }) });
    expect(parked.json()).toMatchObject({ state: 'pending' });
    const { id } = parked.json<{ id: string }>();
    const followed = await follow(id, 'stolen');
    expect(followed.status).toBe(200);
    expect((await api('/v1/auth/logout', 'stolen', { method: 'POST', body: {} })).status).toBe(200);
    expect((await api(`/v1/jobs/${hold.json<{ id: string }>().id}`, 'ana', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    // Its login ended: the job leaves the queue failed, never handed over, and the follow ends with nothing of it.
    expect(await followed.body).toBe('');
    expect((await api(`/v1/jobs/${id}`, 'ana')).json()).toMatchObject({ state: 'failed' });
    expect(lab.received.map((s) => s.id)).not.toContain(id);
  });
});

// review38 L: a followed log or a held wait on a job whose record is removed while it waits (a
// submission its backend refused, seen in the person's own listing before the answer) held its
// caller's place until they hung up. Removal now touches the job: a follow ends with a line saying
// the job is gone, a held wait is answered 404 as a new look would be, and the places come back.
describe('a job whose record is removed while it is followed or waited on', () => {
  const follow = (id: string, who: string) => followLog(url, ca, tokens[who]!, id);
  const runningJobs = async (who: string) => (await api('/v1/quota', who)).json<{ usage: { running_jobs: number } }>().usage.running_jobs;
  beforeAll(async () => {
    tokens.bo = (await identity.tokens.login({ user: 'bo', groups: ['analysts'], auth_method: 'oidc' })).access_token;
    await until(async () => (await runningJobs('ana')) === 0, 20_000, "ana's earlier jobs ended");
  });

  it('ends each follow with a line saying the job is gone, answers a held wait 404, and gives the places back (the person); another person’s follow is untouched and learns nothing (the attacker)', async () => {
    // bo's own follow, waiting for his job to leave his queue, is there before anything of ana's.
    const hold = await api('/v1/jobs', 'bo', { method: 'POST', body: job({ name: 'keep-running', backend: 'lab', output: 'scratch-bo/removed-hold', resources: { cores: 8, memory_mb: 256, time_limit_s: 60 } }) });
    expect(hold.status, hold.body).toBe(201);
    const parked = await api('/v1/jobs', 'bo', { method: 'POST', body: job({ backend: 'lab', output: 'scratch-bo/removed-later' }) });
    expect(parked.json()).toMatchObject({ state: 'pending' });
    const bos = await follow(parked.json<{ id: string }>().id, 'bo');
    expect(bos.status).toBe(200);

    let refuse: () => void = () => {};
    lab.refuseWhole = { gate: new Promise<void>((resolve) => (refuse = resolve)), reason: 'the lab is closed for the night' };
    const output = 'scratch-ana/removed-while-followed';
    let submitting: Promise<Response> | undefined;
    let id = '';
    try {
      submitting = api('/v1/jobs', 'ana', { method: 'POST', body: job({ output, backend: 'lab' }) });
      // Seen in her own listing before the answer, its handover waiting at lab.
      const handed = await until(() => lab.received.find((s) => s.spec.output === output), 20_000, 'the job handed to lab');
      id = handed.id;
    } finally {
      lab.refuseWhole = null; // the handover under way keeps its refusal
    }
    const listed = (await api('/v1/jobs?limit=50', 'ana')).json<{ jobs: { id: string }[] }>().jobs;
    expect(listed.map((j) => j.id)).toContain(id);
    // Her sixteen places: fifteen follows and one held wait, all on the job about to be removed.
    const follows = [];
    for (let i = 0; i < 15; i++) follows.push(await follow(id, 'ana'));
    expect(follows.map((f) => f.status)).toEqual(Array(15).fill(200));
    const seen = (await api(`/v1/jobs/${id}`, 'ana')).json<{ seen: string }>().seen;
    const waited = api(`/v1/jobs/${id}?wait_s=25&seen=${seen}`, 'ana');
    // The attacker: bo asking for ana's job (to follow it, or to wait on it) learns nothing of it.
    expect((await api(`/v1/jobs/${id}/logs?follow=1`, 'bo')).status).toBe(404);

    refuse();
    const answer = await submitting;
    expect(answer.status, answer.body).toBe(409);
    expect(answer.json()).toMatchObject({ message: expect.stringContaining('the lab is closed for the night') });
    // Each follow ends with one line naming the job and what became of it; the held wait is 404.
    for (const f of follows) expect(await f.body).toMatch(new RegExp(`^\\[gateway\\] \\S+ job ${id} no longer exists: its submission was not accepted .*nothing of it ran\\n$`));
    const w = await waited;
    expect(w.status, w.body).toBe(404);
    expect(w.json()).toMatchObject({ error: 'not_found' });
    expect((await api(`/v1/jobs/${id}`, 'ana')).status).toBe(404);
    // Her sixteen places are hers again: sixteen held waits at once on another job of hers, none refused.
    const other = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ name: 'keep-running', backend: 'lab', output: 'scratch-ana/removed-after', resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } }) });
    expect(other.status, other.body).toBe(201);
    const otherId = other.json<{ id: string }>().id;
    const otherSeen = (await until(async () => {
      const v = (await api(`/v1/jobs/${otherId}`, 'ana')).json<{ state: string; seen: string }>();
      return v.state === 'running' ? v : undefined;
    }, 20_000, `${otherId} running`)).seen;
    const sixteen = await Promise.all(Array.from({ length: 16 }, () => api(`/v1/jobs/${otherId}?wait_s=1&seen=${otherSeen}`, 'ana')));
    expect(sixteen.map((r) => r.status)).toEqual(Array(16).fill(200));
    expect((await api(`/v1/jobs/${otherId}`, 'ana', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });

    // bo's follow was not ended by ana's removal (every wake-up of hers is over: her follows ended);
    // it gets his own log, and nothing of ana's job, once his job leaves the queue.
    expect(bos.ended()).toBe(false);
    expect((await api(`/v1/jobs/${hold.json<{ id: string }>().id}`, 'bo', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    expect(await bos.body).toBe('ran on lab\n');
  });

  // With several gateways over PostgreSQL the record may be removed by another one (a pending
  // submission it could not accept, JobRecords.remove; its refused handover, removeUnsent). A second
  // gateway (not the job path's leader, whose passes drop what the records no longer hold) that learnt
  // the job when asked for it still had it live, and its follow and held wait kept re-reading that.
  // The row is deleted here as the first gateway deletes it.
  it.runIf(process.env.GATEHOUSE_TEST_STORE === 'postgres')('ends a follow and a held wait on a second gateway when the record is removed', async () => {
    const { config } = loadConfig({ path: box.configFile, env: {} });
    const storeB = await openStoreOf(config);
    const auditB = await AuditTrail.open({ dir: join(home, 'audit-b'), key: loadAuditKey(config.certs.dir), checkpointMs: 3_600_000 });
    const identityB = await createIdentityService(config, storeB);
    let urlB = '';
    const b = await buildGateway({ tls: readTlsMaterial(config.certs.dir, 'gateway'), logLevel: 'warn', bodyLimit: config.server.body_limit_bytes, store: storeB, policy, backends: [lab], jobs: { maxPendingPerUser: 4, pollMs: 50, statusCacheMs: 0 }, identity: identityB, publicUrl: () => urlB, audit: auditB, auditRetention: { maxAgeMs: 0, archiveDir: join(home, 'audit-b', 'archive') } });
    try {
      await b.listen({ host: '127.0.0.1', port: 0 });
      urlB = `https://127.0.0.1:${(b.server.address() as AddressInfo).port}`;
      const hold = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ name: 'keep-running', backend: 'lab', output: 'scratch-ana/elsewhere-hold', resources: { cores: 8, memory_mb: 256, time_limit_s: 60 } }) });
      expect(hold.status, hold.body).toBe(201);
      const parked = await api('/v1/jobs', 'ana', { method: 'POST', body: job({ backend: 'lab', output: 'scratch-ana/elsewhere-removed' }) });
      expect(parked.json()).toMatchObject({ state: 'pending' });
      const id = parked.json<{ id: string }>().id;
      // Asked of the second gateway: it learns the job there.
      const onB = (path: string) => fetchTls(`${urlB}${path}`, { ca, headers: { authorization: `Bearer ${tokens.ana}` } });
      const { seen } = (await onB(`/v1/jobs/${id}`)).json<{ seen: string }>();
      const followed = await new Promise<{ status: number; body: Promise<string> }>((resolve, reject) => {
        const req = httpsRequest(`${urlB}/v1/jobs/${id}/logs?follow=1`, { ca, agent: false, headers: { authorization: `Bearer ${tokens.ana}` } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          resolve({ status: res.statusCode ?? 0, body: new Promise<string>((done, failed) => res.on('end', () => done(text)).on('error', failed)) });
        });
        req.on('error', reject);
        req.end();
      });
      expect(followed.status).toBe(200);
      const waited = onB(`/v1/jobs/${id}?wait_s=25&seen=${seen}`);
      expect((await store.db.deleteFrom('jobs').where('id', '=', id).where('state', '=', 'pending').executeTakeFirst()).numDeletedRows).toBe(1n);
      expect(await followed.body).toMatch(new RegExp(`^\\[gateway\\] \\S+ job ${id} no longer exists: `));
      expect((await waited).status).toBe(404);
      expect((await api(`/v1/jobs/${hold.json<{ id: string }>().id}`, 'ana', { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    } finally {
      await b.close();
      identityB.close();
      await auditB.close();
      await storeB.close();
    }
  });
});
