// What a job holds is what the engine may really use: `memory_mb` is per worker and a job runs up
// to `cores` workers, so it holds cores × memory_mb against max_memory_mb (admission, the ledger,
// GET /v1/quota, `gatehouse quota`). A job asking for more cores than its backend can ever run at
// once (a 3-core job on a 2-slot engine) is refused at submit instead of holding quota it cannot use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderQuota, type Quota } from '../../src/cli/quota-command.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { UsageLedger } from '../../src/quota/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

const SLOW = "import time\ndef process(i, o, ctx):\n    time.sleep(60)\n    open(o, 'w').write(open(i).read())\n";
const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
const tokens: Record<string, string> = {};
let names = 0;

const spec = (cores: number, memory_mb: number, source = SLOW): JobSpec => ({ name: 'q', input: 'scratch/tiny', output: `scratch/q-${++names}`, runtime: 'python', source, resources: { cores, memory_mb, time_limit_s: 120 }, max_attempts: 1 });
const submit = (user: string, s: JobSpec) => stack.api('/v1/jobs', tokens[user], { method: 'POST', body: s });
const quota = async (user: string) => (await stack.api('/v1/quota', tokens[user])).json<Quota & { pending: { id: string; reason: string; memory_mb_total: number }[] }>();
const cancel = (user: string, id: string) => stack.api(`/v1/jobs/${id}`, tokens[user], { method: 'DELETE' });

async function created(user: string, s: JobSpec): Promise<{ id: string; state: string; reason: string | null }> {
  const answer = await submit(user, s);
  expect(answer.status, answer.body).toBe(201);
  return answer.json();
}

beforeAll(async () => {
  stack = await Stack.start({
    users: { erin: ['analysts'] },
    policyLines: ['p2, user:erin, max_memory_mb, 1024'],
    config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 2 } },
  });
  const part = (p: number) => ({ text: `id,word\n${p * 2 + 1},a\n${p * 2 + 2},b\n`, rows: 2 });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [part(0), part(1)] });
  for (const user of ['alice', 'erin']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('the ledger', () => {
  it('holds memory per worker times workers', () => {
    const ledger = new UsageLedger(() => 0);
    ledger.hold('a', 'alice', { cores: 4, memory_mb: 256 });
    ledger.hold('b', 'alice', { cores: 4, memory_mb: 256 });
    expect(ledger.usage('alice')).toMatchObject({ running_jobs: 2, cores: 8, memory_mb: 2048 });
  });
});

describe('memory through the gateway', () => {
  it('counts two 2-core jobs at 256 MB a worker as 1024 MB, in GET /v1/quota and in `gatehouse quota`', async () => {
    const a = await created('alice', spec(2, 256));
    const b = await created('alice', spec(2, 256));
    const q = await quota('alice');
    expect(q.usage).toMatchObject({ running_jobs: 2, cores: 4, memory_mb: 1024 });
    const shown = renderQuota(q, Date.now());
    expect(shown).toMatch(/memory \(MB\)\s+1024\s+16384/);
    for (const j of [a, b]) expect((await cancel('alice', j.id)).status).toBe(200);
    expect((await quota('alice')).usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
  });

  it('refuses a job whose workers together need more than max_memory_mb, and holds nothing', async () => {
    const answer = await submit('erin', spec(2, 768));
    expect(answer.status, answer.body).toBe(403);
    expect(answer.json()).toMatchObject({ error: 'quota_exceeded', limit: 'max_memory_mb', used: 0, requested: 1536, max: 1024 });
    expect(answer.json<{ message: string }>().message).toContain('2 workers × 768 MB = 1536 MB');
    expect((await quota('erin')).usage).toMatchObject({ running_jobs: 0, memory_mb: 0 });
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'quota.reject', decision: 'deny', details: expect.objectContaining({ limit: 'max_memory_mb', requested: 1536, max: 1024 }) }));
  });

  it('parks a job until the memory its workers need is free, and shows what it will hold', async () => {
    const big = await created('erin', spec(2, 512));
    expect(big.state).toBe('queued');
    const small = await created('erin', spec(1, 256, COPY));
    expect(small).toMatchObject({ state: 'pending', reason: 'quota: memory MB 1024/1024 in use' });
    const q = await quota('erin');
    expect(q.usage).toMatchObject({ running_jobs: 1, cores: 2, memory_mb: 1024 });
    expect(q.pending).toEqual([expect.objectContaining({ id: small.id, memory_mb_total: 256 })]);
    expect(renderQuota(q, Date.now())).toContain('1 core × 256 MB');
    expect((await cancel('erin', big.id)).status).toBe(200);
    await until(async () => {
      const v = (await stack.api(`/v1/jobs/${small.id}`, tokens.erin)).json<{ state: string }>();
      return v.state === 'succeeded' ? v : undefined;
    }, 60_000, 'the parked job admitted and done');
    expect((await quota('erin')).usage).toMatchObject({ running_jobs: 0, memory_mb: 0 });
  });
});

describe('what the backend can run', () => {
  it('refuses more cores than the engine has slots: 400 naming the field, nothing held, recorded', async () => {
    const answer = await submit('alice', spec(3, 256));
    expect(answer.status, answer.body).toBe(400);
    const body = answer.json<{ error: string; field: string; message: string; max: number; requested: number }>();
    expect(body).toMatchObject({ error: 'invalid_request', field: 'body.resources.cores', requested: 3, max: 2 });
    expect(body.message).toContain('runs at most 2 workers at once');
    expect((await quota('alice')).usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
    expect((await stack.api('/v1/jobs?state=queued', tokens.alice)).json<{ jobs: unknown[] }>().jobs).toEqual([]);
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'quota.reject', decision: 'deny', details: expect.objectContaining({ limit: 'backend_slots', requested: 3, max: 2 }) }));
    // As many cores as the engine has are fine.
    const fits = await created('alice', spec(2, 256, COPY));
    expect(fits.state).toBe('queued');
  });
});
