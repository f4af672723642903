// The API under the console's auditor and IT admin pages (issue 19, points 5 and 6), on a real
// stack (gateway, engine, development IdP): one event with its chain position, a job's lineage
// with each deciding rule's text as the version that decided had it (also after a reload changed
// the file), the access diff of the last reload, everyone's usage and the slots, and certificate
// lists scoped to their owner. Each for the person policy allows, refused to alice and dave, and
// each look at others' things on the record.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

let stack: Stack;
const tokens: Record<string, string> = {};
let jobId = '';
const RULE = 'p, role:analysts, dataset:scratch/*, read, allow';
let ruleLine = 0;

const policyFile = () => join(stack.policies, 'policy.csv');

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n2,b\n', rows: 2 }] });
  for (const user of ['alice', 'bob', 'carol', 'dave']) tokens[user] = await stack.login(user);
  const submitted = await stack.api('/v1/jobs', tokens.alice, {
    method: 'POST',
    body: { name: 'lineage', input: 'scratch/tiny', output: 'scratch/lineage-out', runtime: 'python', source: "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n", resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } },
  });
  expect(submitted.status, submitted.body).toBe(201);
  jobId = submitted.json<{ id: string }>().id;
  await until(async () => ((await stack.api(`/v1/jobs/${jobId}`, tokens.alice)).json<{ state: string }>().state === 'succeeded' ? true : undefined), 60_000, 'the job to succeed');
  ruleLine = readFileSync(policyFile(), 'utf8').split('\n').indexOf(RULE) + 1;
  expect(ruleLine).toBeGreaterThan(0);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

