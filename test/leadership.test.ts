// One leader per name among gateways over one store (src/store/leadership.ts). On the embedded store the
// one process leads at once; on PostgreSQL (the `postgres` project) the holder of a session advisory lock
// leads, and leadership moves when the leader closes, loses its session, dies (SIGKILL), or stops hearing
// from the database, and comes back by itself when the database does.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { type Leadership, type LeadershipLog, leadershipKey, openLeadership, openStore, type Store } from '../src/store/index.js';
import { startPostgres } from './support/postgres.js';
import { onPostgres, openTestStore, testDatabase } from './support/test-store.js';
import { until } from './support/until.js';

const RETRY_MS = 200;
const stateDir = () => mkdtempSync(join(tmpdir(), 'gatehouse-leadership-'));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A log the test reads: every line with its fields. */
function recordingLog(): LeadershipLog & { lines: { m: string; o: Record<string, unknown> }[] } {
  const lines: { m: string; o: Record<string, unknown> }[] = [];
  return { lines, info: (o, m) => lines.push({ m, o: o as Record<string, unknown> }), warn: (o, m) => lines.push({ m, o: o as Record<string, unknown> }) };
}

/** Counts leaders among several leaderships of this process and remembers any moment with two. */
function watchLeaders(all: Leadership[]): { twice: string[] } {
  const twice: string[] = [];
  for (const l of all)
    l.onChange((leader) => {
      if (leader && all.filter((x) => x.isLeader()).length > 1) twice.push(`two leaders when ${all.indexOf(l)} took over`);
    });
  return { twice };
}

function lost(l: Leadership): Promise<void> {
  return new Promise((resolve) => l.onChange((leader) => leader || resolve()));
}

/** The backend holding the leadership lock of `name` in this store's database, or undefined. */
async function holderPid(store: Store, name: string): Promise<number | undefined> {
  const [cls, key] = leadershipKey(name);
  const { rows } = await sql<{ pid: number }>`
    select pid from pg_locks
    where locktype = 'advisory' and granted and objsubid = 2 and classid::bigint = ${cls} and objid::bigint = ${key >>> 0}
      and database = (select oid from pg_database where datname = current_database())`.execute(store.db);
  expect(rows.length).toBeLessThanOrEqual(1);
  return rows[0]?.pid;
}

function open(store: Store, name: string, extra: { checkTimeoutMs?: number } = {}) {
  const log = recordingLog();
  const l = openLeadership(store, { name, retryMs: RETRY_MS, log, ...extra });
  cleanups.push(() => l.close());
  return { l, log, refused: () => until(() => log.lines.some((x) => x.o.reason === 'held by another session'), 10_000, `${name}: an attempt refused`) };
}

async function twoStores(): Promise<[Store, Store, { url: string; password: string }]> {
  const db = testDatabase();
  if (!db) throw new Error('the postgres project only');
  const stores = await Promise.all([openStore({ stateDir: stateDir(), url: db.url, password: db.password }), openStore({ stateDir: stateDir(), url: db.url, password: db.password })]);
  cleanups.push(() => Promise.all(stores.map((s) => s.close())).then(() => undefined));
  return [stores[0], stores[1], db];
}

describe.runIf(!onPostgres())('leadership on the embedded store', () => {
  it('leads at once, and gives leadership up on close', async () => {
    const store = await openTestStore(stateDir());
    cleanups.push(() => store.close());
    const log = recordingLog();
    const l = openLeadership(store, { name: 'job-path', log });
    expect(l.isLeader()).toBe(true);
    await l.whenLeader();
    const changes: boolean[] = [];
    l.onChange((v) => changes.push(v));
    await l.close();
    expect(l.isLeader()).toBe(false);
    expect(changes).toEqual([false]);
    await expect(l.whenLeader()).rejects.toThrow(/closed/);
    expect(log.lines.map((x) => x.m)).toEqual(['leadership gained', 'leadership given up (closing)']);
  });
});

