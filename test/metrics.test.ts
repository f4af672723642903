// The curated /metrics on a real stack (engine, development IdP, gateway: each its own process):
// after two logins and a failed one, an allowed and a denied decision, a quota refusal and a job
// that finishes, each counter moved by exactly that much with the expected labels; no label value
// names a user, a dataset or a job; the engine's metrics are relayed; every metric ops/'s alerts and
// dashboard read is there; and Debian's promtool finds nothing wrong with the live text
// (`promtool check metrics`).
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { alertExprs, dashboardExprs, metricNames } from './support/ops-files.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

/** One sample of the exposition text: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of one series (0 when absent); `labels` must match the series' labels exactly. */
function seriesValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  if (found.length > 1) throw new Error(`${name} ${want} appears ${found.length} times`);
  return found[0]?.value ?? 0;
}

let stack: Stack;
const scrape = async () => {
  const res = await stack.api('/metrics');
  expect(res.status).toBe(200);
  return res.body;
};

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const SLOW = 'import time\ndef process(i, o, ctx):\n    time.sleep(120)\n';
const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  name: 'counted',
  input: 'scratch/metered',
  output: 'scratch/metered-out',
  runtime: 'python',
  source: COPY,
  resources: { cores: 1, memory_mb: 256, time_limit_s: 120 },
  max_attempts: 1,
  ...o,
});

beforeAll(async () => {
  stack = await Stack.start({ users: { erin: ['analysts'] }, policyLines: ['p2, user:erin, max_concurrent_jobs, 1'], config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, audit: { checkpoint_interval: '1s' } } });
  const rows = (p: number) => ({ text: `id,word\n${[1, 2].map((r) => `${p * 2 + r},w${r}`).join('\n')}\n`, rows: 2 });
  await writeDataset(stack.dataRoot, 'scratch/metered', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows(0), rows(1)] });
});

afterAll(async () => {
  await stack?.stop();
});

