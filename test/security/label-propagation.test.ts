// Every label of a job's input goes onto its output: the manifest's, those the policy gives it
// (`g2, dataset:customers, label:pii`, with no label in the manifest), those the spec adds, and
// those of a dataset the output replaces. Through a chain customers → scratch/a → scratch/b the
// last one still carries pii, and a contractor (who may read scratch/* but never pii) is refused it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
const tokens: Record<string, string> = {};

const spec = (input: string, output: string, o: Partial<JobSpec> = {}): JobSpec => ({ name: 'l', input, output, runtime: 'python', source: COPY, resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, max_attempts: 1, ...o });
const submit = (user: string, s: JobSpec) => stack.api('/v1/jobs', tokens[user], { method: 'POST', body: s });
const labelsOf = (name: string) => (JSON.parse(readFileSync(join(stack.dataRoot, name, '_dataset.json'), 'utf8')) as { labels: string[] }).labels;

async function succeeded(user: string, s: JobSpec): Promise<string> {
  const answer = await submit(user, s);
  expect(answer.status, answer.body).toBe(201);
  const { id } = answer.json<{ id: string }>();
  const done = await until(async () => {
    const v = (await stack.api(`/v1/jobs/${id}`, tokens[user])).json<{ state: string; error: string | null }>();
    return ['succeeded', 'failed', 'cancelled'].includes(v.state) ? v : undefined;
  }, 60_000, `job ${id} ended`);
  expect(done.state, done.error ?? '').toBe('succeeded');
  return id;
}

const rows = { text: 'id,word\n1,a\n2,b\n', rows: 2 };

beforeAll(async () => {
  stack = await Stack.start({
    policyLines: [
      // Contractors may read the scratch space: only labels keep them out of what is in it.
      'p, role:contractors, dataset:scratch/*, read, allow',
      'p, role:analysts, dataset:hr, read, allow',
      'g2, dataset:hr, label:personnel',
      'p, role:contractors, label:personnel, read, deny',
    ],
    config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 2 } },
  });
  // customers is pii by the shipped policy's g2 line only: its manifest has no label.
  await writeDataset(stack.dataRoot, 'customers', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'hr', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: ['internal'], produced_by: 'test', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'scratch/plain', { format: 'csv', columns: ['id', 'word'], owner: 'dave', labels: [], produced_by: 'test', partitions: [rows] });
  for (const user of ['alice', 'dave']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('labels through chains of jobs', () => {
  it('carries a label set only by a g2 line through customers → scratch/a → scratch/b, and keeps a contractor out of b', async () => {
    // The control: dave may read what the scratch space holds when nothing labels it.
    expect((await submit('dave', spec('scratch/plain', 'scratch-dave/out-1'))).status).toBe(201);

    await succeeded('alice', spec('customers', 'scratch/a'));
    expect(labelsOf('scratch/a')).toEqual(['pii']);
    await succeeded('alice', spec('scratch/a', 'scratch/b'));
    expect(labelsOf('scratch/b')).toEqual(['pii']);

    const refused = await submit('dave', spec('scratch/b', 'scratch-dave/out-2'));
    expect(refused.status, refused.body).toBe(403);
    expect(refused.json()).toMatchObject({ error: 'forbidden', rule: 'p, role:contractors, label:pii, read, deny' });
    // Nor is it listed to him as readable.
    const listed = (await stack.api('/v1/datasets', tokens.dave)).json<{ datasets: { name: string; actions: string[] }[] }>().datasets;
    expect(listed.find((d) => d.name === 'scratch/b')?.actions ?? []).not.toContain('read');
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ object: 'dataset:scratch/b', decision: 'deny', actor: expect.objectContaining({ user: 'dave' }) }));
  });

  it("puts the manifest's, the policy's and the spec's labels on the output together", async () => {
    await succeeded('alice', spec('hr', 'scratch/c', { labels: ['derived'] }));
    expect(labelsOf('scratch/c')).toEqual(['derived', 'internal', 'personnel']);
    const refused = await submit('dave', spec('scratch/c', 'scratch-dave/out-3'));
    expect(refused.status).toBe(403);
    expect(refused.json()).toMatchObject({ rule: 'p, role:contractors, label:personnel, read, deny' });
  });

  it('keeps the labels of a dataset an overwrite replaces', async () => {
    await succeeded('alice', spec('words', 'scratch/b', { mode: 'overwrite' }));
    expect(labelsOf('scratch/b')).toEqual(['pii']);
    expect((await submit('dave', spec('scratch/b', 'scratch-dave/out-4'))).status).toBe(403);
  });
});
