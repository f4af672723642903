// A job still waiting in the queue is not run once the login that submitted it has ended. The
// attacker holds a stolen login (a copied refresh token) and fills its owner's queue behind a running
// job; the owner's logout, or the gateway catching the stolen refresh token, ends that login. Before,
// the queued jobs still ran later, as the person, and read their data. Real engine, gateway and OIDC
// provider; the quota (max_concurrent_jobs 1) makes a second job wait.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { GATED, releaseGated } from '../support/gated-job.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let stack: Stack;

beforeAll(async () => {
  stack = await Stack.start({ policyLines: ['p2, user:alice, max_concurrent_jobs, 1'] });
  await writeDataset(stack.dataRoot, 'scratch/ledger', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const spec = (output: string, source: string): JobSpec => ({ name: 'q', input: 'scratch/ledger', output, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 });

type JobView = { id: string; state: string; error?: string | null; reason?: string | null };

async function submit(token: string, output: string, source: string): Promise<JobView> {
  const res = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(output, source) });
  expect(res.status, res.body).toBe(201);
  return res.json<JobView>();
}

async function view(id: string): Promise<JobView> {
  const admin = await stack.login('bob'); // an admin of the development provider sees every job
  return (await stack.api(`/v1/jobs/${id}`, admin)).json<JobView>();
}

const ENDED = ['succeeded', 'failed', 'cancelled'];
const ended = (id: string): Promise<JobView> => until(async () => ((s) => (ENDED.includes(s.state) ? s : undefined))(await view(id)), 60_000, `job ${id} ended`);
const eventsOf = (id: string) => stack.auditEvents().filter((e) => e.object === `job:${id}`);
/** The login (token family) an access token belongs to. */
const sidOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid;
const logout = async (token: string) => {
  const res = await stack.api('/v1/auth/logout', token, { method: 'POST', body: {} });
  expect(res.status, res.body).toBe(200);
};

describe('a queued job whose login has ended is not run', () => {
  it('refuses the jobs a logged-out login left in the queue, as the queue moves, and runs the same person’s other login’s', async () => {
    const stolen = await stack.login('alice');
    const own = await stack.login('alice'); // her second login, on another machine
    const running = await submit(own, 'scratch/login-first', GATED);
    const planted = await submit(stolen, 'scratch/login-planted', COPY);
    const hers = await submit(own, 'scratch/login-hers', COPY);
    expect([planted.state, hers.state]).toEqual(['pending', 'pending']);

    await logout(stolen); // the login the attacker holds ends
    await releaseGated(stack.dataRoot, running.id);

    const refused = await ended(planted.id);
    expect(refused.state).toBe('failed');
    expect(refused.error).toContain('the login that submitted it ended');
    expect(refused.error).toContain('logout');
    // On record as a refusal, and never handed to the engine: no start, no read of the data.
    expect(eventsOf(planted.id).find((e) => e.action === 'job.admit')).toMatchObject({ decision: 'deny', reason: 'login_ended', details: { login: 'logout' } });
    expect(eventsOf(planted.id).some((e) => e.action === 'job.start')).toBe(false);
    expect(stack.auditEvents().some((e) => e.action === 'dataset.read' && e.details?.job === planted.id)).toBe(false);
    expect(eventsOf(planted.id).filter((e) => e.action === 'job.finish')).toHaveLength(1);

    // The same person's job from a login that still stands leaves the queue and runs.
    expect((await ended(hers.id)).state).toBe('succeeded');
  }, 120_000);

  it('refuses a queued job whose login another gateway revoked in the shared store (a stolen refresh token seen there)', async () => {
    const token = await stack.login('alice');
    const running = await submit(token, 'scratch/revoked-first', GATED);
    const queued = await submit(token, 'scratch/revoked-queued', COPY);
    expect(queued.state).toBe('pending');
    // Another gateway over the same store wrote the revocation: this one learns it from the store only.
    const store = await stack.store();
    await store.db.updateTable('token_families').set({ revoked_at: new Date().toISOString(), revoke_reason: 'refresh token reused' }).where('id', '=', sidOf(token)).execute();

    await releaseGated(stack.dataRoot, running.id);
    const refused = await ended(queued.id);
    expect(refused.state).toBe('failed');
    expect(refused.error).toContain('refresh token reused');
    expect(eventsOf(queued.id).some((e) => e.action === 'job.start')).toBe(false);
  }, 120_000);

  it('does not hand over a job admitted from the queue but never sent, after a restart, once its login has ended', async () => {
    const own = await stack.login('alice');
    const stolen = await stack.login('alice');
    const running = await submit(own, 'scratch/resend-first', GATED);
    const queued = await submit(stolen, 'scratch/resend-queued', COPY);
    expect(queued.state).toBe('pending');
    // The gateway stops the moment it had admitted the job from the queue (its record says so) and
    // before the engine heard of it; the login it was submitted under ends while it is down.
    await stack.gateway.stop('SIGKILL');
    const store = await stack.store();
    await store.db.updateTable('jobs').set({ state: 'dispatching', held: 1, admitted_at: new Date().toISOString() }).where('id', '=', queued.id).execute();
    await store.db.updateTable('token_families').set({ revoked_at: new Date().toISOString(), revoke_reason: 'logout' }).where('id', '=', sidOf(stolen)).execute();
    await stack.startGateway();

    const refused = await ended(queued.id);
    expect(refused.state).toBe('failed');
    expect(refused.error).toContain('the login that submitted it ended');
    expect(eventsOf(queued.id).find((e) => e.action === 'job.admit')).toMatchObject({ decision: 'deny', reason: 'login_ended' });
    expect(eventsOf(queued.id).some((e) => e.action === 'job.start')).toBe(false);
    await releaseGated(stack.dataRoot, running.id);
    expect((await ended(running.id)).state).toBe('succeeded');
  }, 120_000);
});
