// Removing and uploading datasets through the gateway (issue 20, points 2 and 3) on the real stack:
// a dataset is its owner's to remove or replace, or an admin's by policy; to whoever may not read
// it either it does not exist (404, as a missing one), one who may read it is told the rule (403);
// a dataset a live job reads cannot be removed (409 with the jobs). Every refusal is recorded as
// dataset.delete / dataset.upload. Links planted under the data root are never followed.
import { existsSync, linkSync, mkdirSync, rmSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

const SLOW = "import time\ndef process(i, o, ctx):\n    time.sleep(60)\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
const tokens: Record<string, string> = {};
const rows = { text: 'id,word\n1,a\n2,b\n', rows: 2 };
const dataset = (name: string, owner: string | null, labels: string[] = []) => writeDataset(stack.dataRoot, name, { format: 'csv', columns: ['id', 'word'], owner, labels, produced_by: 'test', partitions: [rows] });
const del = (user: string, name: string) => stack.api(`/v1/datasets/${name}`, tokens[user], { method: 'DELETE' });
const there = (name: string) => existsSync(join(stack.dataRoot, name, '_dataset.json'));
const events = (action: string, object: string) => stack.auditEvents().filter((e) => e.action === action && e.object === object);

beforeAll(async () => {
  stack = await Stack.start({ users: { erin: ['analysts'] }, config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
  for (const user of ['alice', 'bob', 'dave', 'erin']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('DELETE /v1/datasets/:name', () => {
  it('lets the owner remove their dataset: gone, nothing parked left behind, the decision and the outcome recorded', async () => {
    await dataset('scratch/alice-tmp', 'alice');
    const answer = await del('alice', 'scratch/alice-tmp');
    expect(answer.status, answer.body).toBe(200);
    expect(answer.json()).toMatchObject({ name: 'scratch/alice-tmp', removed: true, owner: 'alice' });
    expect(existsSync(join(stack.dataRoot, 'scratch', 'alice-tmp'))).toBe(false);
    expect(readdirSync(stack.dataRoot).filter((n) => n.startsWith('.removing-'))).toEqual([]);
    const recorded = events('dataset.delete', 'dataset:scratch/alice-tmp');
    expect(recorded.map((e) => [e.decision, e.details.outcome ?? null])).toEqual([
      ['allow', null],
      ['allow', 'removed'],
    ]);
    expect((await stack.api('/v1/datasets/scratch/alice-tmp', tokens.alice)).status).toBe(404);
  });

  it("refuses erin (who may read alice's dataset) with 403 and the deciding rule; dave (who may not read it) gets the 404 of a missing one; both recorded, the dataset kept", async () => {
    await dataset('scratch/alice-keep', 'alice');
    const erin = await del('erin', 'scratch/alice-keep');
    expect(erin.status, erin.body).toBe(403);
    expect(erin.json()).toMatchObject({ error: 'forbidden', message: expect.stringContaining('belongs to alice'), policy_version: expect.any(String) });
    expect(erin.json()).toHaveProperty('rule');
    const dave = await del('dave', 'scratch/alice-keep');
    const missing = await del('dave', 'scratch/never-was');
    expect(dave.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(dave.json()).toEqual({ ...missing.json(), message: missing.json<{ message: string }>().message.replace('never-was', 'alice-keep') });
    expect(there('scratch/alice-keep')).toBe(true);
    const recorded = events('dataset.delete', 'dataset:scratch/alice-keep');
    expect(recorded.map((e) => [e.actor.user, e.decision])).toEqual([
      ['erin', 'deny'],
      ['dave', 'deny'],
    ]);
    expect(events('dataset.delete', 'dataset:scratch/never-was')[0]).toMatchObject({ decision: 'deny', actor: { user: 'dave' } });
  });

  it("lets an admin (bob, admin on dataset:* by policy) remove alice's dataset, and one nobody owns", async () => {
    await dataset('scratch/alice-old', 'alice');
    await dataset('scratch/nobodys', null);
    expect((await del('alice', 'scratch/nobodys')).status).toBe(403);
    for (const name of ['scratch/alice-old', 'scratch/nobodys']) {
      const answer = await del('bob', name);
      expect(answer.status, answer.body).toBe(200);
      expect(there(name)).toBe(false);
    }
    expect(events('dataset.delete', 'dataset:scratch/alice-old').at(-1)).toMatchObject({ decision: 'allow', actor: { user: 'bob' }, details: { outcome: 'removed', owner: 'alice' } });
  });

  it('refuses with 409 and the job while a live job reads the dataset, recorded; removes it once the job ended', async () => {
    await dataset('scratch/alice-in', 'alice');
    const spec: JobSpec = { name: 'slow', input: 'scratch/alice-in', output: 'scratch/alice-slow-out', runtime: 'python', source: SLOW, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };
    const submitted = await stack.api('/v1/jobs', tokens.alice, { method: 'POST', body: spec });
    expect(submitted.status, submitted.body).toBe(201);
    const { id } = submitted.json<{ id: string }>();
    await until(async () => ((await stack.api(`/v1/jobs/${id}`, tokens.alice)).json<{ state: string }>().state === 'running' ? true : undefined), 30_000, 'the job running');
    const busy = await del('alice', 'scratch/alice-in');
    expect(busy.status, busy.body).toBe(409);
    expect(busy.json()).toMatchObject({ error: 'conflict', jobs: [id] });
    expect(there('scratch/alice-in')).toBe(true);
    expect(events('dataset.delete', 'dataset:scratch/alice-in').at(-1)).toMatchObject({ decision: 'deny', details: { jobs: [id] } });
    expect((await stack.api(`/v1/jobs/${id}`, tokens.alice, { method: 'DELETE' })).status).toBe(200);
    await until(async () => ((await stack.api(`/v1/jobs/${id}`, tokens.alice)).json<{ state: string }>().state === 'cancelled' ? true : undefined), 30_000, 'the job cancelled');
    expect((await del('alice', 'scratch/alice-in')).status).toBe(200);
  }, 60_000);

  it('follows no link: a link planted inside a dataset is removed as a link (its target kept); a dataset name that is a link is not removed', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'gatehouse-outside-'));
    writeFileSync(join(outside, 'precious'), 'keep me');
    await dataset('scratch/alice-linked', 'alice');
    symlinkSync(outside, join(stack.dataRoot, 'scratch', 'alice-linked', 'extra'));
    expect((await del('alice', 'scratch/alice-linked')).status).toBe(200);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me');
    // A folder elsewhere dressed as alice's dataset, linked into the root: never a dataset, never removed.
    mkdirSync(join(outside, 'fake'));
    writeFileSync(join(outside, 'fake', '_dataset.json'), JSON.stringify({ format: 'csv', columns: ['id'], partitions: [], owner: 'alice', labels: [], created_at: null, produced_by: null }));
    symlinkSync(join(outside, 'fake'), join(stack.dataRoot, 'scratch', 'alice-fake'));
    expect((await del('alice', 'scratch/alice-fake')).status).toBe(404);
    expect(existsSync(join(outside, 'fake', '_dataset.json'))).toBe(true);
  });
});

describe('reading a dataset a job reads (the engine hard-links job inputs)', () => {
  it('serves it while the job runs (the links the engine made are its own), and still refuses a partition with a link made anywhere else', async () => {
    await dataset('scratch/alice-busy', 'alice');
    const spec: JobSpec = { name: 'slow', input: 'scratch/alice-busy', output: 'scratch/alice-busy-out', runtime: 'python', source: SLOW, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };
    const submitted = await stack.api('/v1/jobs', tokens.alice, { method: 'POST', body: spec });
    expect(submitted.status, submitted.body).toBe(201);
    const { id } = submitted.json<{ id: string }>();
    await until(async () => ((await stack.api(`/v1/jobs/${id}`, tokens.alice)).json<{ state: string }>().state === 'running' ? true : undefined), 30_000, 'the job running');
    const part = join(stack.dataRoot, 'scratch', 'alice-busy', 'part-00000.csv');
    const linked = await until(() => ((readdirSync(join(stack.dataRoot, '.staging', id, 'in')).length > 0 ? true : undefined)), 30_000, 'the input linked');
    expect(linked).toBe(true);
    const meta = await stack.api('/v1/datasets/scratch/alice-busy', tokens.alice);
    expect(meta.status, meta.body).toBe(200);
    const bytes = await stack.api('/v1/datasets/scratch/alice-busy/partitions/0', tokens.alice);
    expect(bytes.status).toBe(200);
    expect(bytes.body).toBe(readFileSync(part, 'utf8'));
    // A second name nobody but the engine's job areas may give: refused again, as before.
    const foreign = join(stack.dataRoot, 'scratch', 'alice-busy-link');
    linkSync(part, foreign);
    expect((await stack.api('/v1/datasets/scratch/alice-busy', tokens.alice)).status).toBe(404);
    rmSync(foreign);
    expect((await stack.api('/v1/datasets/scratch/alice-busy', tokens.alice)).status).toBe(200);
    expect((await stack.api(`/v1/jobs/${id}`, tokens.alice, { method: 'DELETE' })).status).toBe(200);
  }, 60_000);
});
