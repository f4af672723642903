// The embedded store's submission writes its record beside job.submit's commit and hands the job
// over once job.submit is durable, while the record's fsync may still run. So a record that cannot
// be written must not leave a job running: the answer is 503, a job the engine was handed meanwhile
// is cancelled before it can write anything, and the gateway keeps nothing of it. The store is made
// to refuse the insert for real (a trigger on the gateway's own SQLite file), with a real engine and gateway.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { type JobSpec, jobSpecHash } from '../src/wire/index.js';
import { EngineClient } from './support/engine.js';
import { GATED, releaseGated } from './support/gated-job.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

let stack: Stack;
let token: string;
const onSqlite = (process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite';

beforeAll(async () => {
  // penny (review34's pending case) runs one job at a time, so her second waits in the queue.
  stack = await Stack.start({ users: { penny: ['analysts'] }, policyLines: ['p2, user:penny, max_concurrent_jobs, 1'] });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  token = await stack.login('alice');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const spec = (output: string): JobSpec => ({ name: 't', input: 'scratch/tiny', output, runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 });

describe.runIf(onSqlite)('a job record the embedded store cannot write', () => {
  it('is answered 503, and the engine never receives the job', async () => {
    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    db.pragma('busy_timeout = 5000');
    db.exec("create trigger refuse_jobs before insert on jobs begin select raise(abort, 'the disk is full'); end");
    let answer: Awaited<ReturnType<Stack['api']>>;
    try {
      answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/unrecorded') });
    } finally {
      db.exec('drop trigger refuse_jobs');
      db.close();
    }
    expect(answer.status, answer.body).toBe(503);
    expect(answer.json()).toMatchObject({ error: 'not_ready', message: expect.stringContaining('the job record could not be written') });
    // Its admission is on the trail (it was decided and recorded before the handover); its id is there.
    const submitted = stack.auditEvents().find((e) => e.action === 'job.submit' && e.details.output === 'scratch/unrecorded');
    expect(submitted).toBeDefined();
    const id = submitted!.object.slice('job:'.length);
    // And so is its end (review32): an admitted job is never left without one on the trail.
    expect(stack.auditEvents().find((e) => e.action === 'job.finish' && e.object === `job:${id}`)).toMatchObject({ decision: 'error', reason: expect.stringContaining('the job record could not be written'), details: { state: 'refused', handed_over: false } });
    // The insert, made beside job.submit's commit, failed before that commit was durable: nothing was
    // handed over (session 36; before, the engine had it and the failed submission cancelled it).
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    await expect(engine.status(id)).rejects.toThrow(/404/);
    expect(existsSync(join(stack.dataRoot, 'scratch', 'unrecorded'))).toBe(false);
    // The gateway keeps nothing of it: no job to see, no quota held.
    expect((await stack.api(`/v1/jobs/${id}`, token)).status).toBe(404);
    expect((await stack.api('/v1/quota', token)).json<{ usage: { running_jobs: number } }>().usage.running_jobs).toBe(0);
    // The store takes records again: the same submission runs (the refusal above was the trigger's).
    const again = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/recorded') });
    expect(again.status, again.body).toBe(201);
    const next = again.json<{ id: string }>().id;
    expect((await engine.waitFor(next, (s) => s.state === 'running' || s.state === 'queued')).state).toMatch(/running|queued/);
    await stack.api(`/v1/jobs/${next}`, token, { method: 'DELETE' });
  });
});

// review32: the other end of the same window. A submission that died between the handover and its
// record's insert (a crash, or a cancel after a failed insert that did not get through) leaves the
// engine running a job of ours with no record: the leader's sweep cancels it, and the trail must say
// so (its job.submit may be there, admitted, with nothing after it). Such a job is made here the way
// the gateway makes one, with its key and an id of its shape, and no record.
describe('a job of ours the engine runs with no record at the gateway', () => {
  it('is cancelled by the leader\'s sweep, and its end is on the trail', async () => {
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const id = `j${randomBytes(6).toString('hex')}`;
    await engine.submit(spec('scratch/orphaned'), { job: id, user: 'alice' });
    expect((await engine.waitFor(id)).state).toBe('cancelled');
    const ended = await until(() => stack.auditEvents().find((e) => e.action === 'job.finish' && e.object === `job:${id}`), 30_000, () => `job.finish of ${id} on the trail`);
    expect(ended).toMatchObject({ decision: 'error', actor: { auth_method: 'system' }, reason: expect.stringContaining('no record of it at this gateway'), details: { unrecorded: true, owner: 'alice' } });
    expect(existsSync(join(stack.dataRoot, 'scratch', 'orphaned'))).toBe(false);
    // Recorded once, though the engine may list it for a pass while it stops.
    expect(stack.auditEvents().filter((e) => e.action === 'job.finish' && e.object === `job:${id}`)).toHaveLength(1);
  });
});

// session 33: the admitted job's record is committed without the commit's own fsync, which then runs
// on the thread pool and is awaited before the answer (store/sqlite.ts). Killed right after its answer,
// the restarted gateway has the record, so it neither loses the job nor cancels it as unrecorded.
describe.runIf(onSqlite)('an admitted job whose gateway is killed right after answering', () => {
  it('keeps its record: the restarted gateway follows the job to its end and releases its quota', async () => {
    const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/after-a-crash') });
    expect(answer.status, answer.body).toBe(201);
    const id = answer.json<{ id: string }>().id;
    await stack.gateway.stop('SIGKILL');
    await stack.startGateway();
    expect((await stack.api(`/v1/jobs/${id}`, token)).status).toBe(200);
    await releaseGated(stack.dataRoot, id);
    const ended = await until(
      async () => {
        const view = (await stack.api(`/v1/jobs/${id}`, token)).json<{ state: string }>();
        return ['succeeded', 'failed', 'cancelled'].includes(view.state) ? view : undefined;
      },
      60_000,
      `job ${id}'s end`,
    );
    expect(ended.state).toBe('succeeded');
    expect(stack.gateway.output()).not.toContain('cancelling a backend job the gateway has no live record of');
    expect((await stack.api('/v1/quota', token)).json<{ usage: { running_jobs: number } }>().usage.running_jobs).toBe(0);
  });
});

// session 34: a gateway that stops between a durable job.submit and its record's write (a power loss:
// the record's commit was not yet on disk) leaves an admitted job the trail would never mention again. At its next
// start the gateway finds such submissions on its trail and ends each on it: the job the engine never
// received as lost, the one the engine ran to its end with that end. A job that still has its record is
// left alone. Made for real: a gateway killed, the record taken out of its SQLite file as the power loss
// would have, and a job.submit written by the trail's own writer as the stopped gateway had written it.
async function submit(output: string): Promise<string> {
  const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(output) });
  expect(answer.status, answer.body).toBe(201);
  return answer.json<{ id: string }>().id;
}

const ends = (id: string) => stack.auditEvents().filter((e) => e.action === 'job.finish' && e.object === `job:${id}`);

describe.runIf(onSqlite)('admitted submissions a stopped gateway left without a record', () => {
  it('are ended on the trail at the next start: lost, or as the engine ended them; a recorded job is left alone', async () => {
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const ran = await submit('scratch/ran-unrecorded');
    const kept = await submit('scratch/kept');
    await engine.waitFor(ran, (s) => s.state === 'running');
    const submitted = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${ran}`)!;
    const backend = submitted.details.backend as string;

    await stack.gateway.stop('SIGKILL');
    // What the power loss took: the record of `ran`, whose job the engine had already received.
    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    expect(db.prepare('delete from jobs where id = ?').run(ran).changes).toBe(1);
    db.close();
    // It ends while no gateway runs, so no sweep ever sees it running.
    await releaseGated(stack.dataRoot, ran);
    expect((await engine.waitFor(ran)).state).toBe('succeeded');
    // And a submission whose handover was lost with its record: on the trail, unknown to the engine.
    const never = `j${randomBytes(6).toString('hex')}`;
    const trail = await AuditTrail.open({ dir: stack.auditDir, key: loadAuditKey(stack.certsDir), checkpointMs: 3_600_000, witnessFile: join(stack.home, 'var', 'audit-witness.jsonl') });
    await trail.record({ actor: submitted.actor, action: 'job.submit', object: `job:${never}`, decision: 'allow', reason: `admitted to ${backend}`, details: { ...submitted.details, output: 'scratch/never' } });
    await trail.close();
    await expect(engine.status(never)).rejects.toThrow(/404/);

    await stack.startGateway();
    await until(() => ends(ran).length > 0 && ends(never).length > 0, 30_000, () => `the ends of both unrecorded submissions on the trail\n${stack.gateway.output().split('\n').filter((l) => /record|lost|unended|backend/.test(l)).join('\n')}`);
    expect(ends(ran)).toEqual([
      expect.objectContaining({ decision: 'error', actor: expect.objectContaining({ auth_method: 'system' }), reason: expect.stringContaining(`ended at backend ${backend} as succeeded`), details: expect.objectContaining({ state: 'succeeded', owner: 'alice', unrecorded: true, submitted_event: submitted.id }) }),
    ]);
    expect(ends(never)).toEqual([
      expect.objectContaining({ decision: 'error', actor: expect.objectContaining({ auth_method: 'system' }), reason: expect.stringContaining('never ran'), details: expect.objectContaining({ state: 'lost', owner: 'alice', unrecorded: true }) }),
    ]);
    // The job that kept its record is followed as before: running, no end on the trail.
    expect(ends(kept)).toEqual([]);
    expect((await stack.api(`/v1/jobs/${kept}`, token)).json<{ state: string }>().state).toBe('running');

    // Once: a later start finds each ended already.
    await stack.gateway.stop();
    await stack.startGateway();
    expect((await stack.api('/healthz')).status).toBe(200);
    await releaseGated(stack.dataRoot, kept);
    await until(async () => (await stack.api(`/v1/jobs/${kept}`, token)).json<{ state: string }>().state === 'succeeded', 30_000, `${kept} succeeded`);
    expect(ends(ran)).toHaveLength(1);
    expect(ends(never)).toHaveLength(1);
    expect(ends(kept)).toEqual([expect.objectContaining({ decision: 'allow' })]);
  });
});

// review34: the pending half of review32's finding. A submission that waits in the queue has its
// job.submit (allow, pending) recorded before its record is inserted; an insert that failed answered
// 503 and left that job.submit with nothing after it on the trail, a job that simply stops being
// mentioned.
describe.runIf(onSqlite)('a pending job whose record the embedded store cannot write', () => {
  it('is answered 503, and its end is on the trail after its job.submit', async () => {
    const penny = await stack.login('penny');
    const first = await stack.api('/v1/jobs', penny, { method: 'POST', body: spec('scratch/penny-first') });
    expect(first.status, first.body).toBe(201);
    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    db.pragma('busy_timeout = 5000');
    db.exec("create trigger refuse_jobs before insert on jobs begin select raise(abort, 'the disk is full'); end");
    let answer: Awaited<ReturnType<Stack['api']>>;
    try {
      answer = await stack.api('/v1/jobs', penny, { method: 'POST', body: spec('scratch/penny-unrecorded') });
    } finally {
      db.exec('drop trigger refuse_jobs');
      db.close();
    }
    await stack.api(`/v1/jobs/${first.json<{ id: string }>().id}`, penny, { method: 'DELETE' });
    expect(answer.status, answer.body).toBe(503);
    expect(answer.json()).toMatchObject({ error: 'not_ready', message: expect.stringContaining('the job record could not be written') });
    const submitted = stack.auditEvents().find((e) => e.action === 'job.submit' && e.details.output === 'scratch/penny-unrecorded');
    expect(submitted).toMatchObject({ decision: 'allow', details: { state: 'pending' } });
    const id = submitted!.object.slice('job:'.length);
    expect(stack.auditEvents().find((e) => e.action === 'job.finish' && e.object === `job:${id}`)).toMatchObject({ decision: 'error', reason: expect.stringContaining('the job record could not be written'), details: { state: 'refused', handed_over: false } });
    expect((await stack.api(`/v1/jobs/${id}`, penny)).status).toBe(404);
  });
});

// session 35, the held handover: the engine checks an admitted job and holds it (nothing stored,
// nothing run) while its job.submit is committed, and admits it only on the gateway's release once
// that commit is durable. A trail that refuses job.submit (a trigger on the trail's own SQLite file,
// for real): the answer is 503 audit_unavailable, the gateway never releases, it drops the held job,
// and the engine never admits it. Nothing of it is on the trail either: no job.submit to be ended.
describe('a held job whose job.submit cannot be recorded', () => {
  it('is never admitted by the engine: 503, dropped by the gateway, no job, no output, nothing on the trail', async () => {
    // The held handover rides the job channel: submit until the engine has accepted one over it.
    await until(
      async () => {
        const r = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(`scratch/opener-${randomBytes(3).toString('hex')}`) });
        expect(r.status, r.body).toBe(201);
        await stack.api(`/v1/jobs/${r.json<{ id: string }>().id}`, token, { method: 'DELETE' });
        return /"channel":"jobs"[^\n]*"job accepted"/.test(stack.engine.output()) ? true : undefined;
      },
      30_000,
      'a submission over the job channel',
    );
    const trail = new Database(join(stack.auditDir, 'audit.db'));
    trail.pragma('busy_timeout = 5000');
    trail.exec("create trigger refuse_submits before insert on audit_events when new.action = 'job.submit' begin select raise(abort, 'the trail refuses'); end");
    let answer: Awaited<ReturnType<Stack['api']>>;
    try {
      answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/held-unrecorded') });
    } finally {
      trail.exec('drop trigger refuse_submits');
      trail.close();
    }
    expect(answer.status, answer.body).toBe(503);
    expect(answer.json()).toMatchObject({ error: 'audit_unavailable' });
    // The engine had it prepared (checked, held) and was told to let it go: never admitted.
    const dropped = await until(
      () => stack.engine.output().split('\n').find((l) => l.includes('held job dropped') && l.includes('scratch/held-unrecorded')),
      30_000,
      'the engine dropping the held job',
    );
    expect(dropped).toContain('dropped by the gateway');
    const id = /"job":"([^"]+)"/.exec(dropped)![1]!;
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    await expect(engine.status(id)).rejects.toThrow(/404/);
    expect(existsSync(join(stack.dataRoot, 'scratch', 'held-unrecorded'))).toBe(false);
    expect(stack.engine.output()).not.toMatch(new RegExp(`"job":"${id}"[^\\n]*"job (accepted|queued)"`));
    expect(stack.auditEvents().filter((e) => e.object === `job:${id}`)).toEqual([]);
    // Its record, written beside the refused job.submit (session 36), is taken back: no row left
    // `dispatching` for a restart's reconciler to hand over.
    const records = new Database(join(stack.home, 'var', 'gatehouse.db'), { readonly: true });
    expect(records.prepare('select state from jobs where id = ?').get(id)).toBeUndefined();
    records.close();
    await until(async () => ((await stack.api('/readyz')).status === 200 ? true : undefined), 30_000, 'the trail back');
    // The gateway keeps nothing of it: the same output can be submitted again.
    const again = await stack.api('/v1/jobs', token, { method: 'POST', body: spec('scratch/held-unrecorded') });
    expect(again.status, again.body).toBe(201);
    await stack.api(`/v1/jobs/${again.json<{ id: string }>().id}`, token, { method: 'DELETE' });
  });
});

// session 36: on the embedded store the job's record is written beside its job.submit's group commit,
// not after it. A gateway killed between the two leaves a row `dispatching` whose admission the trail
// never got: at the next start it is ended in the record and never sent (the reconciler would have
// handed it over), and nothing goes on the trail (no job.finish for a job it never admitted). A row of
// the same shape whose job.submit is durable (answered 201, its handover cut by the kill) is handed over
// as before. Made for real: the gateway killed, the rows written into its SQLite file as the killed
// gateway would have, the job.submit by the trail's own writer. Every such row is asked about, however
// old: one whose job.submit was refused and whose row could not be taken back stays behind while the
// gateway runs on.
describe.runIf(onSqlite)('a record a killed gateway left without its job.submit on the trail', () => {
  it('is ended unsent at the next start; one whose job.submit is durable is handed over', async () => {
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const model = await submit('scratch/model-row');
    const submitted = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${model}`)!;
    await stack.gateway.stop('SIGKILL');
    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    const row = db.prepare('select * from jobs where id = ?').get(model) as Record<string, unknown>;
    const now = new Date().toISOString();
    const rowFor = (output: string, seq: number, made = now) => {
      const jobSpec = { ...(JSON.parse(row.spec as string) as JobSpec), output };
      return { ...row, id: `j${randomBytes(6).toString('hex')}`, seq, output, spec: JSON.stringify(jobSpec), spec_hash: jobSpecHash(jobSpec), state: 'dispatching', held: 1, backend_id: null, status: null, created_at: made, admitted_at: made, finished_at: null };
    };
    const seq = (db.prepare('select max(seq) from jobs').pluck().get() as number) + 1;
    // An hour older than the others: its job.submit refused and its row not taken back either, while
    // the gateway ran on (a start-up that asked only about its last minutes' rows resent it).
    const stale = rowFor('scratch/unadmitted-stale', seq, new Date(Date.now() - 3_600_000).toISOString());
    const unadmitted = rowFor('scratch/unadmitted', seq + 1);
    const admitted = rowFor('scratch/admitted-unsent', seq + 2);
    const columns = Object.keys(unadmitted);
    const insert = db.prepare(`insert into jobs (${columns.map((c) => `"${c}"`).join(', ')}) values (${columns.map((c) => `@${c}`).join(', ')})`);
    insert.run(stale);
    insert.run(unadmitted);
    insert.run(admitted);
    db.close();
    const trail = await AuditTrail.open({ dir: stack.auditDir, key: loadAuditKey(stack.certsDir), checkpointMs: 3_600_000, witnessFile: join(stack.home, 'var', 'audit-witness.jsonl') });
    await trail.record({ actor: submitted.actor, action: 'job.submit', object: `job:${admitted.id}`, decision: 'allow', reason: submitted.reason, details: { ...submitted.details, output: 'scratch/admitted-unsent' } });
    await trail.close();

    await stack.startGateway();
    // The admitted one reaches the engine through the reconciler's resend, which passes over every
    // live row: by then the unadmitted one was either handed over too or never will be. (Unknown to
    // the engine until that resend: its 404 is waited through.)
    const resent = await until(() => engine.status(admitted.id).then((s) => (s.state === 'running' || s.state === 'queued' ? s : undefined), () => undefined), 30_000, `${admitted.id} handed over again`);
    expect(resent.state).toMatch(/running|queued/);
    expect((await stack.api(`/v1/jobs/${admitted.id}`, token)).json()).toMatchObject({ state: expect.stringMatching(/running|queued/) });
    for (const never of [unadmitted, stale]) {
      await expect(engine.status(never.id)).rejects.toThrow(/404/);
      const view = (await stack.api(`/v1/jobs/${never.id}`, token)).json<{ state: string; error: string }>();
      expect(view).toMatchObject({ state: 'failed', error: expect.stringContaining('its admission was never recorded on the audit trail') });
      expect(stack.auditEvents().filter((e) => e.object === `job:${never.id}`)).toEqual([]);
      expect(existsSync(join(stack.dataRoot, never.output))).toBe(false);
    }
    // Its quota is not held: only the model job and the admitted one are.
    const usage = (await stack.api('/v1/quota', token)).json<{ usage: { running_jobs: number } }>().usage;
    expect(usage.running_jobs).toBe(2);
    for (const id of [model, admitted.id]) await stack.api(`/v1/jobs/${id}`, token, { method: 'DELETE' });
  });

  // review36: closed by default. A row the trail cannot vouch for, because retention archived its
  // events from about then (a gateway down longer than the trail keeps events, or a row left behind
  // that long), is not run either: ended with its reason, and its end recorded (it was most likely
  // admitted and answered, and its job.submit is in the archive).
  it('is not run when the trail has archived the time it was made: ended, its end on the trail', async () => {
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const model = await submit('scratch/model-archived');
    await stack.api(`/v1/jobs/${model}`, token, { method: 'DELETE' });
    const { actor } = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${model}`)!;
    await stack.gateway.stop('SIGKILL');
    const db = new Database(join(stack.home, 'var', 'gatehouse.db'));
    const row = db.prepare('select * from jobs where id = ?').get(model) as Record<string, unknown>;
    const made = new Date(Date.now() - 3_600_000).toISOString();
    const jobSpec = { ...(JSON.parse(row.spec as string) as JobSpec), output: 'scratch/archived-era' };
    const old = { ...row, id: `j${randomBytes(6).toString('hex')}`, seq: (db.prepare('select max(seq) from jobs').pluck().get() as number) + 1, output: jobSpec.output, spec: JSON.stringify(jobSpec), spec_hash: jobSpecHash(jobSpec), state: 'dispatching', held: 1, backend_id: null, status: null, created_at: made, admitted_at: made, finished_at: null };
    const columns = Object.keys(old);
    db.prepare(`insert into jobs (${columns.map((c) => `"${c}"`).join(', ')}) values (${columns.map((c) => `@${c}`).join(', ')})`).run(old);
    db.close();
    // Retention runs: everything so far goes to an archive, then one event is recorded after it.
    const trail = await AuditTrail.open({ dir: stack.auditDir, key: loadAuditKey(stack.certsDir), checkpointMs: 3_600_000, witnessFile: join(stack.home, 'var', 'audit-witness.jsonl') });
    expect(await trail.archive(new Date(Date.now() + 1000), join(stack.home, 'archive'), 1_000_000)).not.toBeNull();
    await trail.record({ actor, action: 'job.read', object: `job:${model}`, decision: 'allow', reason: 'after the archive run' });
    await trail.close();

    await stack.startGateway();
    const view = (await stack.api(`/v1/jobs/${old.id}`, token)).json<{ state: string; error: string }>();
    expect(view).toMatchObject({ state: 'failed', error: expect.stringContaining('could not be confirmed on the audit trail') });
    await expect(engine.status(old.id)).rejects.toThrow(/404/);
    expect(stack.auditEvents().filter((e) => e.object === `job:${old.id}`)).toMatchObject([{ action: 'job.finish', decision: 'error', details: { archived: true } }]);
    expect((await stack.api('/v1/quota', token)).json<{ usage: { running_jobs: number } }>().usage.running_jobs).toBe(0);
  });
});