describe.runIf(onPostgres())('leadership over PostgreSQL', () => {
  it('has exactly one leader among two replicas, and the other takes over when the leader closes', async () => {
    const [sa, sb, db] = await twoStores();
    const a = open(sa, 'job-path');
    const b = open(sb, 'job-path');
    const { twice } = watchLeaders([a.l, b.l]);
    await Promise.race([a.l.whenLeader(), b.l.whenLeader()]);
    const [leader, follower] = a.l.isLeader() ? [a, b] : [b, a];
    await follower.refused();
    expect([a.l.isLeader(), b.l.isLeader()].filter(Boolean)).toHaveLength(1);
    expect(await holderPid(sa, 'job-path')).toBeDefined();
    // Another name is another lock: the follower of job-path may lead something else.
    const other = open(follower === a ? sa : sb, 'another-duty');
    await other.l.whenLeader();

    await leader.l.close();
    expect(leader.l.isLeader()).toBe(false);
    await follower.l.whenLeader();
    expect(leader.l.isLeader()).toBe(false);
    expect(twice).toEqual([]);
    expect(leader.log.lines.map((x) => x.m)).toEqual(['leadership gained', 'leadership given up (closing)']);
    expect(JSON.stringify([a.log.lines, b.log.lines])).not.toContain(db.password);
  });

  it('steps down when its session is terminated from outside, and one of the two leads again', async () => {
    const [sa, sb] = await twoStores();
    const a = open(sa, 'job-path');
    const b = open(sb, 'job-path');
    const { twice } = watchLeaders([a.l, b.l]);
    await Promise.race([a.l.whenLeader(), b.l.whenLeader()]);
    const leader = a.l.isLeader() ? a : b;
    const stepped = lost(leader.l);
    const pid = await holderPid(sa, 'job-path');
    expect(pid).toBeDefined();

    await sql`select pg_terminate_backend(${pid})`.execute(sa.db);
    await stepped;
    await until(() => a.l.isLeader() || b.l.isLeader(), 10_000, 'a leader again');
    const newPid = await until(() => holderPid(sa, 'job-path'), 10_000, 'the lock held again');
    expect(newPid).not.toBe(pid);
    expect(twice).toEqual([]);
    expect(leader.log.lines.find((x) => x.m === 'leadership lost')?.o.reason).toMatch(/session/);
  });

  it('takes over within seconds when the holder, another process, is killed with SIGKILL', async () => {
    const [store, , db] = await twoStores();
    const [cls, key] = leadershipKey('job-path');
    // A replica reduced to its lock: a session of its own that takes the same lock and stays.
    const script = `const pg = require('pg');
      const c = new pg.Client({ connectionString: process.argv[1] });
      c.connect().then(() => c.query('select pg_try_advisory_lock($1::int4, $2::int4) as l', [process.argv[2], process.argv[3]]))
        .then((r) => console.log(r.rows[0].l ? 'locked' : 'not locked'), (e) => { console.error(e.message); process.exit(2); });`;
    const child: ChildProcess = spawn(process.execPath, ['-e', script, db.url, String(cls), String(key)], { cwd: process.cwd(), env: { ...process.env, PGPASSWORD: db.password }, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.includes('locked'), 10_000, () => `the child's lock (${out})`);
    expect(out.trim()).toBe('locked');

    const f = open(store, 'job-path');
    await f.refused();
    expect(f.l.isLeader()).toBe(false);
    const dead = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await dead;
    await until(() => f.l.isLeader(), 10_000, 'the follower leading after the holder died');
  });

  it('steps down when its session stops answering (its backend stopped), and leads again once that session is gone', async () => {
    const [store] = await twoStores();
    const x = open(store, 'job-path', { checkTimeoutMs: 500 });
    await x.l.whenLeader();
    const pid = (await holderPid(store, 'job-path')) as number;
    const stepped = lost(x.l);
    // The backend runs on this host as the postgres account; root may stop it: a leader whose database
    // host hangs.
    process.kill(pid, 'SIGSTOP');
    try {
      await stepped;
      expect(x.log.lines.find((l) => l.m === 'leadership lost')?.o.reason).toMatch(/no answer within 500 ms/);
      // The stopped backend still holds the lock: the next attempts are refused, never a second holder.
      await x.refused();
      expect(await holderPid(store, 'job-path')).toBe(pid);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Woken, the backend finds its client gone, ends, and the lock is free.
    await until(() => x.l.isLeader(), 10_000, 'leading again');
    expect(await holderPid(store, 'job-path')).not.toBe(pid);
  });

  it('steps down when PostgreSQL stops, and leads again by itself when it is back', async () => {
    // A server of its own: stopping the run's shared one would fail every other suite.
    const pg = await startPostgres();
    cleanups.push(() => pg.stop());
    const url = await pg.database();
    const store = await openStore({ stateDir: stateDir(), url, password: pg.password });
    cleanups.push(() => store.close());
    const x = open(store, 'job-path');
    await x.l.whenLeader();
    const stepped = lost(x.l);

    await pg.kill();
    await stepped;
    expect(x.l.isLeader()).toBe(false);
    // Attempts fail while it is down: the follower says so once and keeps trying.
    await until(() => x.log.lines.some((l) => l.m.startsWith('following') && /ECONNREFUSED|connect/i.test(String(l.o.reason))), 10_000, 'a failed attempt logged');

    await pg.start();
    await until(() => x.l.isLeader(), 30_000, 'leading again after PostgreSQL came back');
    expect(await holderPid(store, 'job-path')).toBeDefined();
    expect(JSON.stringify(x.log.lines)).not.toContain(pg.password);
  });
});
