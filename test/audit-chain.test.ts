// The trail's own guarantees, on a real writer thread and a real SQLite file: group commit keeps
// every event, and verify finds and locates each kind of tampering (edit, delete, insert, reorder,
// truncate, a rewritten chain), also across retention's archive and in the archive file itself.
import type { KeyObject } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditInput, type AuditSigningKey, AuditTrail, loadAuditKey, openAuditDb, verifyArchive, verifyTrail } from '../src/audit/index.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { canonicalRow, hashEvent, hashRow } from '../src/audit/chain.js';
import { signCheckpoint } from '../src/audit/checkpoint.js';
import type { AuditRow } from '../src/audit/schema.js';
import { until } from './support/until.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-chain-'));
const trailDir = join(root, 'trail');
let key: AuditSigningKey;
let keys: Map<string, KeyObject>;
const N = 3000;

const input = (i: number): AuditInput => ({
  actor: { user: `user${i % 7}`, groups: i % 2 ? ['analysts'] : ['analysts', 'contractors'], auth_method: 'oidc', ip: '127.0.0.1' },
  action: i % 3 ? 'dataset.read' : 'job.submit',
  object: `dataset:set${i % 11}`,
  decision: i % 5 ? 'allow' : 'deny',
  reason: i % 5 ? 'p, role:analysts, dataset:*, read, allow' : 'no rule grants read on dataset:x to user:y',
  request_id: `req-${i}`,
  details: { n: i, labels: ['pii'], nested: { b: 1, a: 'é"\n' } },
});

/** A closed copy of the trail, to tamper with through SQL as someone with the file would. */
function tamperedCopy(name: string, tamper: (db: Database.Database) => void): string {
  const dir = join(root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(trailDir, 'audit.db'), join(dir, 'audit.db'));
  const db = openAuditDb(dir);
  tamper(db);
  db.close();
  return dir;
}

function verifyDir(dir: string, liveHead?: { id: number; hash: string }) {
  const db = openAuditDb(dir, { readonly: true });
  try {
    return verifyTrail(db, keys, { liveHead });
  } finally {
    db.close();
  }
}

const row = (db: Database.Database, id: number) => db.prepare('select * from audit_events where id = ?').get(id) as AuditRow;
let head: { id: number; hash: string };

