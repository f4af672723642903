// Issue 21: the user and object lookups moved off the commit path into tables the writer fills in
// batches (src/audit/lookup-index.ts). What must hold: no query answer misses an event whatever the
// watermark, a trail made by the older layout is moved to the new one at open and still verifies
// (and a tampered one still fails), retention takes the lookup rows with its events, and a lookup
// table someone edited cannot put another person's event in an answer nor hide one from verify.
import type { KeyObject } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditInput, type AuditSigningKey, AuditTrail, loadAuditKey, openAuditDb, verifyTrail } from '../src/audit/index.js';
import { INDEX_BATCH, indexedUpTo, tailFrom } from '../src/audit/lookup-index.js';
import { jobEvents } from '../src/audit/lookup.js';
import { exportEvents, parseFilter, queryEvents } from '../src/audit/query.js';
import { AUDIT_FILE, MIGRATIONS } from '../src/audit/schema.js';
import { pendingRowOf, TrailWriter } from '../src/audit/writer.js';
import { append } from './support/audit-trail.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-lookup-'));
let key: AuditSigningKey;
let keys: Map<string, KeyObject>;
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(() => {
  key = loadAuditKey(join(root, 'certs'));
  keys = new Map([[key.kid, key.publicKey]]);
});

const input = (i: number): AuditInput => ({
  actor: { user: i % 13 === 0 ? null : `user${i % 7}`, groups: ['analysts'], auth_method: 'oidc', ip: '127.0.0.1' },
  action: i % 3 ? 'dataset.read' : 'job.submit',
  object: i % 3 ? `dataset:set${i % 11}` : `job:j${i % 5}`,
  decision: 'allow',
  reason: 'p, role:analysts, dataset:*, read, allow',
  request_id: `req-${i}`,
  details: { n: i },
});

