// An attacker's review of the held wait on a job (GET /v1/jobs/:id?wait_s=N&seen=TOKEN, src/proxy/job-wait.ts).
// A held request was authenticated when it arrived; it is answered up to 25 s later. A login that
// ended meanwhile (logout, an admin's revocation, a stolen refresh token replayed) must get no answer
// from it: the credential is checked again before the held answer goes out, as the next request's would be.
// The admin's read of another's job is audited before anything is held, which tells the test, without
// timing, that the wait was past its authentication when the login ends.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveLogin } from '../../src/cli/client/credentials.js';
import { watchJob } from '../../src/cli/job-watch.js';
import { EXIT } from '../../src/cli/progress.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';
import { GATED, releaseGated } from '../support/gated-job.js';

const WITHIN_MS = 30_000;

interface View {
  id: string;
  state: string;
  seen: string;
  partitions: { total: number };
}

let stack: Stack;
let alice = '';
let outputs = 0;

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 60_000, status_cache_ms: 60_000 }, engine: { slots: 4 } } });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  alice = await stack.login('alice');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

async function gatedJob(): Promise<View> {
  outputs += 1;
  const spec: JobSpec = { name: 'w', input: 'scratch/tiny', output: `scratch/wait-review-${outputs}`, runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 300 }, max_attempts: 1 };
  const created = await stack.api('/v1/jobs', alice, { method: 'POST', body: spec });
  expect(created.status, created.body).toBe(201);
  const { id } = created.json<{ id: string }>();
  return until(async () => {
    const v = (await stack.api(`/v1/jobs/${id}`, alice)).json<View>();
    return v.state === 'running' && v.partitions.total > 0 ? v : undefined;
  }, WITHIN_MS, `job ${id} running`);
}

const release = (id: string) => releaseGated(stack.dataRoot, id);

/** A request held open by the gateway, answered (status) when it ends; never read by the test otherwise. */
function holdOpen(path: string, token: string): { status: Promise<number> } {
  return {
    status: new Promise((resolve) => {
      const req = request(`${stack.url}${path}`, { ca: stack.ca, agent: false, headers: { authorization: `Bearer ${token}` }, timeout: 60_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end();
    }),
  };
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

describe("`submit --wait` when the person's held waits are all taken", () => {
  // Sixteen held waits per person (1024 per gateway): a seventeenth watch (a shell loop of submit --wait,
  // a notebook following many jobs, or other people filling the gateway's) must still follow its job,
  // by plain looks, not die on the 429.
  it('still follows the job to its end', async () => {
    const job = await gatedJob();
    const path = `/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`;
    const sixteen = Array.from({ length: 16 }, () => holdOpen(path, alice));
    await until(async () => (await stack.api(`/v1/jobs/${job.id}?wait_s=1&seen=${job.seen}`, alice)).status === 429, WITHIN_MS, 'all sixteen waits held');
    process.env.XDG_CONFIG_HOME = mkdtempSync(join(tmpdir(), 'gatehouse-wait-review-cli-'));
    const target = { url: stack.url, ca: stack.ca, caFile: undefined };
    saveLogin(target, { user: 'alice', auth_method: 'oidc', access_token: alice, refresh_token: 'unused', expires_at: new Date(Date.now() + 3600_000).toISOString() });
    const watched = watchJob(target, job.id, { json: true, tty: false, intervalMs: 100 });
    watched.catch(() => undefined); // awaited below
    // Its first look (no seen yet) is answered at once; its held looks after it are refused while the
    // sixteen are held (until the job changes, well under their 25 s). Released once one was refused.
    const refusedHeld = () => stack.gateway.output().split('\n').filter((l) => l.includes('"msg":"request"') && l.includes(`"url":"/v1/jobs/${job.id}?wait_s=25&seen=`) && l.includes('"status":429')).length;
    await until(() => refusedHeld() > 0, WITHIN_MS, "a held look of the watch's refused");
    await release(job.id);
    expect(await watched).toBe(EXIT.succeeded);
    for (const w of sixteen) expect(await w.status).toBe(200);
  });
});
