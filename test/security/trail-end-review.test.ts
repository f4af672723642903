// review38, as the attacker who wants a job's end kept off the trail (review37's known L). A job's
// end is written into its record first (what makes an end happen once across gateways) and its
// job.finish follows; while the trail is down that event waits in the outbox, in memory. A gateway
// stopped between the two (a crash, or any stop while the trail was down) left an ended record whose
// end the trail never told: start-up's unended check skips every submission that has a record.
// Made for real: the trail refuses writes (a trigger on its own SQLite file), the job ends on the
// engine, the gateway ends its record and is killed with job.finish still in its outbox; the trail
// is repaired and the gateway started again.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { GATED, releaseGated } from '../support/gated-job.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await Stack.start();
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  token = await stack.login('alice');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const spec: JobSpec = { name: 't', input: 'scratch/tiny', output: 'scratch/ended-unheard', runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };

describe('a job whose record ended while its job.finish had not reached the trail', () => {
  it('gets its end on the trail at the next start, once, marked recovered', async () => {
    const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec });
    expect(answer.status, answer.body).toBe(201);
    const id = answer.json<{ id: string }>().id;
    const ofJob = (action: string) => stack.auditEvents().filter((e) => (e.object === `job:${id}` || e.details.job === id) && e.action === action);
    await until(() => ofJob('job.start').length > 0, 60_000, `job ${id}'s start on the trail`);

    const trail = new Database(join(stack.auditDir, 'audit.db'));
    trail.pragma('busy_timeout = 5000');
    trail.exec("create trigger review38_refuse before insert on audit_events begin select raise(abort, 'the disk is full'); end");
    const store = await stack.store();
    const row = () => store.db.selectFrom('jobs').select(['state', 'end_owed']).where('id', '=', id).executeTakeFirstOrThrow();
    try {
      await releaseGated(stack.dataRoot, id);
      // The engine's end reaches the gateway, which ends the record; its job.finish is refused by the trail.
      await until(async () => (await row()).state === 'succeeded', 60_000, `job ${id}'s record ended`);
      await until(() => stack.gateway.output().includes('audit event not recorded yet; kept to retry'), 30_000, 'the end kept in the outbox');
      await stack.gateway.stop('SIGKILL');
    } finally {
      trail.exec('drop trigger review38_refuse');
      trail.close();
    }
    expect(ofJob('job.finish')).toHaveLength(0);
    expect((await row()).end_owed).not.toBeNull();

    await stack.startGateway();
    const finish = ofJob('job.finish');
    expect(finish).toHaveLength(1);
    expect(finish[0]).toMatchObject({ decision: 'allow', actor: { user: 'alice' }, details: { state: 'succeeded', recovered: true, output: 'scratch/ended-unheard' } });
    expect(ofJob('dataset.write')).toHaveLength(1);
    expect(ofJob('job.start')).toHaveLength(1);
    expect((await row()).end_owed).toBeNull();
    expect(stack.gateway.output()).toContain('its end not on the trail: recorded now');

    // Nothing twice: another start finds nothing owed.
    await stack.gateway.stop('SIGKILL');
    await stack.startGateway();
    expect(ofJob('job.finish')).toHaveLength(1);
    expect(ofJob('dataset.write')).toHaveLength(1);
  });

  it('clears an end whose events reached the trail, so a later start asks the trail nothing of it', async () => {
    const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: { ...spec, output: 'scratch/ended-heard' } });
    expect(answer.status, answer.body).toBe(201);
    const id = answer.json<{ id: string }>().id;
    await releaseGated(stack.dataRoot, id);
    await until(() => stack.auditEvents().some((e) => e.object === `job:${id}` && e.action === 'job.finish'), 60_000, `job ${id}'s end on the trail`);
    const store = await stack.store();
    // Cleared in a batch shortly after, or at a clean stop.
    await stack.gateway.stop();
    expect((await store.db.selectFrom('jobs').select(['state', 'end_owed']).where('id', '=', id).executeTakeFirstOrThrow())).toEqual({ state: 'succeeded', end_owed: null });
    await stack.startGateway();
    expect(stack.auditEvents().filter((e) => e.object === `job:${id}` && e.action === 'job.finish')).toHaveLength(1);
  });
});