const ids = (db: Database.Database, query: Record<string, string>) => {
  const out: number[] = [];
  let cursor: string | undefined;
  do {
    const page = queryEvents(db, parseFilter({ ...query, limit: '97', ...(cursor ? { cursor } : {}) }, Date.now()));
    out.push(...page.events.map((e) => e.id));
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return out;
};
const exported = (db: Database.Database, filter: Parameters<typeof exportEvents>[1]) => [...exportEvents(db, filter, 300)].flat().map((e) => e.id);

/** What a query must answer, from the rows themselves: newest first (time, then id). */
function expected(db: Database.Database, where: string, ...params: unknown[]): number[] {
  return db.prepare(`select id from audit_events where ${where} order by time desc, id desc`).pluck().all(...params) as number[];
}

/** The queries by user and by object (and the export) answer exactly the rows the trail holds. */
function expectWholeAnswers(reader: ReturnType<typeof openAuditDb>): void {
  expect(ids(reader, { user: 'user3' })).toEqual(expected(reader, 'user = ?', 'user3'));
  expect(ids(reader, { object: 'dataset:set4' })).toEqual(expected(reader, 'object = ?', 'dataset:set4'));
  expect(ids(reader, { object: 'job:' })).toEqual(expected(reader, "object like 'job:%'"));
  expect(exported(reader, { user: 'user5' })).toEqual(expected(reader, 'user = ?', 'user5').sort((a, b) => a - b));
}

describe('the writer fills the lookup tables in batches', () => {
  it('leaves a tail below its batch to the queries, indexes it once it is a batch, and every answer is whole throughout', () => {
    const dir = join(root, 'batches');
    const BATCH = 2000; // INDEX_BATCH's role, smaller so the suite stays quick
    const w = TrailWriter.open(dir, key, { indexBatch: BATCH });
    try {
      const reader = openAuditDb(dir, { readonly: true });
      const check = () => {
        expectWholeAnswers(reader);
        expect(jobEvents(reader, 'j2').map((e) => e.id)).toEqual(expected(reader, 'object = ?', 'job:j2').sort((a, b) => a - b));
      };
      let n = 0;
      const batch = (count: number) => w.append(Array.from({ length: count }, () => pendingRowOf(input(++n), Date.now() + n)));
      batch(BATCH - 10);
      expect(w.index()).toBe(0); // not a batch yet: a commit is not followed by an index pass
      expect(indexedUpTo(w.db)).toBe(0);
      check();
      batch(600);
      expect(w.index()).toBe(BATCH + 590);
      expect(indexedUpTo(w.db)).toBe(BATCH + 590);
      batch(300);
      check(); // indexed part and tail together
      // The tail's earliest time lets a query that ends before it skip the tail; a clock that
      // steps back lowers it, so such an event is still found.
      expect(tailFrom(w.db)).toBe(w.db.prepare('select min(time) from audit_events where id > ?').pluck().get(indexedUpTo(w.db)));
      const stepped = w.append([pendingRowOf({ ...input(7), actor: { ...input(7).actor, user: 'early' } }, 1_000)]).firstId;
      expect(tailFrom(w.db)).toBe(1_000);
      expect(ids(reader, { user: 'early', until: new Date(2_000).toISOString() })).toEqual([stepped]);
      expect(ids(reader, { user: 'user3', until: new Date(Date.now() - 3_600_000).toISOString() })).toEqual([]);
      expect(exported(reader, { user: 'early', until: 2_000 })).toEqual([stepped]);
      expect(w.index(true)).toBe(301); // the checkpoint timer's pass takes whatever the tail holds
      expect(tailFrom(w.db)).toBeNull();
      expect(ids(reader, { user: 'early', until: new Date(2_000).toISOString() })).toEqual([stepped]);
      check();
      const users = reader.prepare('select count(*) from audit_by_user').pluck().get();
      expect(users).toBe(reader.prepare('select count(*) from audit_events where user is not null').pluck().get());
      expect(verifyTrail(reader, keys)).toMatchObject({ ok: true, problems: [] });
      reader.close();
    } finally {
      w.close();
    }
  });

  it('in steps between commits (as the writer thread runs it): the watermark moves only at the last, every answer whole at each step, the same rows as one pass', () => {
    const dir = join(root, 'steps');
    const BATCH = 2000;
    const w = TrailWriter.open(dir, key, { indexBatch: BATCH });
    try {
      const reader = openAuditDb(dir, { readonly: true });
      const check = () => {
        expectWholeAnswers(reader);
      };
      let n = 0;
      const batch = (count: number) => w.append(Array.from({ length: count }, () => pendingRowOf(input(++n), Date.now() + n)));
      batch(BATCH - 1);
      expect(w.indexStep(false, 300)).toBe(false); // below a batch: no pass
      batch(101);
      let steps = 0;
      while (w.indexStep(false, 300)) {
        steps++;
        expect(indexedUpTo(w.db)).toBe(0); // rows copied so far are beyond the watermark, read by no query
        batch(7); // commits go on between the steps
        check();
      }
      expect(steps).toBeGreaterThan(5);
      expect(indexedUpTo(w.db)).toBe(BATCH + 100); // the pass's end, not the head it left behind
      expect(tailFrom(w.db)).toBe(w.db.prepare('select min(time) from audit_events where id > ?').pluck().get(BATCH + 100));
      check();
      // A pass left halfway (the writer reopened) is done again from the watermark, rows twice without harm.
      batch(BATCH);
      w.indexStep(false, 300);
      w.indexStep(false, 300);
      w.indexStep(false, 300);
      w.close();
      const again = TrailWriter.open(dir, key, { indexBatch: BATCH });
      try {
        while (again.indexStep(true, 300));
        expect(indexedUpTo(again.db)).toBe(again.head.id);
        check();
        for (const [table, key] of [['audit_by_user', 'user'], ['audit_by_object', 'object']] as const) {
          expect(reader.prepare(`select count(*) from ${table}`).pluck().get()).toBe(reader.prepare(`select count(*) from audit_events where ${key} is not null`).pluck().get());
        }
        expect(verifyTrail(reader, keys)).toMatchObject({ ok: true, problems: [] });
      } finally {
        again.close();
      }
      reader.close();
    } finally {
      w.close();
    }
  });

  it('commits its steps without an fsync of their own: a crash that loses them loses no acknowledged event, hides none, and the pass is done again', () => {
    const dir = join(root, 'unsynced-steps');
    const BATCH = 2000;
    const w = TrailWriter.open(dir, key, { indexBatch: BATCH });
    const full = () => w.db.pragma('synchronous', { simple: true });
    try {
      let n = 0;
      w.append(Array.from({ length: BATCH + 100 }, () => pendingRowOf(input(++n), Date.now() + n)));
      // What the last acknowledged commit's fsync put on disk: the WAL up to here.
      const synced = statSync(join(dir, `${AUDIT_FILE}-wal`)).size;
      for (let i = 0; i < 6; i++) {
        expect(w.indexStep(false, 300)).toBe(true);
        expect(full()).toBe(2); // FULL again after every step: the events' own commits stay durable
      }
      // A step that fails leaves the connection at FULL too.
      w.db.exec("create temp trigger refuse before insert on main.audit_by_object begin select raise(abort, 'refused'); end");
      expect(() => {
        while (w.indexStep(false, 300));
      }).toThrow(/refused/);
      expect(full()).toBe(2);
      w.db.exec('drop trigger temp.refuse');
      // A crash: the steps' frames after the last fsync are lost, the last one torn halfway.
      const grown = statSync(join(dir, `${AUDIT_FILE}-wal`)).size;
      expect(grown).toBeGreaterThan(synced + 8192);
      const crashed = join(root, 'unsynced-steps-crashed');
      mkdirSync(crashed);
      copyFileSync(join(dir, AUDIT_FILE), join(crashed, AUDIT_FILE));
      copyFileSync(join(dir, `${AUDIT_FILE}-wal`), join(crashed, `${AUDIT_FILE}-wal`));
      truncateSync(join(crashed, `${AUDIT_FILE}-wal`), synced + Math.floor((grown - synced) / 2) + 100);
      const again = TrailWriter.open(crashed, key, { indexBatch: BATCH });
      try {
        expect(again.head.id).toBe(BATCH + 100); // every acknowledged event
        const reader = openAuditDb(crashed, { readonly: true });
        expect(verifyTrail(reader, keys)).toMatchObject({ ok: true, problems: [] });
        expectWholeAnswers(reader);
        while (again.indexStep(true, 300));
        expect(indexedUpTo(again.db)).toBe(BATCH + 100);
        expectWholeAnswers(reader);
        expect(verifyTrail(reader, keys)).toMatchObject({ ok: true, problems: [] });
        reader.close();
      } finally {
        again.close();
      }
    } finally {
      w.close();
    }
  });

  it('the gateway indexes the tail by its checkpoint timer, so a quiet trail has no tail', async () => {
    const dir = join(root, 'timer');
    const trail = await AuditTrail.open({ dir, key, checkpointMs: 30 });
    try {
      for (let i = 1; i <= 20; i++) await trail.record(input(i));
      const reader = openAuditDb(dir, { readonly: true });
      const { until } = await import('./support/until.js');
      await until(() => indexedUpTo(reader) === 20);
      expect(ids(reader, { user: 'user1' })).toEqual(expected(reader, 'user = ?', 'user1'));
      reader.close();
    } finally {
      await trail.close();
    }
  });
});

/** A trail as the code before issue 21 made it: user_version 3, the user and object indexes on the table. */
function oldLayoutTrail(dir: string, events: number): void {
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, AUDIT_FILE));
  db.pragma('journal_mode = WAL');
  for (let v = 0; v < 3; v++) db.exec(MIGRATIONS[v]!);
  db.pragma('user_version = 3');
  append(db, Array.from({ length: events }, (_, i) => ({ user: i % 4 === 0 ? null : `u${i % 9}`, object: `dataset:d${i % 6}` })));
  db.close();
}

