// Replacing a dataset is its owner's (the manifest's `owner`), or needs `admin` on it by policy:
// erin, an analyst with `write` on the shared scratch/* like alice, cannot overwrite alice's
// scratch dataset (issue 15 found dave doing it when contractors had that write too), an analyst
// cannot overwrite a dataset nobody owns (the demo datasets), an admin can. A refusal is 403
// naming the owner, is audited as a deny, and leaves the dataset as it was. A pending overwrite is
// decided again when it leaves the queue: the dataset may have changed hands while it waited.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const SLOW = "import time\ndef process(i, o, ctx):\n    time.sleep(60)\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
const tokens: Record<string, string> = {};
let names = 0;

const spec = (o: Partial<JobSpec>): JobSpec => ({ name: 'o', input: 'words', output: `scratch/out-${++names}`, runtime: 'python', source: COPY, resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, max_attempts: 1, ...o });
const overwrite = (output: string, o: Partial<JobSpec> = {}) => spec({ output, mode: 'overwrite', ...o });
const submit = (user: string, s: JobSpec) => stack.api('/v1/jobs', tokens[user], { method: 'POST', body: s });
const manifest = (name: string) => JSON.parse(readFileSync(join(stack.dataRoot, name, '_dataset.json'), 'utf8')) as { owner: string | null; produced_by: string; labels: string[] };
const jobsOf = async (user: string) => (await stack.api('/v1/jobs', tokens[user])).json<{ jobs: { id: string }[] }>().jobs;

async function finished(user: string, s: JobSpec): Promise<{ id: string; state: string; error: string | null }> {
  const answer = await submit(user, s);
  expect(answer.status, answer.body).toBe(201);
  const { id } = answer.json<{ id: string }>();
  return until(async () => {
    const v = (await stack.api(`/v1/jobs/${id}`, tokens[user])).json<{ id: string; state: string; error: string | null }>();
    return ['succeeded', 'failed', 'cancelled'].includes(v.state) ? v : undefined;
  }, 60_000, `job ${id} ended`);
}

const rows = { text: 'id,word\n1,a\n2,b\n', rows: 2 };

