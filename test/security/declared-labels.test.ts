// A label a job declares for its output (`labels` in the spec) is carried to the output, so a deny
// on it holds; but it must never open the output. Were an allow rule on a label
// (`p, role:contractors, label:shared, write, allow`) to count for a label the caller picked, a
// contractor could write any dataset by declaring `shared`. Decided here by the job path's own
// dataset decisions (src/proxy/job-datasets.ts) on a real policy loaded from files.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision } from '../../src/identity/index.js';
import { loadPolicy, type PolicySnapshot, policyAuthorizer } from '../../src/policy/index.js';
import { JobDatasets, policyLabelsOf } from '../../src/proxy/job-datasets.js';
import type { DatasetInfo, JobSpec } from '../../src/wire/index.js';
import { TEST_POLICIES } from '../support/gatehouse.js';
import { testDataset } from '../support/test-backend.js';

let home: string;
let policy: PolicySnapshot;
const recorded: { object: string; requested: string; decision: Decision; details: Record<string, unknown> }[] = [];

const catalog = new Map<string, DatasetInfo>([
  ['words', testDataset('words')],
  ['shared-notes', testDataset('shared-notes', ['shared'])],
]);

function datasets(): JobDatasets {
  return new JobDatasets({
    authorizer: policyAuthorizer(() => policy),
    policyLabels: policyLabelsOf(() => policy),
    catalog: () => async (name) => catalog.get(name),
    record: async (_asker, object, requested, decision, details) => {
      recorded.push({ object, requested, decision, details });
    },
  });
}

const carla = { identity: { user: 'carla', groups: ['contractors'], auth_method: 'oidc' }, origin: null };
const job = (o: Partial<JobSpec>): JobSpec => ({ name: 'copy', input: 'words', output: 'scratch-carla/out', runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, ...o });
const submit = (spec: JobSpec) => datasets().forSubmit(carla, { id: 'j1', spec, backend: 'main' });

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-declared-labels-'));
  cpSync(TEST_POLICIES, home, { recursive: true });
  // IT's intent: contractors may write datasets that are shared (labelled so by their data).
  writeFileSync(join(home, 'policy.csv'), `${readFileSync(join(home, 'policy.csv'), 'utf8')}\np, role:contractors, label:shared, write, allow\np, role:contractors, dataset:shared-notes, read, allow\n`);
  policy = await loadPolicy(home);
});

afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('labels a job declares for its output', () => {
  it('cannot grant write: declaring the label an allow rule names does not open a dataset outside her namespace', async () => {
    recorded.length = 0;
    await expect(submit(job({ output: 'finance', labels: ['shared'] }))).rejects.toMatchObject({ status: 403, message: expect.stringMatching(/no rule grants write on dataset:finance .*a label the job declares, shared, cannot grant write/) });
    expect(recorded.at(-1)).toMatchObject({ object: 'dataset:finance', requested: 'write', decision: { allowed: false }, details: { declared_labels: ['shared'] } });
  });

  it('still grant nothing less: the same output is allowed when its input already carries the label (inherited, not declared)', async () => {
    const allowed = await submit(job({ input: 'shared-notes', output: 'finance', labels: ['shared'] }));
    expect(allowed.spec.labels).toEqual(['shared']);
    expect(recorded.at(-1)).toMatchObject({ object: 'dataset:finance', requested: 'write', decision: { allowed: true } });
    expect(recorded.at(-1)?.details).not.toHaveProperty('declared_labels');
  });

  it('can close the output: a deny on a declared label holds (pii on her own scratch dataset)', async () => {
    await expect(submit(job({ labels: ['pii'] }))).rejects.toMatchObject({ status: 403, message: expect.stringMatching(/denied by policy\.csv:\d+: p, role:contractors, label:pii, write, deny/) });
  });

  it('are carried when harmless: a label of her own choosing on her own namespace is allowed and kept', async () => {
    const allowed = await submit(job({ labels: ['draft'] }));
    expect(allowed.spec.labels).toEqual(['draft']);
  });
});
