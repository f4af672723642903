// Which admitted submissions the trail never ends (src/audit/unended.ts): read through the object
// lookup table up to its watermark and the un-indexed tail after it, so an end on either side of the
// watermark counts, and only within the window before the trail's newest submission.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { admissionOnTrail, type AuditInput, loadAuditKey, openAuditDb, UNENDED_WINDOW_MS, unendedSubmissions, verifyTrail } from '../src/audit/index.js';
import { archiveBefore } from '../src/audit/retention.js';
import { pendingRowOf, TrailWriter } from '../src/audit/writer.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-unended-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const event = (action: 'job.submit' | 'job.start' | 'job.finish', job: string, decision: 'allow' | 'deny' | 'error' = 'allow'): AuditInput => ({
  actor: { user: 'alice', groups: ['analysts'], auth_method: 'oidc', ip: '127.0.0.1' },
  action,
  object: `job:${job}`,
  decision,
  reason: 'test',
  details: { backend: 'bundled' },
});

describe('unendedSubmissions', () => {
  it('names admitted submissions with no later job.finish, on both sides of the lookup watermark, within the window', () => {
    const dir = join(root, 'trail');
    const key = loadAuditKey(join(root, 'certs'));
    const w = TrailWriter.open(dir, key);
    const t0 = Date.parse('2026-12-04T10:00:00Z');
    let n = 0;
    const at = (input: AuditInput, time = t0 + n++) => pendingRowOf(input, time);
    // Before the watermark.
    w.append([
      at(event('job.submit', 'jold'), t0 - UNENDED_WINDOW_MS - 1000), // outside the window
      at(event('job.submit', 'jendedlater')),
      at(event('job.submit', 'jendedbefore')),
      at(event('job.finish', 'jendedbefore')),
      at(event('job.submit', 'jopen')),
      at(event('job.submit', 'jstarted')),
    ]);
    w.index(true);
    // After it (the tail the lookup tables do not cover yet).
    w.append([at(event('job.finish', 'jendedlater')), at(event('job.start', 'jstarted')), at(event('job.submit', 'jtail')), at(event('job.submit', 'jrefused', 'deny'))]);
    w.close();
    const db = openAuditDb(dir);
    try {
      const upto = db.prepare('select upto from audit_indexed').pluck().get() as number;
      expect(upto).toBe(6); // the test's premise: the first six are indexed, the rest are the tail
      expect(unendedSubmissions(db).map((e) => e.object)).toEqual(['job:jopen', 'job:jstarted', 'job:jtail']);
      // The window is measured from the newest submission, however old it is.
      expect(unendedSubmissions(db, UNENDED_WINDOW_MS + 10_000).map((e) => e.object)).toEqual(['job:jold', 'job:jopen', 'job:jstarted', 'job:jtail']);
    } finally {
      db.close();
    }
  });

  // review35 (attacker: whoever can write the trail's file). Verify leaves a forged extra lookup row
  // alone because queries check each row against its event; this read must check it too, or one row
  // pointing at another job's job.finish hides a lost submission from the start-up's settlement.
  it("is not fooled by a lookup row that files another job's job.finish under this job", () => {
    const dir = join(root, 'forged');
    const key = loadAuditKey(join(root, 'certs'));
    const w = TrailWriter.open(dir, key);
    const t0 = Date.parse('2026-12-04T10:00:00Z');
    w.append([pendingRowOf(event('job.submit', 'jlost'), t0), pendingRowOf(event('job.submit', 'jother'), t0 + 1), pendingRowOf(event('job.finish', 'jother'), t0 + 2)]);
    w.index(true);
    w.close();
    const db = openAuditDb(dir);
    try {
      expect(unendedSubmissions(db).map((e) => e.object)).toEqual(['job:jlost']);
      const finish = db.prepare("select id, time from audit_events where action = 'job.finish'").get() as { id: number; time: number };
      db.prepare('insert into audit_by_object (object, time, id) values (?, ?, ?)').run('job:jlost', finish.time, finish.id);
      expect(verifyTrail(db, new Map([[key.kid, key.publicKey]]))).toMatchObject({ ok: true }); // the premise: verify lets it be
      expect(unendedSubmissions(db).map((e) => e.object)).toEqual(['job:jlost']);
    } finally {
      db.close();
    }
  });

  it('is empty for a trail with no submission', () => {
    const dir = join(root, 'empty');
    const w = TrailWriter.open(dir, loadAuditKey(join(root, 'certs')));
    w.append([pendingRowOf(event('job.finish', 'jx'), Date.now())]);
    w.close();
    const db = openAuditDb(dir);
    expect(unendedSubmissions(db)).toEqual([]);
    db.close();
  });
});

// A job record left `dispatching` at start-up is ended unsent when the trail does not hold its
// admission (proxy/job-book.ts restore): the trail must not answer "not there" for an admission
// retention may have archived, or an admitted job would be dropped.
describe('admissionOnTrail', () => {
  it('finds an admission on either side of the watermark, says false when the trail holds everything since, null once that time is archived', () => {
    const dir = join(root, 'admission');
    const key = loadAuditKey(join(root, 'certs'));
    const w = TrailWriter.open(dir, key);
    const t0 = Date.parse('2026-12-04T10:00:00Z');
    const hour = 3_600_000;
    w.append([pendingRowOf(event('job.submit', 'jindexed'), t0), pendingRowOf(event('job.submit', 'jrefused', 'deny'), t0 + 1)]);
    w.index(true);
    w.append([pendingRowOf(event('job.submit', 'jtail'), t0 + 2), pendingRowOf(event('job.start', 'jlater'), t0 + 5 * hour), pendingRowOf(event('job.submit', 'jended'), t0 + 5 * hour + 1), pendingRowOf(event('job.finish', 'jended'), t0 + 5 * hour + 2)]);
    let db = openAuditDb(dir);
    try {
      expect(admissionOnTrail(db, 'jindexed', t0, 'alice')).toBe('admitted');
      expect(admissionOnTrail(db, 'jtail', t0, 'alice')).toBe('admitted');
      // review37: the row is vouched for as it stands, not by its id: its end on the trail already (answered
      // 503, its row not taken back), or an admission by someone else than the row's user, vouch for nothing.
      expect(admissionOnTrail(db, 'jended', t0 + 5 * hour, 'alice')).toBe('ended');
      expect(admissionOnTrail(db, 'jindexed', t0, 'mallory')).toBe('absent');
      // Refused, or never there: nothing was ever archived, so the trail can say.
      expect(admissionOnTrail(db, 'jrefused', t0, 'alice')).toBe('absent');
      expect(admissionOnTrail(db, 'jnever', t0 - 10 * hour, 'alice')).toBe('absent');
    } finally {
      db.close();
    }
    // Retention takes the first three: from about their time on the trail no longer knows.
    expect(archiveBefore(w, t0 + hour, join(root, 'admission-archive'), 100)).toMatchObject({ events: 3 });
    w.close();
    db = openAuditDb(dir);
    try {
      expect(admissionOnTrail(db, 'jindexed', t0, 'alice')).toBe('unknown');
      expect(admissionOnTrail(db, 'jnever', t0 + 2 * hour, 'alice')).toBe('unknown'); // within the clock's slack of the oldest left
      expect(admissionOnTrail(db, 'jnever', t0 + 5 * hour + hour, 'alice')).toBe('absent'); // made after the oldest event left
    } finally {
      db.close();
    }
  });
});