beforeAll(async () => {
  stack = await Stack.start({
    users: { erin: ['analysts'], frank: ['analysts'] },
    // dropbox/*: analysts may write there but not read (a drop box), so an overwrite refusal must not name the owner.
    policyLines: ['p2, user:frank, max_concurrent_jobs, 1', 'p, role:analysts, dataset:dropbox/*, write, allow'],
    config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 2 } },
  });
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'scratch/cat_totals', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'alice-original', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'scratch/nobodys', { format: 'csv', columns: ['id', 'word'], owner: null, labels: [], produced_by: 'demo', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'dropbox/report-7', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'alice-original', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'scratch/franks', { format: 'csv', columns: ['id', 'word'], owner: 'frank', labels: [], produced_by: 'frank-original', partitions: [rows] });
  for (const user of ['alice', 'bob', 'erin', 'frank']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('overwriting a dataset', () => {
  it("refuses erin's overwrite of alice's dataset (write on scratch/* is not the right to replace what others keep there): 403 naming the owner, a recorded deny, the dataset untouched", async () => {
    const before = manifest('scratch/cat_totals');
    const answer = await submit('erin', overwrite('scratch/cat_totals'));
    expect(answer.status, answer.body).toBe(403);
    const body = answer.json<{ error: string; message: string }>();
    expect(body.error).toBe('forbidden');
    expect(body.message).toContain('scratch/cat_totals belongs to alice');
    expect(body.message).toContain('admin on dataset:scratch/cat_totals');
    const denial = stack.auditEvents().filter((e) => e.object === 'dataset:scratch/cat_totals' && e.actor.user === 'erin');
    expect(denial).toContainEqual(expect.objectContaining({ action: 'dataset.authorize', decision: 'deny', details: expect.objectContaining({ requested: 'overwrite', owner: 'alice' }) }));
    // Nothing ran and nothing was written: the dataset, its owner, erin's jobs and quota.
    expect(manifest('scratch/cat_totals')).toEqual(before);
    expect(await jobsOf('erin')).toEqual([]);
    expect((await stack.api('/v1/quota', tokens.erin)).json<{ usage: { running_jobs: number } }>().usage.running_jobs).toBe(0);
    expect(stack.auditEvents().some((e) => e.action === 'job.submit' && e.actor.user === 'erin')).toBe(false);
  });

  it("does not tell one who may write but not read a dataset whose it is: the refusal and the dry run omit the owner; the trail keeps it", async () => {
    const before = manifest('dropbox/report-7');
    const answer = await submit('erin', overwrite('dropbox/report-7'));
    expect(answer.status, answer.body).toBe(403);
    expect(answer.body).not.toContain('alice');
    expect(answer.json<{ message: string }>().message).toContain("dropbox/report-7 is not the caller's");
    const dry = await stack.api('/v1/jobs/preview', tokens.erin, { method: 'POST', body: overwrite('dropbox/report-7') });
    expect(dry.status, dry.body).toBe(200);
    expect(dry.body).toContain('dropbox/report-7');
    expect(dry.body).not.toMatch(/belongs to|alice/);
    expect(manifest('dropbox/report-7')).toEqual(before);
    const denial = stack.auditEvents().filter((e) => e.object === 'dataset:dropbox/report-7' && e.actor.user === 'erin' && e.action === 'dataset.authorize');
    expect(denial).toContainEqual(expect.objectContaining({ decision: 'deny', details: expect.objectContaining({ requested: 'overwrite', owner: 'alice' }) }));
  });

  it('lets the owner replace her own dataset, and she stays its owner', async () => {
    const job = await finished('alice', overwrite('scratch/cat_totals'));
    expect(job.state, job.error ?? '').toBe('succeeded');
    expect(manifest('scratch/cat_totals')).toMatchObject({ owner: 'alice', produced_by: job.id });
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'dataset.authorize', object: 'dataset:scratch/cat_totals', decision: 'allow', details: expect.objectContaining({ requested: 'overwrite', owner: 'alice', job: job.id }) }));
  });

  it('refuses an analyst the overwrite of a dataset nobody owns, and lets an admin replace it', async () => {
    const refused = await submit('alice', overwrite('scratch/nobodys'));
    expect(refused.status, refused.body).toBe(403);
    expect(refused.json<{ message: string }>().message).toContain('scratch/nobodys has no owner');
    expect(manifest('scratch/nobodys')).toMatchObject({ owner: null, produced_by: 'demo' });
    const job = await finished('bob', overwrite('scratch/nobodys'));
    expect(job.state, job.error ?? '').toBe('succeeded');
    expect(manifest('scratch/nobodys')).toMatchObject({ owner: 'bob', produced_by: job.id });
  });

  it("lets an admin replace someone else's dataset by policy, recorded with the rule", async () => {
    const job = await finished('bob', overwrite('scratch/cat_totals'));
    expect(job.state, job.error ?? '').toBe('succeeded');
    expect(manifest('scratch/cat_totals')).toMatchObject({ owner: 'bob', produced_by: job.id });
    const allowed = stack.auditEvents().find((e) => e.action === 'dataset.authorize' && e.details.job === job.id && e.details.requested === 'overwrite');
    expect(allowed).toMatchObject({ decision: 'allow', details: { owner: 'alice', rule_line: expect.stringMatching(/^policy\.csv:\d+$/) } });
    expect(allowed!.reason).toContain('p, role:admins, dataset:*, admin, allow');
    // And alice, no longer the owner, can no longer replace it.
    expect((await submit('alice', overwrite('scratch/cat_totals'))).status).toBe(403);
  });

  it('decides a pending overwrite again as it leaves the queue: a dataset that changed hands meanwhile is not replaced', async () => {
    const busy = await submit('frank', spec({ source: SLOW }));
    expect(busy.status, busy.body).toBe(201);
    const parked = await submit('frank', overwrite('scratch/franks'));
    expect(parked.status, parked.body).toBe(201);
    const { id, state } = parked.json<{ id: string; state: string }>();
    expect(state).toBe('pending');
    // While it waits, an admin replaces frank's dataset: it is bob's now.
    const taken = await finished('bob', overwrite('scratch/franks'));
    expect(taken.state, taken.error ?? '').toBe('succeeded');
    // frank's running job ends: the pending overwrite leaves the queue and is decided again.
    expect((await stack.api(`/v1/jobs/${busy.json<{ id: string }>().id}`, tokens.frank, { method: 'DELETE' })).status).toBe(200);
    const ended = await until(async () => {
      const v = (await stack.api(`/v1/jobs/${id}`, tokens.frank)).json<{ state: string; error: string | null }>();
      return ['succeeded', 'failed', 'cancelled'].includes(v.state) ? v : undefined;
    }, 60_000, 'the pending overwrite decided');
    expect(ended.state).toBe('failed');
    expect(ended.error).toContain('scratch/franks belongs to bob');
    expect(manifest('scratch/franks')).toMatchObject({ owner: 'bob', produced_by: taken.id });
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'dataset.authorize', object: 'dataset:scratch/franks', decision: 'deny', details: expect.objectContaining({ job: id, leaving_queue: true, requested: 'overwrite' }) }));
  });
});