beforeAll(async () => {
  key = loadAuditKey(join(root, 'certs'));
  keys = new Map([[key.kid, key.publicKey]]);
  const trail = await AuditTrail.open({ dir: trailDir, key, checkpointMs: 50 });
  let commits = 0;
  trail.onCommit = () => commits++;
  // Many concurrent writers, as requests are: every record must come back with its own place.
  const events = await Promise.all(Array.from({ length: N }, (_, i) => trail.record(input(i))));
  expect(new Set(events.map((e) => e.id)).size).toBe(N);
  expect(commits).toBeLessThan(N / 10); // shared commits, not one per event
  for (const e of events.slice(0, 50)) expect(hashEvent(e)).toBe(e.hash); // the returned event is the stored one
  head = trail.head();
  await trail.close(); // signs the tail
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the chain', () => {
  it('keeps every event, chained, with the tail signed at close', () => {
    const report = verifyDir(trailDir, head);
    expect(report).toMatchObject({ ok: true, events: N, first_id: 1, last_id: N, unsigned_tail: 0, problems: [] });
    expect(report.last_checkpoint?.event_id).toBe(N);
  });

  it('hashes the RFC 8785 canonical JSON of the event without its hash, so any JCS library can check it', () => {
    const db = openAuditDb(trailDir, { readonly: true });
    const r = row(db, 7);
    db.close();
    const { hash, ...content } = r;
    expect(hashRow(content)).toBe(hash);
    expect(canonicalRow(content)).toBe(canonicalJson({ ...JSON.parse(canonicalRow(content)) }));
    expect(canonicalJson({ b: [1, 'x', null], a: { d: true, c: 1.5 } })).toBe('{"a":{"c":1.5,"d":true},"b":[1,"x",null]}');
  });

  it('locates an edited event', () => {
    const dir = tamperedCopy('edit', (db) => db.prepare("update audit_events set reason = 'allowed by nobody' where id = 500").run());
    expect(verifyDir(dir).problems).toEqual([expect.objectContaining({ kind: 'edited', event_id: 500 })]);
  });

  it('locates an edited event whose hash was recomputed (the link to the next one breaks)', () => {
    const dir = tamperedCopy('rehash', (db) => {
      const r = row(db, 500);
      const changed = { ...r, user: 'mallory' };
      const { hash: _h, ...content } = changed;
      db.prepare('update audit_events set user = ?, hash = ? where id = 500').run('mallory', hashRow(content));
    });
    // The lookup tables still name its old user: queries by user would miss it, and verify says so too.
    expect(verifyDir(dir).problems).toEqual([expect.objectContaining({ kind: 'broken_link', event_id: 501 }), expect.objectContaining({ kind: 'lookup_mismatch', event_id: null })]);
  });

  it('locates a deleted event, and a deletion with the later ids renumbered', () => {
    const gap = tamperedCopy('delete', (db) => db.prepare('delete from audit_events where id = 500').run());
    expect(verifyDir(gap).problems).toEqual([expect.objectContaining({ kind: 'missing', event_id: 500 })]);
    const renumbered = tamperedCopy('delete-renumber', (db) => {
      db.prepare('delete from audit_events where id = 500').run();
      db.prepare('update audit_events set id = -(id - 1) where id > 500').run();
      db.prepare('update audit_events set id = -id where id < 0').run();
    });
    const problems = verifyDir(renumbered).problems;
    expect(problems[0]).toMatchObject({ kind: 'missing', event_id: 500 });
  });

  it('locates an inserted event, forged with a correct hash and the later ids shifted', () => {
    const dir = tamperedCopy('insert', (db) => {
      db.prepare('update audit_events set id = -(id + 1) where id >= 500').run();
      db.prepare('update audit_events set id = -id where id < 0').run();
      const before = row(db, 499);
      const forged = { ...row(db, 501), id: 500, user: 'mallory', prev_hash: before.hash };
      const { hash: _h, ...content } = forged;
      forged.hash = hashRow(content);
      db.prepare('insert into audit_events values (@id, @time, @user, @groups, @auth_method, @ip, @action, @object, @decision, @reason, @policy_version, @request_id, @details, @prev_hash, @hash)').run(forged);
    });
    expect(verifyDir(dir).problems[0]).toMatchObject({ kind: 'inserted', event_id: 501 });
  });

  it('locates swapped events, next to each other and far apart', () => {
    const swap = (a: number, b: number) => (db: Database.Database) => {
      const ra = row(db, a);
      const rb = row(db, b);
      db.prepare('delete from audit_events where id in (?, ?)').run(a, b);
      const ins = db.prepare('insert into audit_events values (@id, @time, @user, @groups, @auth_method, @ip, @action, @object, @decision, @reason, @policy_version, @request_id, @details, @prev_hash, @hash)');
      ins.run({ ...rb, id: a });
      ins.run({ ...ra, id: b });
    };
    // Each lookup row still names the event that was at its id: queries would drop both, and verify says so too.
    expect(verifyDir(tamperedCopy('swap-near', swap(500, 501))).problems).toEqual([
      expect.objectContaining({ kind: 'reordered', event_id: 500 }),
      expect.objectContaining({ kind: 'lookup_mismatch', message: expect.stringMatching(/audit_by_user/) }),
      expect.objectContaining({ kind: 'lookup_mismatch', message: expect.stringMatching(/audit_by_object/) }),
    ]);
    const far = verifyDir(tamperedCopy('swap-far', swap(500, 505))).problems;
    expect(far.filter((p) => p.kind === 'reordered').map((p) => p.event_id)).toEqual([500, 505]);
  });

  it('locates a truncated tail: by the signed checkpoints, and by the live head', () => {
    const dir = tamperedCopy('truncate', (db) => db.prepare('delete from audit_events where id > ?').run(N - 100));
    expect(verifyDir(dir).problems).toEqual([expect.objectContaining({ kind: 'truncated', event_id: N - 99 })]);
    // Checkpoints deleted too: the gateway's own head still knows.
    const both = tamperedCopy('truncate-all', (db) => {
      db.prepare('delete from audit_events where id > ?').run(N - 100);
      db.prepare('delete from audit_checkpoints where event_id > ?').run(N - 100);
    });
    expect(verifyDir(both).ok).toBe(true);
    expect(verifyDir(both, head).problems).toEqual([expect.objectContaining({ kind: 'truncated', event_id: N - 99 })]);
  });

  it('catches a chain rewritten from an event on (hashes recomputed) at the next signed checkpoint', () => {
    const dir = tamperedCopy('rewrite', (db) => {
      const rows = db.prepare('select * from audit_events where id >= 500 order by id').all() as AuditRow[];
      let prev = row(db, 499).hash;
      const update = db.prepare('update audit_events set reason = ?, prev_hash = ?, hash = ? where id = ?');
      for (const r of rows) {
        const reason = r.id === 500 ? 'rewritten' : r.reason;
        const { hash: _h, ...content } = { ...r, reason, prev_hash: prev };
        const hash = hashRow(content);
        update.run(reason, prev, hash, r.id);
        prev = hash;
      }
    });
    const problems = verifyDir(dir).problems;
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.kind === 'edited' && p.event_id! >= 500)).toBe(true);
  });

  it('refuses a checkpoint signed by another key, or altered', () => {
    const dir = tamperedCopy('checkpoint', (db) => db.prepare("update audit_checkpoints set jws = jws || 'x' where event_id = (select max(event_id) from audit_checkpoints)").run());
    expect(verifyDir(dir).problems).toContainEqual(expect.objectContaining({ kind: 'bad_checkpoint' }));
    // Signed by a key that is not the gateway's: as the newest checkpoint, and as an older one that disagrees with the chain.
    const other = loadAuditKey(join(root, 'other-certs'));
    const forged = tamperedCopy('checkpoint-other-key', (db) => {
      const cp = signCheckpoint(other, N + 50, 'f'.repeat(64), new Date());
      db.prepare('insert into audit_checkpoints (event_id, hash, time, kid, jws) values (?, ?, ?, ?, ?)').run(cp.event_id, cp.hash, Date.now(), cp.kid, cp.jws);
      const old = signCheckpoint(other, 100, 'e'.repeat(64), new Date());
      db.prepare('insert or replace into audit_checkpoints (event_id, hash, time, kid, jws) values (?, ?, ?, ?, ?)').run(old.event_id, old.hash, Date.now(), old.kid, old.jws);
    });
    const report = verifyDir(forged);
    expect(report.problems).toEqual([
      expect.objectContaining({ kind: 'bad_checkpoint', event_id: N + 50, message: expect.stringMatching(/unknown key/) }),
      expect.objectContaining({ kind: 'bad_checkpoint', event_id: 100 }),
    ]);
    expect(report.last_checkpoint?.event_id).toBe(N); // the gateway's own newest checkpoint still stands
  });
});