describe('one audit event with its chain position', () => {
  it('shows the auditor an event, its hashes, its chain and the checkpoint that covers it once one is signed', async () => {
    const submit = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${jobId}`)!;
    const answer = await stack.api(`/v1/audit/events/${submit.id}`, tokens.carol);
    expect(answer.status, answer.body).toBe(200);
    const body = answer.json<{ event: { id: number; hash: string; prev_hash: string; action: string }; chain: { chain_id: string; sequence: number; hash: string; prev_hash: string; checkpoint: { event_id: number } | null } }>();
    expect(body.event).toMatchObject({ id: submit.id, action: 'job.submit', hash: submit.hash, prev_hash: submit.prev_hash });
    expect(body.chain).toMatchObject({ sequence: submit.id, hash: submit.hash, prev_hash: submit.prev_hash });
    expect(body.chain.chain_id).toMatch(/^[0-9a-f]{32}$/);
    if (body.chain.checkpoint !== null) expect(body.chain.checkpoint.event_id).toBeGreaterThanOrEqual(submit.id);
    expect((await stack.api('/v1/audit/events/999999999', tokens.carol)).status).toBe(404);
    expect((await stack.api('/v1/audit/events/abc', tokens.carol)).status).toBe(400);
  });

  it('refuses alice, dave and the admin with the rule (403), and records each ask', async () => {
    for (const user of ['alice', 'dave', 'bob']) {
      const refused = await stack.api('/v1/audit/events/1', tokens[user]);
      expect(refused.status, user).toBe(403);
      expect(refused.json()).toMatchObject({ error: 'forbidden' });
    }
    const asks = stack.auditEvents().filter((e) => e.action === 'audit.query' && e.details.kind === 'event');
    expect(asks).toContainEqual(expect.objectContaining({ decision: 'deny', actor: expect.objectContaining({ user: 'alice' }) }));
    expect(asks).toContainEqual(expect.objectContaining({ decision: 'allow', actor: expect.objectContaining({ user: 'carol' }) }));
  });
});

describe("a job's lineage", () => {
  it('shows inputs → job → output, who, when, each decision\'s version and its rule as that version had it, also after a reload moved and changed the file', async () => {
    const before = (await stack.api(`/v1/audit/lineage/${jobId}`, tokens.carol)).json<{ policy_versions: { version: string }[] }>();
    const oldVersion = before.policy_versions[0]!.version;
    // A reload that grants contractors scratch/* above the analysts' rule: its line now holds another text.
    const text = readFileSync(policyFile(), 'utf8');
    writeFileSync(policyFile(), text.replace('# --- Datasets ---\n', '# --- Datasets ---\np, role:contractors, dataset:scratch/*, read, allow\n'));
    const reloaded = await stack.api('/v1/policy/reload', tokens.bob, { method: 'POST', body: {} });
    expect(reloaded.status, reloaded.body).toBe(200);
    await until(async () => ((await stack.api('/v1/policy', tokens.bob)).json<{ version: string }>().version !== oldVersion ? true : undefined), 20_000, 'the new version to serve');
    expect(readFileSync(policyFile(), 'utf8').split('\n')[ruleLine - 1]).not.toBe(RULE);

    const answer = await stack.api(`/v1/audit/lineage/${jobId}`, tokens.carol);
    expect(answer.status, answer.body).toBe(200);
    const lineage = answer.json<{
      job: { id: string; owner: string; state: string; submitted_at: string; finished_at: string };
      inputs: { dataset: string }[];
      output: { dataset: string };
      policy_versions: { version: string; stored: boolean }[];
      steps: { action: string; object: string; user: string; requested: string | null; policy_version: string; rule_line: string | null; rule_text: string | null; decision: string }[];
    }>();
    expect(lineage.job).toMatchObject({ id: jobId, owner: 'alice', state: 'succeeded' });
    expect(Date.parse(lineage.job.finished_at)).toBeGreaterThanOrEqual(Date.parse(lineage.job.submitted_at));
    expect(lineage.inputs.map((i) => i.dataset)).toEqual(['scratch/tiny']);
    expect(lineage.output.dataset).toBe('scratch/lineage-out');
    expect(lineage.policy_versions).toEqual([expect.objectContaining({ version: oldVersion, stored: true })]);
    const read = lineage.steps.find((s) => s.action === 'dataset.authorize' && s.requested === 'read')!;
    expect(read).toMatchObject({ object: 'dataset:scratch/tiny', user: 'alice', decision: 'allow', policy_version: oldVersion, rule_line: `policy.csv:${ruleLine}`, rule_text: RULE });
    expect(lineage.steps.map((s) => s.action)).toEqual(expect.arrayContaining(['dataset.authorize', 'job.submit', 'job.start', 'dataset.read', 'job.finish', 'dataset.write']));
  });

  it('is 404 for a job the trail does not know, refused to alice (even for her own job) and dave, and recorded', async () => {
    expect((await stack.api('/v1/audit/lineage/no-such-job', tokens.carol)).status).toBe(404);
    for (const user of ['alice', 'dave']) expect((await stack.api(`/v1/audit/lineage/${jobId}`, tokens[user])).status, user).toBe(403);
    expect((await stack.api('/v1/audit/lineage/..%2Fx', tokens.carol)).status).toBe(400);
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'audit.query', decision: 'deny', details: expect.objectContaining({ kind: 'lineage', job: jobId }), actor: expect.objectContaining({ user: 'dave' }) }));
  });
});

describe("the last reload's access diff", () => {
  it('says who gained what with the reload, to the admin and the auditor; alice and dave are refused', async () => {
    const answer = await stack.api('/v1/policy/diff', tokens.bob);
    expect(answer.status, answer.body).toBe(200);
    const { diff } = answer.json<{ diff: { changes: { subject: string; object: string; action: string; change: string; rule: string }[]; summary: string[]; trigger: string } }>();
    expect(diff.changes).toContainEqual({ subject: 'role:contractors', object: 'dataset:scratch/*', action: 'read', change: 'granted', rule: 'p, role:contractors, dataset:scratch/*, read, allow' });
    expect(diff.changes.every((c) => c.change === 'granted')).toBe(true);
    expect(diff.summary.join('\n')).toContain('role:contractors gains read');
    expect((await stack.api('/v1/policy/diff', tokens.carol)).status).toBe(200);
    for (const user of ['alice', 'dave']) expect((await stack.api('/v1/policy/diff', tokens[user])).status, user).toBe(403);
  });
});

describe("IT's view of compute", () => {
  it("lists every user's usage against their limits with each limit's line, to the admin only, on the record", async () => {
    const answer = await stack.api('/v1/quota/users', tokens.bob);
    expect(answer.status, answer.body).toBe(200);
    const { users } = answer.json<{ users: { user: string; groups: string[]; limits: Record<"max_cores" | "max_concurrent_jobs", { value: number; line: string | null; source: string }>; usage: { core_seconds_24h: number } }[] }>();
    expect(users.map((u) => u.user).sort()).toEqual(['alice', 'bob', 'carol', 'dave']);
    const alice = users.find((u) => u.user === 'alice')!;
    expect(alice.limits.max_cores).toMatchObject({ value: 8, source: 'role' });
    expect(alice.limits.max_cores.line).toMatch(/^policy\.csv:\d+: p2, role:analysts, max_cores, 8$/);
    expect(users.find((u) => u.user === 'dave')!.limits.max_cores).toMatchObject({ value: 4, source: 'role' });
    for (const user of ['alice', 'dave', 'carol']) {
      const refused = await stack.api('/v1/quota/users', tokens[user]);
      expect(refused.status, user).toBe(403);
      expect(refused.json()).toMatchObject({ error: 'forbidden' });
    }
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'quota.list', decision: 'allow', object: 'job:all', actor: expect.objectContaining({ user: 'bob' }) }));
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'quota.list', decision: 'deny', actor: expect.objectContaining({ user: 'alice' }) }));
  });

  it('shows the slots in use and in all and the pending queue, to the admin only, on the record', async () => {
    const answer = await stack.api('/v1/compute/slots', tokens.bob);
    expect(answer.status, answer.body).toBe(200);
    const body = answer.json<{ backends: { name: string; slots_total: number; slots_busy: number }[]; pending: unknown[] }>();
    expect(body.backends[0]).toMatchObject({ name: 'bundled', slots_busy: 0 });
    expect(body.backends[0]!.slots_total).toBeGreaterThan(0);
    expect(body.pending).toEqual([]);
    for (const user of ['alice', 'dave']) expect((await stack.api('/v1/compute/slots', tokens[user])).status, user).toBe(403);
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'compute.slots', decision: 'deny', actor: expect.objectContaining({ user: 'dave' }) }));
  });
});

describe('certificates issued', () => {
  it("lists one's own to anyone, everyone's (all=1) to the certificate admin only", async () => {
    const serials: Record<string, string> = {};
    for (const user of ['alice', 'dave']) {
      const issued = await stack.api('/v1/certs', tokens[user], { method: 'POST', body: { csr: (await createKeyAndCsr()).csrPem } });
      expect(issued.status, issued.body).toBe(200);
      serials[user] = issued.json<{ serial: string }>().serial;
    }
    const list = async (user: string, all = false) => (await stack.api(`/v1/certs${all ? '?all=1' : ''}`, tokens[user])).json<{ certificates: { serial: string; user: string; subject: string; revoked: boolean; not_after: string }[] }>().certificates;
    const alices = await list('alice');
    expect(alices.map((c) => c.serial)).toEqual([serials.alice]);
    expect(alices[0]).toMatchObject({ user: 'alice', subject: 'CN=alice', revoked: false });
    expect((await list('dave')).map((c) => c.serial)).toEqual([serials.dave]);
    expect((await list('bob', true)).map((c) => c.serial).sort()).toEqual([serials.alice, serials.dave].sort());
    for (const user of ['alice', 'dave', 'carol']) expect((await stack.api('/v1/certs?all=1', tokens[user])).status, user).toBe(403);
    expect((await stack.api('/v1/certs?all=yes', tokens.bob)).status).toBe(400);
    // Revoked by the admin: the list says so.
    expect((await stack.api(`/v1/certs/${serials.dave}`, tokens.bob, { method: 'DELETE' })).status).toBe(200);
    expect((await list('bob', true)).find((c) => c.serial === serials.dave)).toMatchObject({ revoked: true });
    expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'cert.list', decision: 'deny', actor: expect.objectContaining({ user: 'alice' }) }));
  });
});
