// What a room may hand to record() (issue 16, point 3): the action is one of the closed list in
// src/audit/actions.ts (a typo is a compile error, and a refusal at run time for what escapes the
// types), and the event's shape is checked by its schema. A malformed event is refused alone, with
// a message naming the field; the valid events recorded beside it, in the same group commit, land.
// Real writer thread, real SQLite file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_ACTIONS, type AuditAction, type AuditInput, AuditInputError, AuditTrail, isAuditAction, loadAuditKey, openAuditDb } from '../src/audit/index.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-input-'));
const dir = join(root, 'trail');
let trail: AuditTrail;

const valid: AuditInput = {
  actor: { user: 'alice', groups: ['analysts'], auth_method: 'oidc', ip: '10.0.0.1' },
  action: 'dataset.list',
  object: 'dataset:*',
  decision: 'allow',
  reason: 'listed',
  request_id: 'req-1',
  details: { returned: 3 },
};

/** What escapes the types: a value from JSON, a cast, a spread of something wider. */
const loose = (changes: Record<string, unknown>): AuditInput => ({ ...valid, ...changes }) as unknown as AuditInput;

beforeAll(async () => {
  trail = await AuditTrail.open({ dir, key: loadAuditKey(join(root, 'certs')), checkpointMs: 3_600_000 });
});
afterAll(async () => {
  await trail?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the audit actions', () => {
  it('are a closed list, each with its meaning', () => {
    const names = Object.keys(AUDIT_ACTIONS);
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) {
      expect(name).toMatch(/^[a-z]+\.[a-z_]+$/);
      expect(AUDIT_ACTIONS[name as AuditAction].length, name).toBeGreaterThan(10);
    }
    // The ones every room relies on, and the trail's own.
    for (const name of ['auth.login', 'auth.rejected', 'job.submit', 'dataset.read', 'dataset.authorize', 'audit.query', 'policy.reload', 'audit.recovered', 'audit.witness_reset']) expect(isAuditAction(name), name).toBe(true);
    for (const name of ['job.sumbit', 'job.', 'job', 'JOB.SUBMIT', 'toString', '__proto__', '']) expect(isAuditAction(name), name).toBe(false);
  });

  it('make a typo a compile error', () => {
    // @ts-expect-error 'job.sumbit' is not an AuditAction
    const typo: AuditInput = { ...valid, action: 'job.sumbit' };
    expect(isAuditAction(typo.action)).toBe(false);
  });
});

describe('what record() refuses', () => {
  it('refuses an unknown action or a malformed event alone, naming the field, while the valid ones beside it land', async () => {
    const refusals: [given: AuditInput, message: RegExp][] = [
      [loose({ action: 'job.sumbit' }), /audit event "job\.sumbit": action: not a known audit action \(src\/audit\/actions\.ts\)/],
      [loose({ action: 42 }), /audit event: action: not a known audit action/],
      [loose({ action: undefined }), /audit event: action: required/],
      [loose({ object: undefined }), /audit event "dataset\.list": object: required/],
      [loose({ reason: 7 }), /audit event "dataset\.list": reason: must be a string/],
      [loose({ decision: 'maybe' }), /audit event "dataset\.list": decision: must be allow, deny or error/],
      [loose({ actor: undefined }), /audit event "dataset\.list": actor: required/],
      [loose({ actor: { ...valid.actor, groups: [1] } }), /audit event "dataset\.list": actor\.groups\[0\]: must be a string/],
      [loose({ actor: { ...valid.actor, groups: 'analysts' } }), /actor\.groups: must be an array/],
      [loose({ actor: { ...valid.actor, user: 3 } }), /actor\.user: must be a string or null/],
      [loose({ actor: { user: 'alice', groups: [], ip: null } }), /actor\.auth_method: required/],
      [loose({ policy_version: 1 }), /policy_version: must be a string or null/],
      [loose({ request_id: {} }), /request_id: must be a string or null/],
      [loose({ details: ['a'] }), /details: must be an object/],
      [loose({ details: null }), /details: must be an object/],
      [loose({ detail: { returned: 3 } }), /audit event "dataset\.list": detail: not a field of an audit event/],
      [null as unknown as AuditInput, /audit event: must be an object/],
    ];
    // All in one turn of the event loop: they would share one group commit.
    const outcomes = await Promise.allSettled([trail.record(valid), ...refusals.map(([given]) => trail.record(given)), trail.record({ ...valid, action: 'dataset.authorize', details: { requested: 'read' } })]);
    expect(outcomes[0]).toMatchObject({ status: 'fulfilled', value: { action: 'dataset.list' } });
    expect(outcomes.at(-1)).toMatchObject({ status: 'fulfilled', value: { action: 'dataset.authorize' } });
    refusals.forEach(([given, message], i) => {
      const outcome = outcomes[i + 1]!;
      expect(outcome.status, JSON.stringify(given)).toBe('rejected');
      const err = (outcome as PromiseRejectedResult).reason as Error;
      expect(err, JSON.stringify(given)).toBeInstanceOf(AuditInputError);
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toMatch(message);
    });
    expect(trail.available()).toBe(true); // a refused event does not take the trail down
    const db = openAuditDb(dir, { readonly: true });
    const actions = (db.prepare('select action from audit_events order by id').all() as { action: string }[]).map((r) => r.action);
    db.close();
    expect(actions).toEqual(['dataset.list', 'dataset.authorize']);
  });

  it('names no value of a refused event but its action, and that only when it is a short plain name', async () => {
    const secretish = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln';
    const err = (await trail.record(loose({ action: secretish, reason: secretish })).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(AuditInputError);
    expect(err.message).not.toContain(secretish);
    expect(err.message).toMatch(/^audit event: action: not a known audit action/);
  });

  it('takes every listed action, and odd but legal values', async () => {
    for (const action of Object.keys(AUDIT_ACTIONS) as AuditAction[]) await expect(trail.record({ ...valid, action })).resolves.toMatchObject({ action });
    // Optional fields may be absent or undefined, ids null; the actor may be nobody.
    await expect(trail.record({ ...valid, actor: { user: null, groups: [], auth_method: null, ip: null }, policy_version: undefined, request_id: null, details: undefined })).resolves.toMatchObject({ policy_version: null, request_id: null, details: {} });
  });
});
