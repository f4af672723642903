// How record() batches (src/audit/writer-client.ts): the events of one turn of the event loop leave
// in messages of MESSAGE_EVENTS as they are made, and the writer thread commits whatever has arrived
// as one transaction. Real writer thread, real SQLite file. What must hold whatever the split:
// events keep their call order in the chain, every caller answered ok has its event in the trail,
// and when a commit fails no caller of it is answered ok (the request fails closed).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditInput, AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { hashEvent } from '../src/audit/chain.js';
import { MESSAGE_EVENTS } from '../src/audit/writer-client.js';
import { readTrail } from './support/audit-trail.js';
import { until } from './support/until.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-batching-'));
const key = () => loadAuditKey(join(root, 'certs'));

const input = (tag: string, i: number, reason = `allowed by rule ${i}`): AuditInput => ({
  actor: { user: `user${i % 13}`, groups: ['analysts'], auth_method: 'oidc', ip: '10.0.0.1' },
  action: 'dataset.read',
  object: `dataset:set${i % 7}`,
  decision: 'allow',
  reason,
  request_id: `${tag}-${i}`,
  details: { n: i },
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('events recorded in one turn, more than one message holds', () => {
  const dir = join(root, 'order');
  let trail: AuditTrail;
  beforeAll(async () => {
    trail = await AuditTrail.open({ dir, key: key(), checkpointMs: 3_600_000 });
  });
  afterAll(() => trail?.close());

  it('are all committed, numbered in the order record() was called, each answered with what is stored', async () => {
    const n = 3 * MESSAGE_EVENTS + 17;
    const events = await Promise.all(Array.from({ length: n }, (_, i) => trail.record(input('order', i))));
    const ids = events.map((e) => e.id);
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + i)); // consecutive, in call order
    for (const e of events) expect(hashEvent(e)).toBe(e.hash);
    for (let i = 1; i < n; i++) expect(events[i]!.prev_hash).toBe(events[i - 1]!.hash);
    expect((await trail.verify()).ok).toBe(true);
  });
});

describe('a commit that fails', () => {
  const dir = join(root, 'poison');
  let trail: AuditTrail;
  beforeAll(async () => {
    trail = await AuditTrail.open({ dir, key: key(), checkpointMs: 3_600_000, probeMs: 50 });
    await trail.record(input('before', 0));
  });
  afterAll(() => trail?.close());

  it('fails every caller of it, none answered ok; what was answered ok is in the trail, in call order', async () => {
    // One event the database refuses (a trigger, as a full disk or a broken file refuses a write):
    // the transaction it is in rolls back as a whole.
    const db = new Database(join(dir, 'audit.db'));
    db.exec("create trigger poison before insert on audit_events when new.reason = 'poison' begin select raise(abort, 'poisoned'); end");
    db.close();
    const n = 4 * MESSAGE_EVENTS;
    const poisoned = MESSAGE_EVENTS + 5; // in the second message
    const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => trail.record(input('burst', i, i === poisoned ? 'poison' : undefined))));

    expect(results[poisoned]!.status).toBe('rejected');
    // Its whole message at least shared its transaction: not one of those callers was answered ok.
    const message = results.slice(MESSAGE_EVENTS, 2 * MESSAGE_EVENTS);
    expect(message.filter((r) => r.status === 'fulfilled')).toEqual([]);
    const stored = readTrail(dir).filter((e) => e.request_id?.startsWith('burst-'));
    const storedIds = new Set(stored.map((e) => e.request_id));
    results.forEach((r, i) => {
      // Answered ok exactly when it is in the trail.
      expect(storedIds.has(`burst-${i}`), `event ${i}: ${r.status}`).toBe(r.status === 'fulfilled');
      if (r.status === 'rejected') expect((r.reason as Error).name).toBe('AuditUnavailableError');
    });
    // The stored ones keep their call order.
    const order = stored.map((e) => Number(e.request_id!.slice('burst-'.length)));
    expect(order).toEqual([...order].sort((a, b) => a - b));

    // The trail marked itself unavailable and comes back by itself once a write succeeds again.
    const fix = new Database(join(dir, 'audit.db'));
    fix.exec('drop trigger poison');
    fix.close();
    await until(() => trail.available(), 10_000, 'the trail available again');
    await trail.record(input('after', 1));
    expect((await trail.verify()).ok).toBe(true);
  });
});