describe('a trail made by the older layout', () => {
  it('is moved to the lookup tables at open: same answers, verify ok, and a tampered one still fails', () => {
    const dir = join(root, 'old');
    oldLayoutTrail(dir, 500);
    const before = new Database(join(dir, AUDIT_FILE), { readonly: true });
    expect(before.prepare("select name from sqlite_master where type = 'index' and name like 'audit_events_%' order by name").pluck().all()).toContain('audit_events_user_time');
    const wantU4 = expected(before, 'user = ?', 'u4');
    const wantD2 = expected(before, 'object = ?', 'dataset:d2');
    before.close();

    const w = TrailWriter.open(dir, key);
    w.checkpoint();
    w.close();
    const db = openAuditDb(dir, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    const indexes = db.prepare("select name from sqlite_master where type = 'index' and name like 'audit_events_%' order by name").pluck().all();
    expect(indexes).toEqual(['audit_events_action_time', 'audit_events_request', 'audit_events_time']);
    expect(indexedUpTo(db)).toBe(500);
    expect(ids(db, { user: 'u4' })).toEqual(wantU4);
    expect(ids(db, { object: 'dataset:d2' })).toEqual(wantD2);
    expect(verifyTrail(db, keys)).toMatchObject({ ok: true, events: 500 });
    db.close();

    const edited = openAuditDb(dir);
    edited.prepare("update audit_events set reason = 'quietly' where id = 250").run();
    edited.close();
    const after = openAuditDb(dir, { readonly: true });
    expect(verifyTrail(after, keys).problems).toContainEqual(expect.objectContaining({ kind: 'edited', event_id: 250 }));
    after.close();
  });
});

describe('an edited lookup table', () => {
  it('cannot put an event in another person\'s answer, and a deleted lookup row fails verify', () => {
    const dir = join(root, 'forged');
    const w = TrailWriter.open(dir, key);
    w.append(Array.from({ length: 100 }, (_, i) => pendingRowOf(input(i + 1), Date.now() + i)));
    w.index(true);
    w.checkpoint();
    w.close();
    const db = openAuditDb(dir);
    const victim = db.prepare("select id, time from audit_events where user = 'user2' order by id limit 1").get() as { id: number; time: number };
    // A row naming mallory for user2's event: the event's own columns say otherwise, so it is not mallory's.
    db.prepare('insert into audit_by_user (user, time, id) values (?, ?, ?)').run('mallory', victim.time, victim.id);
    expect(ids(db, { user: 'mallory' })).toEqual([]);
    db.prepare("insert into audit_by_object (object, time, id) values ('dataset:secret', ?, ?)").run(victim.time, victim.id);
    expect(ids(db, { object: 'dataset:secret' })).toEqual([]);
    db.prepare('delete from audit_by_user where user = ? and id = ?').run('mallory', victim.id);
    db.prepare("delete from audit_by_object where object = 'dataset:secret'").run();
    expect(verifyTrail(db, keys)).toMatchObject({ ok: true });
    // Hiding user2's event from queries by user: verify names the lookup table.
    db.prepare('delete from audit_by_user where user = ? and id = ?').run('user2', victim.id);
    const report = verifyTrail(db, keys);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'lookup_mismatch', event_id: null, message: expect.stringMatching(/user lookup table \(audit_by_user\) holds \d+ entries for the \d+ events up to #100/) })]);
    db.close();
  });
});

describe('retention', () => {
  it('deletes the archived events\' lookup rows with them, and the rest still verifies', async () => {
    const dir = join(root, 'retention');
    const trail = await AuditTrail.open({ dir, key, checkpointMs: 60_000 });
    try {
      for (let i = 1; i <= 60; i++) await trail.record(input(i));
      await trail.close();
      const w = TrailWriter.open(dir, key);
      w.index(true);
      w.close();
      const again = await AuditTrail.open({ dir, key, checkpointMs: 60_000 });
      const result = await again.archive(new Date(Date.now() + 60_000), join(dir, 'archive'), 25);
      expect(result).toMatchObject({ from_id: 1, to_id: 25 });
      expect(await again.verify()).toMatchObject({ ok: true, first_id: 26 });
      await again.close();
      const db = openAuditDb(dir, { readonly: true });
      expect(db.prepare('select count(*) from audit_by_object where id <= 25').pluck().get()).toBe(0);
      expect(db.prepare('select count(*) from audit_by_object').pluck().get()).toBe(35);
      db.close();
    } finally {
      await trail.close().catch(() => undefined);
    }
  });
});

it('fills the lookup tables in batches large enough to share their pages, small enough for a quick tail scan', () => {
  expect(INDEX_BATCH).toBeGreaterThanOrEqual(8192);
  expect(INDEX_BATCH).toBeLessThanOrEqual(65_536);
});
