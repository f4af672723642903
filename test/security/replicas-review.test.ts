// Review of the multi-gateway job path (issue 18, points 2 and 3), as an attacker and an SRE would
// try it: two real `gatehouse gateway` processes over a private PostgreSQL, one engine. Each test
// provokes a failure between replicas at a precise point by holding a lock in the database from
// here (never by timing), and checks that no quota is exceeded, no job runs unaccounted, and no
// user's admissions stay wedged.
import pg from 'pg';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import type { EngineProcess } from '../support/engine.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { Stack } from '../support/stack.js';
import { EngineClient } from '../support/engine.js';
import { until } from '../support/until.js';

// Runs until cancelled: it only has to hold its quota while the test looks.
const FOREVER = 'import time\ndef process(i, o, ctx):\n    while True:\n        time.sleep(0.05)\n';
/** store/exclusive.ts's advisory lock class (the per-user admission lock). */
const SECTION_CLASS = 0x47480001;

let db: Postgres;
let stack: Stack;
let b: EngineProcess;
let url: string;
const tokens: Record<string, string> = {};
let outputs = 0;

function spec(): JobSpec {
  outputs += 1;
  return { name: 't', input: 'scratch/tiny', output: `scratch/review-${outputs}`, runtime: 'python', source: FOREVER, resources: { cores: 1, memory_mb: 256, time_limit_s: 300 }, max_attempts: 1 };
}

const submit = (base: string, user: string) => stack.apiAt(base, '/v1/jobs', tokens[user], { method: 'POST', body: spec() });
const liveJobs = async (user: string) =>
  (await stack.apiAt(stack.url, '/v1/jobs?limit=100', tokens[user])).json<{ jobs: { id: string; state: string }[] }>().jobs.filter((j) => !['succeeded', 'failed', 'cancelled'].includes(j.state));

async function client(): Promise<pg.Client> {
  const u = new URL(url);
  const c = new pg.Client({ host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), user: u.username, password: readFileSync(db.passwordFile, 'utf8') });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Sessions of the gateways now waiting on a lock to write a job record. */
async function blockedInserts(admin: pg.Client): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>("select pid from pg_stat_activity where wait_event_type = 'Lock' and query ilike 'insert into \"jobs\"%'");
  return rows.map((r) => r.pid);
}

/** The session holding a user's admission lock, if one does. */
async function sectionHolder(admin: pg.Client): Promise<number | undefined> {
  const { rows } = await admin.query<{ pid: number }>("select pid from pg_locks where locktype = 'advisory' and classid = $1::oid and granted", [SECTION_CLASS]);
  return rows[0]?.pid;
}

beforeAll(async () => {
  db = await startPostgres();
  url = await db.database('review');
  stack = await Stack.start({
    users: { ivy: ['analysts'] },
    policyLines: ['p2, user:ivy, max_concurrent_jobs, 1'],
    config: { store: { url, password_file: db.passwordFile }, jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 8 } },
  });
  b = await stack.startReplica('b');
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  for (const user of ['ivy']) tokens[user] = await stack.login(user);
}, 180_000);

afterAll(async () => {
  await b?.stop();
  await stack?.stop();
  await db?.stop();
});

/** What a replica's /readyz says of the job path (`leader` or `follower ...`). */
async function jobPathRole(base: string): Promise<string> {
  const ready = await stack.apiAt(base, '/readyz').catch(() => null);
  return ready?.json<{ checks: Record<string, string> }>().checks.job_path ?? 'no answer';
}

async function cancelAll(user: string): Promise<void> {
  for (const j of await liveJobs(user)) await stack.apiAt(stack.url, `/v1/jobs/${j.id}`, tokens[user], { method: 'DELETE' });
  await until(async () => (await liveJobs(user)).length === 0, 30_000, `${user} with no live job`);
}

