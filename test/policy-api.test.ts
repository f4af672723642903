// The policy through a running gateway (real `up`: engine, development IdP, gateway), with people
// who logged in by SSO: the policy API and who may use it, a file edit picked up by itself, a bad
// edit refused while the old version serves (GET /v1/policy, /metrics, the audit trail), a forced
// reload, explain, and GET /v1/datasets filtered by policy and manifest labels.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { readTrail } from './support/audit-trail.js';
import { startCli } from './support/cli-process.js';
import { fetchTls } from './support/https.js';
import { ROOT, runCli, sandbox, type Sandbox, startUp, type Up, TEST_POLICIES } from './support/gatehouse.js';
import { approveDevice } from './support/oidc-browser.js';
import { until } from './support/until.js';

let box: Sandbox;
let up: Up;
let gateway: string;
let policies: string;
const tokens: Record<string, string> = {};

const api = (path: string, token?: string, init: { method?: string; body?: unknown } = {}) =>
  fetchTls(`${gateway}${path}`, {
    ca: up.ca,
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });

/** SSO through the gateway's device grant, approved in the development provider. */
async function login(user: string): Promise<string> {
  const start = (await api('/v1/auth/device', undefined, { method: 'POST', body: {} })).json<{ device_code: string; verification_uri_complete: string }>();
  expect((await approveDevice(start.verification_uri_complete, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
  const answer = await api('/v1/auth/device/token', undefined, { method: 'POST', body: { device_code: start.device_code } });
  expect(answer.status).toBe(200);
  return answer.json<{ access_token: string }>().access_token;
}

/** The gateway's trail (audit.dir's default: state.dir/audit), in chain order. */
const auditEvents = () => readTrail(join(box.dir, 'var', 'audit'));

const policyFile = () => join(policies, 'policy.csv');
const lineOf = (text: string) => readFileSync(policyFile(), 'utf8').split('\n').indexOf(text) + 1;

beforeAll(async () => {
  policies = mkdtempSync(join(tmpdir(), 'gatehouse-policies-'));
  cpSync(TEST_POLICIES, policies, { recursive: true });
  box = sandbox({
    dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') },
    policies: { dir: policies },
  });
  writeFileSync(box.configFile, `${readFileSync(box.configFile, 'utf8')}data:\n  root: ${join(box.dir, 'data')}\n`);
  up = await startUp(box);
  gateway = up.ready.gateway.url;
  for (const user of ['alice', 'bob', 'carol', 'dave']) tokens[user] = await login(user);
}, 120_000);

afterAll(async () => {
  await up?.stop();
  box?.remove();
  rmSync(policies, { recursive: true, force: true });
});

describe('the policy API', () => {
  it('shows the serving version to those policy lets read it, and 403 with the reason to others', async () => {
    const shown = await api('/v1/policy', tokens.bob);
    expect(shown.status).toBe(200);
    const body = shown.json<{ version: string; counts: { rules: number; quota_lines: number }; last_reload: { outcome: string }; model: { effect: string } }>();
    expect(body).toMatchObject({ counts: { rules: 21, quota_lines: 14 }, last_reload: { outcome: 'loaded' }, model: { effect: 'deny-override' } });
    const refused = await api('/v1/policy', tokens.alice);
    expect(refused.status).toBe(403);
    expect(refused.json()).toMatchObject({ error: 'forbidden', message: 'no rule grants read on policy:files to user:alice', rule: null, policy_version: body.version });
    expect(auditEvents()).toContainEqual(expect.objectContaining({ action: 'policy.view', decision: 'deny', actor: expect.objectContaining({ user: 'alice' }), policy_version: body.version }));
  });

  it('lists only the datasets the caller may use, with their actions; pii is hidden from contractors', async () => {
    const list = async (user: string) => (await api('/v1/datasets', tokens[user])).json<{ datasets: { name: string; actions: string[]; labels: string[]; rows: number }[] }>().datasets;
    const alice = await list('alice');
    expect(alice.map((d) => [d.name, d.actions])).toEqual([
      ['customers', ['read']],
      ['transactions', ['read']],
      ['words', ['read']],
    ]);
    expect(alice.find((d) => d.name === 'customers')!.labels).toEqual(['pii']);
    expect(alice.find((d) => d.name === 'transactions')!.rows).toBeGreaterThan(100_000);
    expect((await list('dave')).map((d) => d.name)).toEqual(['words']);
    expect((await list('bob')).map((d) => [d.name, d.actions])).toContainEqual(['customers', ['read', 'admin']]);
    expect(await list('carol')).toEqual([]);
    expect(auditEvents()).toContainEqual(expect.objectContaining({ action: 'dataset.list', actor: expect.objectContaining({ user: 'dave' }), details: { returned: 1, hidden: 2 } }));
  });

  it('shows a dataset the caller may only write by name alone, and another person’s namespace not at all', async () => {
    await writeDataset(join(box.dir, 'data'), 'scratch/alice-model', { format: 'csv', columns: ['customer_id', 'score'], owner: 'alice', labels: [], produced_by: null, partitions: [{ text: 'customer_id,score\n1,0.5\n', rows: 1 }] });
    await writeDataset(join(box.dir, 'data'), 'scratch-alice/model', { format: 'csv', columns: ['customer_id', 'score'], owner: 'alice', labels: [], produced_by: null, partitions: [{ text: 'customer_id,score\n1,0.5\n', rows: 1 }] });
    await writeDataset(join(box.dir, 'data'), 'scratch-dave/notes', { format: 'csv', columns: ['id', 'note'], owner: 'dave', labels: [], produced_by: null, partitions: [{ text: 'id,note\n1,x\n', rows: 1 }] });
    const dave = (await api('/v1/datasets', tokens.dave)).json<{ datasets: Record<string, unknown>[] }>().datasets;
    // Contractors write only their own namespace (scratch-{user}/*), and read it.
    expect(dave.find((d) => d.name === 'scratch/alice-model')).toBeUndefined();
    expect(dave.find((d) => d.name === 'scratch-alice/model')).toBeUndefined();
    expect(dave.find((d) => d.name === 'scratch-dave/notes')).toMatchObject({ actions: ['read', 'write'], owner: 'dave' });
    const alice = (await api('/v1/datasets', tokens.alice)).json<{ datasets: Record<string, unknown>[] }>().datasets;
    expect(alice.find((d) => d.name === 'scratch/alice-model')).toMatchObject({ actions: ['read', 'write'], columns: ['customer_id', 'score'], owner: 'alice' });
    expect(alice.find((d) => d.name === 'scratch-alice/model')).toMatchObject({ actions: ['read', 'write'], owner: 'alice' });
    // Analysts read others' namespaces (scratch-*) but write only their own.
    expect(alice.find((d) => d.name === 'scratch-dave/notes')).toMatchObject({ actions: ['read'] });
  });

  it('explains one’s own access to anyone, and others’ only with policy read, using their last login’s groups', async () => {
    const own = await api('/v1/policy/explain', tokens.dave, { method: 'POST', body: { user: 'dave', action: 'read', object: 'dataset:customers' } });
    expect(own.status).toBe(200);
    expect(own.json()).toMatchObject({ groups: ['contractors'], groups_source: 'caller', labels: ['pii'], labels_source: 'catalog', decision: { allowed: false }, deciding: { rule: 'p, role:contractors, label:pii, read, deny' } });
    expect((await api('/v1/policy/explain', tokens.alice, { method: 'POST', body: { user: 'dave', action: 'read', object: 'dataset:customers' } })).status).toBe(403);
    const other = await api('/v1/policy/explain', tokens.carol, { method: 'POST', body: { user: 'dave', action: 'read', object: 'dataset:words' } });
    expect(other.json()).toMatchObject({ groups: ['contractors'], groups_source: 'last-login', decision: { allowed: true } });
    const bad = await api('/v1/policy/explain', tokens.carol, { method: 'POST', body: { user: 'dave', action: 'raed', object: 'dataset:words' } });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_request', field: 'action' });
  });
});

describe('reloading a running gateway', () => {
  it('picks up a good edit within a second or so, and the new version decides', async () => {
    const before = (await api('/v1/policy', tokens.bob)).json<{ version: string }>().version;
    writeFileSync(policyFile(), `${readFileSync(policyFile(), 'utf8')}p, role:analysts, policy:*, read, allow\n`);
    const after = await until(async () => {
      const v = (await api('/v1/policy', tokens.bob)).json<{ version: string }>().version;
      return v !== before ? v : undefined;
    });
    const now = await api('/v1/policy', tokens.alice);
    expect(now.status).toBe(200);
    expect(now.json()).toMatchObject({ version: after, last_reload: { outcome: 'loaded', trigger: { by: 'file-change' }, previous_version: before } });
    expect(auditEvents()).toContainEqual(expect.objectContaining({ action: 'policy.reload', decision: 'allow', policy_version: after, actor: expect.objectContaining({ user: 'system:file-watch', auth_method: 'system' }), details: expect.objectContaining({ trigger: 'file-change', previous_version: before, files: expect.objectContaining({ 'policy.csv': expect.stringMatching(/^[0-9a-f]{64}$/) }) }) }));
  });

  it('refuses a bad edit: the old version serves, and the error shows in the API, /metrics and the audit trail', async () => {
    const serving = (await api('/v1/policy', tokens.bob)).json<{ version: string }>().version;
    writeFileSync(policyFile(), `${readFileSync(policyFile(), 'utf8')}p, role:analysts, dataset:words, wirte, allow\n`);
    const line = lineOf('p, role:analysts, dataset:words, wirte, allow');
    const shown = await until(async () => {
      const b = (await api('/v1/policy', tokens.bob)).json<{ version: string; last_reload: { outcome: string; problems: { file: string; line: number; message: string; hint: string }[] } }>();
      return b.last_reload.outcome === 'failed' ? b : undefined;
    });
    expect(shown.version).toBe(serving);
    expect(shown.last_reload.problems).toEqual([{ severity: 'error', file: 'policy.csv', line, message: 'unknown action "wirte"', hint: 'did you mean write? actions are read, write, admin' }]);
    // Still deciding with the serving version.
    expect((await api('/v1/policy', tokens.alice)).status).toBe(200);
    const metrics = (await api('/metrics')).body;
    expect(metrics).toMatch(/^gatehouse_policy_reloads_total\{outcome="failed"\} [1-9]/m);
    expect(metrics).toMatch(/^gatehouse_policy_last_reload_failed 1$/m);
    expect(metrics).toContain(`gatehouse_policy_info{version="${serving}"} 1`);
    expect(auditEvents()).toContainEqual(expect.objectContaining({ action: 'policy.reload_failed', decision: 'error', policy_version: serving, details: expect.objectContaining({ problems: [`policy.csv:${line}: unknown action "wirte"`] }) }));
    expect((await api('/readyz')).json()).toMatchObject({ checks: { policy: expect.stringMatching(/latest edit refused/) } });
  });

  it('POST /v1/policy/reload: 403 without admin, 422 with the problems while the files are bad, then loads the fix', async () => {
    expect((await api('/v1/policy/reload', tokens.alice, { method: 'POST', body: {} })).status).toBe(403);
    const refused = await api('/v1/policy/reload', tokens.bob, { method: 'POST', body: {} });
    expect(refused.status).toBe(422);
    expect(refused.json()).toMatchObject({ error: 'policy_invalid', outcome: 'failed', problems: [expect.objectContaining({ message: 'unknown action "wirte"' })] });
    // Fix it and reload at once (the watcher may get there first: then the answer is "unchanged").
    writeFileSync(policyFile(), readFileSync(policyFile(), 'utf8').replace('wirte', 'write'));
    const fixed = await runCli(['policy', 'reload', '--json'], { env: { XDG_CONFIG_HOME: await cliHome('bob'), GATEHOUSE_URL: gateway, GATEHOUSE_CA: up.ready.ca_file } });
    expect(fixed.code, fixed.stderr).toBe(0);
    const o = JSON.parse(fixed.stdout) as { outcome: string; version: string };
    expect(['loaded', 'unchanged']).toContain(o.outcome);
    expect((await api('/v1/policy', tokens.bob)).json()).toMatchObject({ version: o.version, last_reload: { outcome: 'loaded' } });
    expect(auditEvents()).toContainEqual(expect.objectContaining({ action: 'policy.reload', actor: expect.objectContaining({ user: 'bob' }), details: expect.objectContaining({ trigger: 'api' }) }));
  });
});

/** A CLI config folder holding bob's saved login, as `gatehouse login` would leave it. */
async function cliHome(user: string): Promise<string> {
  const home = mkdtempSync(join(tmpdir(), `gatehouse-home-${user}-`));
  const cli = startCli(['login', '--sso', '--no-browser', '--json'], { XDG_CONFIG_HOME: home, GATEHOUSE_URL: gateway, GATEHOUSE_CA: up.ready.ca_file });
  const [, url] = await cli.waitFor(/or open (\S+)/);
  expect((await approveDevice(url!, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
  await cli.done;
  return home;
}
