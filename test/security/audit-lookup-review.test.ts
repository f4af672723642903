// An attacker's review of the audit trail's lookup tables (src/audit/lookup-index.ts, issue 21 point 4):
// queries by user and object read audit_by_user / audit_by_object up to the watermark, so whoever can
// write the trail's file can hide an event from an auditor's `--user`/`--object` query by editing those
// tables while the chain itself still verifies. Verify must name every such edit: a lookup row deleted
// and made up for by a junk one (the count stays), or one whose time was changed (the query re-checks it
// against the event and drops it), on either table.
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditInput, type AuditSigningKey, loadAuditKey, openAuditDb, verifyTrail } from '../../src/audit/index.js';
import { parseFilter, queryEvents } from '../../src/audit/query.js';
import { pendingRowOf, TrailWriter } from '../../src/audit/writer.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-lookup-review-'));
let key: AuditSigningKey;
let keys: Map<string, KeyObject>;
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(() => {
  key = loadAuditKey(join(root, 'certs'));
  keys = new Map([[key.kid, key.publicKey]]);
});

const input = (i: number): AuditInput => ({
  actor: { user: `user${i % 5}`, groups: ['analysts'], auth_method: 'oidc', ip: '127.0.0.1' },
  action: 'dataset.read',
  object: `dataset:set${i % 7}`,
  decision: 'allow',
  reason: 'p, role:analysts, dataset:*, read, allow',
  request_id: `req-${i}`,
  details: { n: i },
});

const ids = (db: Database.Database, query: Record<string, string>) => queryEvents(db, parseFilter({ ...query, limit: '1000' }, Date.now())).events.map((e) => e.id);

let trails = 0;
/** A trail of 60 events, all indexed (the watermark at its head). */
function trail(): Database.Database {
  trails += 1;
  const dir = join(root, `t${trails}`);
  const w = TrailWriter.open(dir, key);
  w.append(Array.from({ length: 60 }, (_, i) => pendingRowOf(input(i + 1), Date.now() + i)));
  w.index(true);
  w.checkpoint();
  w.close();
  return openAuditDb(dir);
}

function victimOf(db: Database.Database): { id: number; time: number; user: string; object: string } {
  return db.prepare("select id, time, user, object from audit_events where user = 'user2' order by id limit 1").get() as { id: number; time: number; user: string; object: string };
}

describe('an edited lookup table that hides an event from queries', () => {
  for (const [table, column, filter] of [['audit_by_user', 'user', 'user'], ['audit_by_object', 'object', 'object']] as const) {
    it(`fails verify when a ${table} row is deleted and a junk row keeps the count`, () => {
      const db = trail();
      expect(verifyTrail(db, keys)).toMatchObject({ ok: true });
      const v = victimOf(db);
      db.prepare(`delete from ${table} where ${column} = ? and id = ?`).run(v[column], v.id);
      db.prepare(`insert into ${table} (${column}, time, id) values ('nobody:junk', 0, ?)`).run(v.id);
      expect(ids(db, { [filter]: v[column] })).not.toContain(v.id); // hidden from the auditor's query
      const report = verifyTrail(db, keys);
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
      db.close();
    });

    it(`fails verify when a ${table} row's time is changed`, () => {
      const db = trail();
      const v = victimOf(db);
      db.prepare(`update ${table} set time = time + 1 where ${column} = ? and id = ?`).run(v[column], v.id);
      expect(ids(db, { [filter]: v[column] })).not.toContain(v.id);
      const report = verifyTrail(db, keys);
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
      db.close();
    });
  }
});

// review33: the un-indexed tail is skipped by a query with an `until` when audit_indexed.tail_from
// (the tail's earliest time, kept by the writer) is not before it. Whoever can write the file could
// raise tail_from, or null it, and hide every tail event from `--user/--object --until` queries;
// verify must name that as it names an edited lookup row.
/** A trail of 60 indexed events and 10 after the watermark (the tail), and a tail event of user2. */
function trailWithTail(): { db: Database.Database; victim: { id: number; time: number; user: string } } {
  trails += 1;
  const dir = join(root, `t${trails}`);
  const w = TrailWriter.open(dir, key);
  const t0 = Date.now();
  w.append(Array.from({ length: 60 }, (_, i) => pendingRowOf(input(i + 1), t0 + i)));
  w.index(true);
  w.append(Array.from({ length: 10 }, (_, i) => pendingRowOf(input(61 + i), t0 + 60 + i))); // the tail
  w.checkpoint();
  w.close();
  const db = openAuditDb(dir);
  const victim = db.prepare("select id, time, user from audit_events where id > (select upto from audit_indexed) and user = 'user2' order by id limit 1").get() as { id: number; time: number; user: string };
  return { db, victim };
}