describe('the multi-gateway job path under review', () => {
  it('admits nothing on the strength of a lock it lost mid-section: a killed lock session lets another replica in, and the first one’s decision must not land', async () => {
    const admin = await client();
    const blocker = await client();
    try {
      // Every record write waits on this table lock, so the first replica stops inside its section, after its decision.
      await blocker.query('begin');
      await blocker.query('lock table jobs in exclusive mode');
      const first = submit(stack.url, 'ivy');
      const [stuck] = await until(async () => {
        const pids = await blockedInserts(admin);
        return pids.length === 1 ? pids : undefined;
      }, 30_000, 'the first replica writing its record');
      // Its lock session dies (a network cut, a failover, an administrator): PostgreSQL frees the lock at once.
      const holder = await sectionHolder(admin);
      expect(holder).toBeDefined();
      await admin.query('select pg_terminate_backend($1)', [holder]);

      // The other replica takes the lock, sees no record of the first decision and decides again.
      const second = submit(b.url, 'ivy');
      await until(async () => (await blockedInserts(admin)).some((p) => p !== stuck) && (await sectionHolder(admin)) !== undefined, 30_000, 'the second replica writing its record');
      await blocker.query('commit');
      const answers = await Promise.all([first, second]);
      expect(answers.filter((a) => a.status === 201).length).toBeGreaterThanOrEqual(1);
      // max_concurrent_jobs 1: whatever was answered, one job at most holds the quota.
      expect(await liveJobs('ivy')).toHaveLength(1);
      for (const a of answers) expect([201, 503], a.body).toContain(a.status);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await Promise.all([admin.end(), blocker.end()]);
      await cancelAll('ivy');
    }
  }, 120_000);

  it('runs nothing cancelled: a job cancelled through the other replica while the first is still handing it over is cancelled on the engine too', async () => {
    const admin = await client();
    const blocker = await client();
    const engine = stack.engine.child;
    try {
      // The first replica stops inside its section (its record write waits), past every engine call of the decision...
      await blocker.query('begin');
      await blocker.query('lock table jobs in exclusive mode');
      const first = submit(stack.url, 'ivy');
      await until(async () => (await blockedInserts(admin)).length === 1, 30_000, 'the first replica writing its record');
      // ...then the engine stops answering, so the handover that follows the record hangs.
      engine.kill('SIGSTOP');
      await blocker.query('commit');
      const { rows } = await until(async () => {
        const r = await admin.query<{ id: string }>("select id from jobs where \"user\" = 'ivy' and state = 'dispatching'");
        return r.rows.length === 1 ? r : undefined;
      }, 30_000, 'the first replica’s record committed');
      const id = rows[0]!.id;
      // Its owner cancels it through the other replica: it has no backend id yet, so only the record ends.
      const cancelled = await stack.apiAt(b.url, `/v1/jobs/${id}`, tokens.ivy, { method: 'DELETE' });
      expect(cancelled.status, cancelled.body).toBe(200);
      engine.kill('SIGCONT');
      const answer = await first;
      // The engine got the job after its record ended: the first replica must not leave it running unaccounted.
      expect(answer.status, answer.body).toBe(409);
      expect(answer.body).toContain('cancelled while it was being handed over');
      const status = await new EngineClient(stack.engine.url, stack.certsDir).status(id);
      expect(['cancelled', 'cancelling']).toContain(status.state);
      expect(await liveJobs('ivy')).toHaveLength(0);
    } finally {
      engine.kill('SIGCONT');
      await blocker.query('rollback').catch(() => undefined);
      await Promise.all([admin.end(), blocker.end()]);
      await cancelAll('ivy');
    }
  }, 120_000);

  it('lets a user’s admissions go on when a replica freezes inside that user’s section (stopped process, partitioned host)', async () => {
    const admin = await client();
    const blocker = await client();
    const frozen = stack.gateway.child;
    try {
      await blocker.query('begin');
      await blocker.query('lock table jobs in exclusive mode');
      const first = submit(stack.url, 'ivy').catch(() => null); // the client gives up while the replica is frozen
      await until(async () => (await blockedInserts(admin)).length === 1, 30_000, 'the first replica writing its record');
      // The first replica freezes with the user's lock: its session stays open and idle in its transaction.
      frozen.kill('SIGSTOP');
      await blocker.query('commit');
      // The other replica must decide for the user again before the frozen one comes back (503s meanwhile are fine).
      const answer = await until(async () => {
        const a = await submit(b.url, 'ivy').catch(() => null); // waiting on the lock may outlast the client's timeout
        return a === null || a.status === 503 ? undefined : a;
      }, 90_000, 'a decision for ivy on the other replica');
      expect(answer.status, answer.body).toBe(201);
      frozen.kill('SIGCONT');
      // The frozen replica's decision did not land: it lost the lock, so it answers 503 (if its client still
      // waits) and nothing of it holds quota.
      const late = await first;
      if (late !== null) expect(late.status, late.body).toBe(503);
      expect(await liveJobs('ivy')).toHaveLength(1);
    } finally {
      frozen.kill('SIGCONT');
      await blocker.query('rollback').catch(() => undefined);
      await Promise.all([admin.end(), blocker.end()]);
      await cancelAll('ivy');
    }
  }, 180_000);

  it('moves the job path off a leader that froze: a stopped process keeps its session, and with it the lock, open', async () => {
    const replicas = [stack.gateway, b];
    const roles = await Promise.all(replicas.map((r) => jobPathRole(r.url)));
    expect(roles.filter((r) => r === 'leader')).toHaveLength(1);
    const [leader, other] = roles[0] === 'leader' ? [replicas[0]!, replicas[1]!] : [replicas[1]!, replicas[0]!];
    leader.child.kill('SIGSTOP');
    try {
      // Nobody else reconciles, sweeps or drains while it stays frozen: the other replica must take over.
      await until(async () => (await jobPathRole(other.url)) === 'leader', 60_000, 'the other replica leading the job path');
    } finally {
      leader.child.kill('SIGCONT');
    }
    // Back, the former leader finds its session gone and follows: one leader.
    await until(async () => /^follower/.test(await jobPathRole(leader.url)), 30_000, 'the former leader following');
  }, 120_000);
});
