// A gateway that stops between a durable job.submit and its record's write (a power loss: the record's
// commit was not yet on disk) leaves an admitted job the trail would never mention again. At its next
// start the gateway finds such submissions on its trail and ends each on it: the job the engine never
// received as lost, the one the engine ran to its end with that end. A job that still has its record is
// left alone. Made for real: a gateway killed, the record taken out of its SQLite file as the power loss
// would have, and a job.submit written by the trail's own writer as the stopped gateway had written it.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { EngineClient } from './support/engine.js';
import { GATED, releaseGated } from './support/gated-job.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

let stack: Stack;
let token: string;
const onSqlite = (process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite';

beforeAll(async () => {
  if (!onSqlite) return;
  stack = await Stack.start({ users: {} });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  token = await stack.login('alice');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const spec = (output: string): JobSpec => ({ name: 't', input: 'scratch/tiny', output, runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 });

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
