// A user's quota is resolved once per policy version and kept with it (PolicySnapshot.perSubject),
// since every admission asks for it. Written as the attacker who would profit from a stale or shared
// answer: IT lowers a quota and the next submission must meet the new one; a caller that changes the
// answer it was handed must not change anyone else's; a name spelling another subject's key (a
// control character, never valid) must not be answered with that subject's limits.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy, type PolicySnapshot } from '../../src/policy/index.js';
import { AdmissionControl, limitsFor, UsageLedger } from '../../src/quota/index.js';
import { TEST_POLICIES } from '../support/gatehouse.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-quota-version-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The test policies with role:analysts' max_cores line set to `cores`: a version of its own. */
async function withAnalystCores(cores: number): Promise<PolicySnapshot> {
  const copy = join(dir, `policies-${cores}`);
  cpSync(TEST_POLICIES, copy, { recursive: true });
  const file = join(copy, 'policy.csv');
  const text = readFileSync(file, 'utf8');
  const line = /^p2, role:analysts, max_cores, \d+$/m;
  expect(text).toMatch(line); // the line this test edits is there
  writeFileSync(file, text.replace(line, `p2, role:analysts, max_cores, ${cores}`));
  return loadPolicy(copy);
}

const alice = { user: 'alice', groups: ['analysts'] };
const fourCores = { cores: 4, memory_mb: 256, time_limit_s: 600 };

describe('a quota kept per policy version', () => {
  it('a reload that lowers a quota refuses the very next submission, and one that lifts it admits again', async () => {
    const generous = await withAnalystCores(8);
    const strict = await withAnalystCores(2);
    let serving = generous;
    const admission = new AdmissionControl(new UsageLedger(), () => serving, 10);

    expect(admission.admit({ job: 'j1', subject: alice, resources: fourCores })).toMatchObject({ outcome: 'admitted', policyVersion: generous.version });
    expect(admission.admit({ job: 'j2', subject: alice, resources: fourCores })).toMatchObject({ outcome: 'admitted' }); // asked twice: kept
    serving = strict; // the reloader swaps the snapshot
    expect(admission.admit({ job: 'j3', subject: alice, resources: fourCores })).toMatchObject({ outcome: 'rejected', limit: 'max_cores', max: 2, policyVersion: strict.version });
    serving = generous;
    expect(limitsFor(serving, alice).limits.max_cores).toBe(8);
  });

  it('the answer one caller is handed cannot be changed to raise the limit of the next', async () => {
    const policy = await withAnalystCores(8);
    const first = limitsFor(policy, alice);
    expect(() => {
      (first.limits as { max_cores: number }).max_cores = 1000;
    }).toThrow(TypeError);
    expect(() => {
      (first.detail.max_cores as { value: number }).value = 1000;
    }).toThrow(TypeError);
    expect(() => (first.detail.max_cores.via as string[]).push('role:admins')).toThrow(TypeError);
    expect(limitsFor(policy, alice).limits.max_cores).toBe(8);
    expect(limitsFor(policy, alice).detail.max_cores).toMatchObject({ value: 8, source: 'role' });
  });

  it('a name with a control character is not answered with the limits of the subject its key would spell', async () => {
    const policy = await withAnalystCores(8);
    expect(limitsFor(policy, alice).limits.max_cores).toBe(8); // alice + analysts now kept
    const forged = { user: 'alice\u0000analysts', groups: [] };
    expect(limitsFor(policy, forged).limits.max_cores).toBe(2); // the default line, not alice's role
    expect(limitsFor(policy, { user: 'alice', groups: ['analysts\u0000admins'] }).limits.max_cores).toBe(2);
    expect(limitsFor(policy, alice).limits.max_cores).toBe(8);
  });

  it('each distinct user and group set is its own answer (another group, another limit)', async () => {
    const policy = await withAnalystCores(8);
    expect(limitsFor(policy, alice).limits.max_cores).toBe(8);
    expect(limitsFor(policy, { user: 'alice', groups: [] }).limits.max_cores).toBe(2);
    expect(limitsFor(policy, { user: 'alice', groups: ['contractors'] }).limits.max_cores).toBe(4);
  });
});
