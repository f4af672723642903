// review37, as the attacker who wants a job run that the trail says did not run (or ran as someone
// else). At start-up a record left `dispatching` and never sent is run only if the trail vouches for
// it (JobBook.restore, audit's admissionOnTrail). The trail vouched for a row on its job id alone:
// - a submission answered 503 because its record could not be written, whose row could not be taken
//   back either (JobRecords.insert's removal failed too): its job.submit AND its job.finish are on the
//   trail, and the next start handed it over, so it ran though its end was on record and its owner was
//   told nothing was submitted;
// - a row naming another user than the job.submit of its id (a restored or edited store): handed over
//   as that row's user, under a ticket the gateway signed for them, the trail saying someone else
//   submitted it.
// Made for real: the gateway killed, the rows written into its SQLite file, the trail's events
// written by its own writer, then the gateway started again against a real engine.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../../src/audit/index.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { type JobSpec, jobSpecHash } from '../../src/wire/index.js';
import { EngineClient } from '../support/engine.js';
import { GATED } from '../support/gated-job.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let stack: Stack;
let token: string;
const onSqlite = (process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite';

beforeAll(async () => {
  stack = await Stack.start({ users: { mallory: ['analysts'] } });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  token = await stack.login('alice');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const spec = (output: string): JobSpec => ({ name: 't', input: 'scratch/tiny', output, runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 });

describe.runIf(onSqlite)('a record left unsent that the trail does not vouch for as it stands', () => {
  it('is not run when its end is on the trail already, nor as a user other than the one its job.submit names', async () => {
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/model-row') });
    expect(answer.status, answer.body).toBe(201);
    const model = answer.json<{ id: string }>().id;
    await stack.api(`/v1/jobs/${model}`, token, { method: 'DELETE' });
    const submitted = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${model}`)!;
    await stack.gateway.stop('SIGKILL');

    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    const row = db.prepare('select * from jobs where id = ?').get(model) as Record<string, unknown>;
    const now = new Date().toISOString();
    let seq = (db.prepare('select max(seq) from jobs').pluck().get() as number) + 1;
    const rowFor = (output: string, user: string) => {
      const jobSpec = { ...(JSON.parse(row.spec as string) as JobSpec), output };
      return { ...row, id: `j${randomBytes(6).toString('hex')}`, seq: seq++, user, output, spec: JSON.stringify(jobSpec), spec_hash: jobSpecHash(jobSpec), state: 'dispatching', held: 1, backend_id: null, status: null, created_at: now, admitted_at: now, finished_at: null, cancelled_by: null, end_owed: null };
    };
    const ended = rowFor('scratch/ended-on-trail', 'alice');
    const forged = rowFor('scratch/forged-owner', 'mallory');
    // A row the trail does vouch for (answered 201, its handover cut by the kill): handed over again.
    const control = rowFor('scratch/control-unsent', 'alice');
    const columns = Object.keys(ended);
    const insert = db.prepare(`insert into jobs (${columns.map((c) => `"${c}"`).join(', ')}) values (${columns.map((c) => `@${c}`).join(', ')})`);
    insert.run(ended);
    insert.run(forged);
    insert.run(control);
    db.close();
    // The trail as the gateway left it: alice's job.submit for both ids, and for the first the end the
    // failed record write put there (job-service's start: answered 503, nothing handed over).
    const trail = await AuditTrail.open({ dir: stack.auditDir, key: loadAuditKey(stack.certsDir), checkpointMs: 3_600_000, witnessFile: join(stack.home, 'var', 'audit-witness.jsonl') });
    for (const r of [ended, forged, control]) {
      await trail.record({ actor: submitted.actor, action: 'job.submit', object: `job:${r.id}`, decision: 'allow', reason: submitted.reason, details: { ...submitted.details, output: r.output } });
    }
    await trail.record({ actor: submitted.actor, action: 'job.finish', object: `job:${ended.id}`, decision: 'error', reason: 'not started: the job record could not be written (the disk is full)', details: { ...submitted.details, output: ended.output, state: 'refused', handed_over: false } });
    await trail.close();

    await stack.startGateway();
    // The control row reaches the engine through the reconciler's resend, which passes over every live
    // row (the control last, by seq): by then the two above were handed over too, or never will be.
    await until(() => engine.status(control.id).then((s) => (s.state === 'running' || s.state === 'queued' ? s : undefined), () => undefined), 30_000, `${control.id} handed over again`);
    const records = new Database(join(stack.home, 'var', 'gatehouse.db'), { readonly: true });
    try {
      for (const never of [ended, forged]) {
        await expect(engine.status(never.id), `${never.output} must not reach the engine`).rejects.toThrow(/404/);
        expect(existsSync(join(stack.dataRoot, never.output))).toBe(false);
        expect(records.prepare('select state, held from jobs where id = ?').get(never.id)).toEqual({ state: 'failed', held: 0 });
      }
    } finally {
      records.close();
    }
    // The trail is not written for them: one holds its end already, the other's admission was not its user's.
    expect(stack.auditEvents().filter((e) => e.object === `job:${ended.id}`).map((e) => e.action)).toEqual(['job.submit', 'job.finish']);
    expect(stack.auditEvents().filter((e) => e.object === `job:${forged.id}`).map((e) => e.action)).toEqual(['job.submit']);
    // Nobody's quota holds them: alice's holds her control job only.
    expect((await stack.api('/v1/quota', token)).json<{ usage: { running_jobs: number } }>().usage.running_jobs).toBe(1);
    await stack.api(`/v1/jobs/${control.id}`, token, { method: 'DELETE' });
  });

  it('is not run when its handover was refused and its row could not be taken back: its end is on the trail first', async () => {
    // A job the engine refuses after the gateway's checks passed (it is writing that output already: its
    // own conflict rule), and the store refusing to delete its row (a disk turned read-only for that write).
    const first = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/refused-kept') });
    expect(first.status, first.body).toBe(201);
    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    db.pragma('busy_timeout = 5000');
    db.exec("create trigger keep_jobs before delete on jobs begin select raise(abort, 'the disk is full'); end");
    let kept: { id: string; state: string };
    try {
      const refused = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/refused-kept') });
      expect(refused.status, refused.body).toBe(409);
      kept = db.prepare("select id, state from jobs where output = 'scratch/refused-kept' and id != ?").get(first.json<{ id: string }>().id) as { id: string; state: string };
    } finally {
      db.exec('drop trigger keep_jobs');
      db.close();
    }
    expect(kept.state).toBe('dispatching'); // left behind by the failed removal
    expect(stack.auditEvents().filter((e) => e.object === `job:${kept.id}`).map((e) => [e.action, e.decision])).toEqual([
      ['job.submit', 'allow'],
      ['job.finish', 'error'],
    ]);
    // The first job ended, so nothing but the kept row could make that output at the next start.
    expect((await stack.api(`/v1/jobs/${first.json<{ id: string }>().id}`, token, { method: 'DELETE' })).status).toBe(200);

    await stack.gateway.stop();
    await stack.startGateway();
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const records = new Database(join(stack.home, 'var', 'gatehouse.db'), { readonly: true });
    try {
      // Ended at start-up, before the gateway listens: its owner was told it was refused, and it never runs.
      expect(records.prepare('select state, held from jobs where id = ?').get(kept.id)).toEqual({ state: 'failed', held: 0 });
    } finally {
      records.close();
    }
    await expect(engine.status(kept.id)).rejects.toThrow(/404/);
    expect(stack.auditEvents().filter((e) => e.object === `job:${kept.id}`).map((e) => e.action)).toEqual(['job.submit', 'job.finish']);
  });
});