describe('retention', () => {
  it('archives the oldest events to a file that verifies on its own; the rest verifies from its anchor', async () => {
    const dir = join(root, 'retention');
    mkdirSync(dir);
    copyFileSync(join(trailDir, 'audit.db'), join(dir, 'audit.db'));
    const trail = await AuditTrail.open({ dir, key, checkpointMs: 60_000 });
    const archiveDir = join(dir, 'archive');
    const first = await trail.archive(new Date(Date.now() + 1000), archiveDir, 1000);
    expect(first).toMatchObject({ from_id: 1, to_id: 1000, events: 1000 });
    const next = await trail.record(input(N)); // the chain goes on after an archive run
    expect(next.id).toBe(N + 1);
    const report = await trail.verify();
    expect(report).toMatchObject({ ok: true, first_id: 1001, last_id: N + 1, anchor: { event_id: 1000 } });
    await trail.close();

    const archived = await verifyArchive(first!.file, keys);
    expect(archived).toMatchObject({ ok: true, events: 1000, first_id: 1, last_id: 1000, key_source: 'trusted' });
    expect((await verifyArchive(first!.file)).key_source).toBe('archive'); // without a trusted key: says whose key it used

    // An edited archive line is found and located.
    const lines = readFileSync(first!.file, 'utf8').split('\n');
    lines[10] = lines[10]!.replace('"reason":"', '"reason":"(quietly) ');
    const tampered = join(archiveDir, 'tampered.jsonl');
    writeFileSync(tampered, lines.join('\n'));
    const bad = await verifyArchive(tampered, keys);
    expect(bad.ok).toBe(false);
    expect(bad.problems[0]).toMatchObject({ kind: 'edited', event_id: 10 });
    // A cut-off archive is found too.
    writeFileSync(tampered, lines.slice(0, 500).join('\n'));
    expect((await verifyArchive(tampered, keys)).problems).toContainEqual(expect.objectContaining({ kind: 'truncated' }));
    expect(readdirSync(archiveDir).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });
});

describe('the writer thread', () => {
  it('refuses while its thread is gone, starts a new one by itself, and records the outage', async () => {
    const dir = join(root, 'restart');
    const trail = await AuditTrail.open({ dir, key, checkpointMs: 60_000, probeMs: 100 });
    await trail.record(input(1));
    await (trail as unknown as { writer: { worker: import('node:worker_threads').Worker } }).writer.worker.terminate(); // the writer thread dies (src/audit/writer-client.ts)
    await expect(trail.record(input(2))).rejects.toThrow(/unavailable|stopped|not running/);
    expect(trail.health().available).toBe(false);
    await until(async () => (trail.health().available ? true : undefined), 5000, 'the trail to come back');
    const after = await trail.record(input(3));
    const report = await trail.verify();
    await trail.close();
    expect(report).toMatchObject({ ok: true, last_id: after.id });
    const db = openAuditDb(dir, { readonly: true });
    const actions = (db.prepare('select action from audit_events order by id').all() as { action: string }[]).map((r) => r.action);
    db.close();
    expect(actions).toEqual(['dataset.read', 'audit.recovered', 'job.submit']); // input(3) is a submit
  });
});

describe('what events may hold', () => {
  it('keeps odd but legal values verifiable, redacts secrets, and refuses malformed events before they share a commit', async () => {
    const dir = join(root, 'odd');
    const trail = await AuditTrail.open({ dir, key, checkpointMs: 60_000 });
    const base = input(1);
    // A lone surrogate (stored by SQLite as U+FFFD), a sparse array, a Date, -0 and 1e21 all hash as stored.
    // biome-ignore lint/suspicious/noSparseArray: the hole is what is tested
    await trail.record({ ...base, reason: 'half a pair: \ud800', details: { sparse: [1, , 3], at: new Date(0), zero: -0, big: 1e21, line: '\u2028' } });
    // A job name that merely starts like a token is not one.
    await trail.record({ ...base, details: { name: 'eyetracking_daily.v1.2' } });
    // A token is replaced, and the event still recorded, saying which field was (test/security/audit-redaction.test.ts).
    const redacted = await trail.record({ ...base, details: { note: 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln' } });
    expect(redacted.details).toEqual({ note: '[redacted: jwt]', redacted: ['event.details.note'] });
    await expect(trail.record({ ...base, object: undefined as unknown as string })).rejects.toThrow(TypeError);
    await expect(trail.record({ ...base, actor: { ...base.actor, groups: [1 as unknown as string] } })).rejects.toThrow(TypeError);
    expect(trail.health().available).toBe(true); // a refused event does not take the trail down
    const report = await trail.verify();
    await trail.close();
    expect(report).toMatchObject({ ok: true, events: 3 });
    const db = openAuditDb(dir, { readonly: true });
    const first = db.prepare('select reason, details from audit_events where id = 1').get() as { reason: string; details: string };
    db.close();
    expect(first.reason).toBe('half a pair: \ufffd');
    expect(JSON.parse(first.details)).toEqual({ at: '1970-01-01T00:00:00.000Z', big: 1e21, line: '\u2028', sparse: [1, null, 3], zero: 0 });
  });
});