describe('/metrics', () => {
  let before: Sample[];
  let after: Sample[];
  let text: string;
  let jobId: string;

  beforeAll(async () => {
    before = parse(await scrape());
    const alice = await stack.login('alice'); // 1 login
    const carol = await stack.login('carol'); // 2 logins
    const erin = await stack.login('erin'); // 3 logins
    // A failed login: an SSO callback with a state this gateway never handed out.
    expect((await stack.api('/v1/auth/oidc/callback?state=forged&code=x')).status).toBe(401);
    // Allowed and denied: reading the policy (auditors may, analysts may not).
    expect((await stack.api('/v1/policy', carol)).status).toBe(200);
    expect((await stack.api('/v1/policy', alice)).status).toBe(403);
    // A quota refusal: analysts hold at most 8 cores.
    const refused = await stack.api('/v1/jobs', alice, { method: 'POST', body: spec({ resources: { cores: 16, memory_mb: 64, time_limit_s: 60 } }) });
    expect(refused.status, refused.body).toBe(403);
    expect(refused.json<{ error: string }>().error).toBe('quota_exceeded');
    // A job that finishes.
    const created = await stack.api('/v1/jobs', alice, { method: 'POST', body: spec() });
    expect(created.status, created.body).toBe(201);
    jobId = created.json<{ id: string }>().id;
    await until(async () => (await stack.api(`/v1/jobs/${jobId}`, alice)).json<{ state: string }>().state === 'succeeded', 30_000, 'the job to succeed');
    // A job kept pending (erin may run one at a time), then both of hers cancelled: the pending one first.
    const slow = await stack.api('/v1/jobs', erin, { method: 'POST', body: spec({ source: SLOW, output: 'scratch/metered-slow' }) });
    expect(slow.status, slow.body).toBe(201);
    const slowId = slow.json<{ id: string }>().id;
    await until(async () => (await stack.api(`/v1/jobs/${slowId}`, erin)).json<{ state: string }>().state === 'running', 30_000, 'the slow job to run');
    const parked = await stack.api('/v1/jobs', erin, { method: 'POST', body: spec({ output: 'scratch/metered-parked' }) });
    expect(parked.json<{ state: string }>().state).toBe('pending');
    expect((await stack.api(`/v1/jobs/${parked.json<{ id: string }>().id}`, erin, { method: 'DELETE' })).status).toBe(200);
    expect((await stack.api(`/v1/jobs/${slowId}`, erin, { method: 'DELETE' })).status).toBe(200);
    // Ends are on record (and so counted) just after the state shows.
    const ended = (samples: Sample[], state: string) => seriesValue(samples, 'gatehouse_jobs_finished_total', { state, backend: 'bundled' }) - seriesValue(before, 'gatehouse_jobs_finished_total', { state, backend: 'bundled' });
    text = await until(async () => {
      const t = await scrape();
      return ended(parse(t), 'succeeded') === 1 && ended(parse(t), 'cancelled') === 2 && t;
    }, 10_000, 'job.finish counted');
    after = parse(text);
  });

  const moved = (name: string, labels: Record<string, string> = {}) => seriesValue(after, name, labels) - seriesValue(before, name, labels);

  it('counts logins by method and outcome', () => {
    expect(moved('gatehouse_logins_total', { method: 'oidc', outcome: 'success' })).toBe(3);
    expect(moved('gatehouse_logins_total', { method: 'oidc', outcome: 'failure' })).toBe(1);
    expect(moved('gatehouse_logins_total', { method: 'ldap', outcome: 'failure' })).toBe(0);
    expect(moved('gatehouse_logins_total', { method: 'oidc', outcome: 'throttled' })).toBe(0);
  });

  it('counts decisions by audit action and outcome, and times them', () => {
    expect(moved('gatehouse_decisions_total', { action: 'policy.view', outcome: 'allow' })).toBe(1);
    expect(moved('gatehouse_decisions_total', { action: 'policy.view', outcome: 'deny' })).toBe(1);
    expect(moved('gatehouse_decisions_total', { action: 'auth.login', outcome: 'allow' })).toBe(3);
    expect(moved('gatehouse_decisions_total', { action: 'auth.login_failed', outcome: 'deny' })).toBe(1);
    expect(moved('gatehouse_decisions_total', { action: 'quota.reject', outcome: 'deny' })).toBe(1);
    expect(moved('gatehouse_decisions_total', { action: 'job.submit', outcome: 'allow' })).toBe(3);
    expect(moved('gatehouse_decisions_total', { action: 'job.finish', outcome: 'allow' })).toBe(1);
    expect(moved('gatehouse_decisions_total', { action: 'job.finish', outcome: 'error' })).toBe(2); // cancelled
    // Every decision counted is one event committed to the trail, and the other way round.
    const decided = after.filter((s) => s.name === 'gatehouse_decisions_total').reduce((n, s) => n + s.value, 0) - before.filter((s) => s.name === 'gatehouse_decisions_total').reduce((n, s) => n + s.value, 0);
    expect(decided).toBe(moved('gatehouse_audit_events_total'));
    expect(moved('gatehouse_audit_append_duration_seconds_count')).toBe(decided);
    expect(moved('gatehouse_decision_duration_seconds_count')).toBeGreaterThanOrEqual(2);
  });

  it('counts the quota refusal and the pending job by their limit, and the jobs by state and backend', () => {
    expect(moved('gatehouse_quota_refusals_total', { limit: 'max_cores' })).toBe(1);
    expect(after.filter((s) => s.name === 'gatehouse_quota_refusals_total').reduce((n, s) => n + s.value, 0) - before.filter((s) => s.name === 'gatehouse_quota_refusals_total').reduce((n, s) => n + s.value, 0)).toBe(1);
    expect(moved('gatehouse_quota_pending_total', { limit: 'max_concurrent_jobs' })).toBe(1);
    expect(after.filter((s) => s.name === 'gatehouse_quota_pending_total').reduce((n, s) => n + s.value, 0) - before.filter((s) => s.name === 'gatehouse_quota_pending_total').reduce((n, s) => n + s.value, 0)).toBe(1);
    expect(moved('gatehouse_jobs_finished_total', { state: 'succeeded', backend: 'bundled' })).toBe(1);
    expect(moved('gatehouse_jobs_finished_total', { state: 'cancelled', backend: 'bundled' })).toBe(2);
    expect(moved('gatehouse_jobs_finished_total', { state: 'failed', backend: 'bundled' })).toBe(0);
    // Run time: the two that started (the pending one never did); queue wait: the two admitted.
    expect(moved('gatehouse_job_duration_seconds_count', { backend: 'bundled' })).toBe(2);
    expect(moved('gatehouse_job_queue_wait_seconds_count', { backend: 'bundled' })).toBe(2);
    for (const state of ['pending', 'dispatching', 'queued', 'running']) expect(seriesValue(after, 'gatehouse_jobs', { state, backend: 'bundled' })).toBe(0);
  });

  it('relays the engine: its slots and the partitions it ran', () => {
    expect(seriesValue(after, 'gatehouse_engine_scrape_ok', { backend: 'bundled' })).toBe(1);
    expect(seriesValue(after, 'gatehouse_engine_slots')).toBeGreaterThanOrEqual(1);
    expect(moved('gatehouse_engine_partitions_total', { outcome: 'done' })).toBe(2);
    // Only the engine's own families: none of its process metrics, which would clash with the gateway's.
    expect(text.match(/^# TYPE process_cpu_seconds_total /gm)).toHaveLength(1);
  });

  it('signs the chain: a checkpoint time, and no event left unsigned once it is', async () => {
    const signed = await until(async () => {
      const now = parse(await scrape());
      return seriesValue(now, 'gatehouse_audit_unsigned_events') === 0 && now;
    }, 10_000, 'every event signed');
    expect(seriesValue(signed, 'gatehouse_audit_checkpoint_timestamp_seconds')).toBeGreaterThan(seriesValue(before, 'gatehouse_audit_checkpoint_timestamp_seconds'));
    expect(seriesValue(signed, 'gatehouse_audit_checkpoint_timestamp_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
  });

  it('shows the certificates, the trail and the policy', () => {
    const now = Date.now() / 1000;
    for (const certificate of ['gateway', 'gateway_client', 'ca']) expect(seriesValue(after, 'gatehouse_certificate_expiry_timestamp_seconds', { certificate })).toBeGreaterThan(now);
    expect(seriesValue(after, 'gatehouse_audit_available')).toBe(1);
    expect(seriesValue(after, 'gatehouse_audit_head_id')).toBeGreaterThan(seriesValue(before, 'gatehouse_audit_head_id'));
    expect(seriesValue(after, 'gatehouse_policy_last_good_reload_timestamp_seconds')).toBeGreaterThan(0);
    expect(seriesValue(after, 'gatehouse_policy_last_good_reload_timestamp_seconds')).toBeLessThanOrEqual(now);
  });

  it('has no label value naming a user, a dataset or a job', () => {
    const named = ['alice', 'carol', 'erin', 'scratch/metered', 'metered', jobId];
    for (const s of after) for (const v of Object.values(s.labels)) for (const n of named) expect(v, `${s.name} ${JSON.stringify(s.labels)}`).not.toContain(n);
  });

  it('has every metric the alert rules and the dashboard read (ops/)', () => {
    const live = new Set(after.map((s) => s.name));
    const read = [...alertExprs().map((a) => ({ where: `alert ${a.name}`, expr: a.expr })), ...dashboardExprs().map((d) => ({ where: `panel ${d.title}`, expr: d.expr }))];
    expect(read.length).toBeGreaterThan(20);
    const missing = read.flatMap((r) => metricNames(r.expr).filter((n) => !live.has(n)).map((n) => `${r.where}: ${n}`));
    expect(missing).toEqual([]);
  });

  it('passes promtool check metrics', () => {
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(lint.error, 'promtool (Debian package prometheus) is needed').toBeUndefined();
    expect({ status: lint.status, out: lint.stdout + lint.stderr }).toEqual({ status: 0, out: '' });
  });
});