describe('an edited tail_from that hides the un-indexed tail from queries with an until', () => {
  for (const edit of ['set tail_from = tail_from + 3600000', 'set tail_from = null', "set tail_from = 'x'"]) {
    it(`fails verify after "update audit_indexed ${edit}"`, () => {
      const { db, victim } = trailWithTail();
      const query = { user: victim.user, until: new Date(victim.time + 1000).toISOString() };
      expect(ids(db, query)).toContain(victim.id);
      expect(verifyTrail(db, keys)).toMatchObject({ ok: true });
      db.prepare(`update audit_indexed ${edit} where one = 1`).run();
      expect(ids(db, query)).not.toContain(victim.id); // hidden from the auditor's query
      const report = verifyTrail(db, keys);
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
      db.close();
    });
  }

  it('verifies a tail_from below the tail (only a slower query)', () => {
    const { db } = trailWithTail();
    db.prepare('update audit_indexed set tail_from = tail_from - 10 where one = 1').run();
    expect(verifyTrail(db, keys)).toMatchObject({ ok: true });
    db.close();
  });
});

// review33: the watermark itself. With its row deleted, both arms of a lookup query compare ids with
// NULL and find nothing: every --user/--object query comes back empty. With a text in it (SQLite
// orders every number before any text) the indexed arm takes every lookup row and the tail arm none:
// the events after the real watermark are hidden. Verify read either as a watermark of 0 or of the
// text, and said ok.
describe('an edited watermark that hides events from lookup queries', () => {
  it('fails verify when the watermark row is deleted (every event hidden)', () => {
    const db = trail();
    const v = victimOf(db);
    expect(ids(db, { user: v.user })).toContain(v.id);
    db.prepare('delete from audit_indexed').run();
    expect(ids(db, { user: v.user })).toEqual([]); // hidden from the auditor's query
    const report = verifyTrail(db, keys);
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
    db.close();
  });

  it('fails verify when the watermark is a text (the un-indexed tail hidden)', () => {
    const { db, victim } = trailWithTail();
    expect(ids(db, { user: victim.user })).toContain(victim.id);
    db.prepare("update audit_indexed set upto = 'x' where one = 1").run();
    expect(ids(db, { user: victim.user })).not.toContain(victim.id); // hidden from the auditor's query
    const report = verifyTrail(db, keys);
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
    db.close();
  });
});

// review34: verify took a negative watermark for "a trail from before the lookup tables" (its -1)
// and checked neither the tables nor tail_from. With upto -1 every event is in the tail, and a
// tail_from raised past them all makes every `--user/--object --until` query skip it: the whole
// trail hidden from those queries while verify said ok.
describe('a negative watermark with a raised tail_from', () => {
  it('fails verify (every event hidden from --until lookups)', () => {
    const db = trail();
    const v = victimOf(db);
    const query = { user: v.user, until: new Date(v.time + 1000).toISOString() };
    expect(ids(db, query)).toContain(v.id);
    db.prepare('update audit_indexed set upto = -1, tail_from = 9000000000000000 where one = 1').run();
    expect(ids(db, query)).toEqual([]); // hidden from the auditor's query
    const report = verifyTrail(db, keys);
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
    db.close();
  });
});

// review34: the count of matching lookup rows relies on the tables' primary key for "one row per
// event". Whoever can write the file can also recreate a table without it: the victim's row deleted
// and another event's row doubled keeps the count, and the query misses the victim.
describe('a lookup table recreated without its primary key', () => {
  for (const [table, column, filter] of [['audit_by_user', 'user', 'user'], ['audit_by_object', 'object', 'object']] as const) {
    it(`fails verify when ${table} holds a doubled row in place of a deleted one`, () => {
      const db = trail();
      const v = victimOf(db);
      expect(ids(db, { [filter]: v[column] })).toContain(v.id);
      db.exec(`create table loose as select * from ${table}; drop table ${table}; alter table loose rename to ${table}`);
      db.prepare(`delete from ${table} where id = ?`).run(v.id);
      db.prepare(`insert into ${table} select * from ${table} where id = (select min(id) from ${table} where id <> ?)`).run(v.id);
      expect(ids(db, { [filter]: v[column] })).not.toContain(v.id); // hidden from the auditor's query
      const report = verifyTrail(db, keys);
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'lookup_mismatch' }));
      db.close();
    });
  }
});
