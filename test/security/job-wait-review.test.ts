// An attacker's review of the held wait on a job (GET /v1/jobs/:id?wait_s=N&seen=TOKEN, src/proxy/job-wait.ts).
// A held request was authenticated when it arrived; it is answered up to 25 s later. A login that
// ended meanwhile (logout, an admin's revocation, a stolen refresh token replayed) must get no answer
// from it: the credential is checked again before the held answer goes out, as the next request's would be.
// The admin's read of another's job is audited before anything is held, which tells the test, without
// timing, that the wait was past its authentication when the login ends.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

/** Runs until the test drops a `go` file in the job's work folder. */
const GATED = "import os, time\ndef process(i, o, ctx):\n    while not os.path.exists(os.path.join(os.getcwd(), 'go')):\n        time.sleep(0.05)\n    open(o, 'w').write(open(i).read())\n";
const WITHIN_MS = 30_000;

interface View {
  id: string;
  state: string;
  seen: string;
  partitions: { total: number };
}

let stack: Stack;
let alice = '';

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 60_000, status_cache_ms: 60_000 }, engine: { slots: 4 } } });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  alice = await stack.login('alice');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

async function gatedJob(): Promise<View> {
  const spec: JobSpec = { name: 'w', input: 'scratch/tiny', output: 'scratch/wait-review', runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 300 }, max_attempts: 1 };
  const created = await stack.api('/v1/jobs', alice, { method: 'POST', body: spec });
  expect(created.status, created.body).toBe(201);
  const { id } = created.json<{ id: string }>();
  return until(async () => {
    const v = (await stack.api(`/v1/jobs/${id}`, alice)).json<View>();
    return v.state === 'running' && v.partitions.total > 0 ? v : undefined;
  }, WITHIN_MS, `job ${id} running`);
}

describe('a held wait whose login ends while it is held', () => {
  it('is answered 401, not with the job', async () => {
    const job = await gatedJob();
    const bob = await stack.login('bob'); // an admin: may read alice's job, and that read is audited
    const readsBefore = stack.auditEvents().filter((e) => e.action === 'job.read' && e.object === `job:${job.id}`).length;
    const held = stack.api(`/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`, bob);
    // Authenticated and authorized: the decision is on the trail before the wait is held.
    await until(() => stack.auditEvents().filter((e) => e.action === 'job.read' && e.object === `job:${job.id}`).length > readsBefore, WITHIN_MS, "bob's read of the job audited");
    const out = await stack.api('/v1/auth/logout', bob, { method: 'POST', body: {} });
    expect(out.status, out.body).toBeLessThan(300);
    expect((await stack.api('/v1/whoami', bob)).status).toBe(401); // as any new request with it is
    // The job changes: the held wait wakes, and must not hand the job to a login that has ended.
    const work = join(stack.dataRoot, '.staging', job.id, 'work');
    await until(() => existsSync(work), WITHIN_MS, 'the work folder');
    writeFileSync(join(work, 'go'), '');
    const answer = await held;
    expect(answer.status, answer.body).toBe(401);
    expect(answer.body).not.toContain(job.id);
    await until(async () => (await stack.api(`/v1/jobs/${job.id}`, alice)).json<View>().state === 'succeeded', WITHIN_MS, 'the job to end');
  });
});
