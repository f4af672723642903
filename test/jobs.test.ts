// The job path through a real gateway, a real engine and the development IdP, each its own process:
// authorization of the datasets, admission within quota (refused, pending, admitted; 200 racing
// submissions), usage released however a job ends (success, failure, cancel, the engine killed or
// losing the job), the gateway restarted with pending jobs, and users kept out of each other's jobs.
import { appendFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { startCli } from './support/cli-process.js';
import { runCli } from './support/gatehouse.js';
import { EngineClient } from './support/engine.js';
import { approveDevice } from './support/oidc-browser.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';
import { GATED } from './support/gated-job.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const SLOW = (s: number) => `import time\ndef process(i, o, ctx):\n    time.sleep(${s})\n    open(o, 'w').write(open(i).read())\n`;
const FAIL = "def process(i, o, ctx):\n    raise ValueError('boom in partition %d' % ctx.partition)\n";
const BURN = (s: number) => `import time\ndef process(i, o, ctx):\n    end = time.process_time() + ${s}\n    while time.process_time() < end:\n        pass\n    open(o, 'w').write(open(i).read())\n`;

let stack: Stack;
const tokens: Record<string, string> = {};
let outputs = 0;

interface View {
  id: string;
  state: string;
  user: string;
  reason: string | null;
  error: string | null;
  partitions: { total: number; done: number };
  rows_out: number;
  started_at: string | null;
  finished_at: string | null;
  core_seconds: number;
  backend: string;
}
interface Quota {
  policy_version: string;
  usage: { running_jobs: number; cores: number; memory_mb: number; core_seconds_24h: number };
  limits: Record<string, { value: number; source: string; line: string | null }>;
  pending: { id: string; reason: string }[];
}

function spec(source: string, o: Partial<JobSpec> & { cores?: number } = {}): JobSpec {
  const { cores = 1, ...rest } = o;
  outputs += 1;
  return { name: 't', input: 'scratch/tiny', output: `scratch/out-${outputs}`, runtime: 'python', source, resources: { cores, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1, ...rest };
}

const submit = (user: string, s: JobSpec) => stack.api('/v1/jobs', tokens[user], { method: 'POST', body: s });
const view = async (user: string, id: string) => (await stack.api(`/v1/jobs/${id}`, tokens[user])).json<View>();
const quota = async (user: string) => (await stack.api('/v1/quota', tokens[user])).json<Quota>();

/** Lets a GATED job end, once the engine runs it (its work folder is made before its workers start). */
async function release(id: string): Promise<void> {
  await new EngineClient(stack.engine.url, stack.certsDir).waitFor(id, (s) => s.state === 'running' && s.workers > 0, 30_000);
  writeFileSync(join(stack.dataRoot, '.staging', id, 'work', 'go'), '');
}


const waitState = (user: string, id: string, states: string[], timeoutMs = 60_000) =>
  until(async () => {
    const v = await view(user, id);
    return states.includes(v.state) ? v : undefined;
  }, timeoutMs, `job ${id} in ${states.join('|')}`);

async function submitted(user: string, s: JobSpec): Promise<{ id: string; state: string; reason: string | null }> {
  const answer = await submit(user, s);
  expect(answer.status, answer.body).toBe(201);
  return answer.json();
}

beforeAll(async () => {
  stack = await Stack.start({
    users: { erin: ['analysts'], frank: ['analysts'], gina: ['analysts'] },
    policyLines: ['p2, user:erin, max_concurrent_jobs, 3', 'p2, user:frank, max_concurrent_jobs, 1', 'p2, user:gina, core_hours_per_day, 0.0005'],
    config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 8 } }, // alice's 8-core job must fit the engine
  });
  const rows = (p: number) => ({ text: `id,word\n${[1, 2, 3].map((r) => `${p * 3 + r},w${r}`).join('\n')}\n`, rows: 3 });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows(0), rows(1)] });
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows(0)] });
  await writeDataset(stack.dataRoot, 'customers', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: ['pii'], produced_by: 'test', partitions: [rows(0)] });
  await writeDataset(stack.dataRoot, 'hr', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows(0)] });
  for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('a job through the gateway', () => {
  it('runs: 201 queued, then succeeded with the output written and the lineage audited', async () => {
    const s = spec(COPY);
    const created = await submitted('alice', s);
    expect(created).toEqual({ id: expect.stringMatching(/^j[0-9a-f]{12}$/), state: 'queued', reason: null });
    const done = await waitState('alice', created.id, ['succeeded', 'failed']);
    expect(done).toMatchObject({ state: 'succeeded', user: 'alice', backend: 'bundled', partitions: { total: 2, done: 2 }, rows_out: 6 });
    const listed = (await stack.api('/v1/datasets', tokens.alice)).json<{ datasets: { name: string; owner: string }[] }>().datasets;
    expect(listed).toContainEqual(expect.objectContaining({ name: s.output, owner: 'alice' }));
    const events = stack.auditEvents().filter((e) => e.object === `job:${created.id}` || e.details.job === created.id);
    // The permissions decided at submission (dataset.authorize), then the read as the job started and the write as it succeeded.
    expect(events.filter((e) => e.action === 'dataset.authorize').map((e) => [e.object, e.details.requested])).toEqual([['dataset:scratch/tiny', 'read'], [`dataset:${s.output}`, 'write']]);
    expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(['job.submit', 'job.start', 'dataset.read', 'dataset.write', 'job.finish']));
    expect(events.find((e) => e.action === 'dataset.read')).toMatchObject({ object: 'dataset:scratch/tiny', decision: 'allow' });
    expect(events.find((e) => e.action === 'dataset.write')).toMatchObject({ object: `dataset:${s.output}`, decision: 'allow', details: { mode: 'create' } });
    expect(events.find((e) => e.action === 'job.finish')).toMatchObject({ decision: 'allow', details: { input: 'scratch/tiny', output: s.output, state: 'succeeded', rows_out: 6 } });
    expect(JSON.stringify(events)).not.toContain('open(o'); // the source is not an audit detail
  });

  it("commits a submission's dataset decisions and its job.submit together (one group commit, one fsync), all before the answer", async () => {
    const commits = async () => {
      const text = (await stack.api('/metrics')).body;
      const value = (line: RegExp) => Number(text.match(line)?.[1] ?? Number.NaN);
      // Commits of three events or more: the count of all minus those of at most two.
      return value(/^gatehouse_audit_commit_events_count (\d+)$/m) - value(/^gatehouse_audit_commit_events_bucket\{le="2"\} (\d+)$/m);
    };
    const before = await commits();
    const created = await submitted('alice', spec(COPY));
    // One by one (as before) they were three commits of one event each; nothing else here records three at once.
    expect((await commits()) - before).toBeGreaterThanOrEqual(1);
    const mine = stack.auditEvents().filter((e) => e.object === `job:${created.id}` || e.details.job === created.id);
    const submitted3 = mine.filter((e) => e.action === 'dataset.authorize' || e.action === 'job.submit');
    expect(submitted3.map((e) => (e.action === 'job.submit' ? e.action : `${e.action} ${e.details.requested}`))).toEqual(['dataset.authorize read', 'dataset.authorize write', 'job.submit']);
    // Consecutive in the chain: one batch, in the order decided.
    expect(submitted3.map((e) => e.id - submitted3[0]!.id)).toEqual([0, 1, 2]);
    await waitState('alice', created.id, ['succeeded', 'failed']);
  });

  it('refuses what policy does not grant: 403 naming the rule or the missing grant, and nothing runs', async () => {
    const unreadable = await submit('alice', spec(COPY, { input: 'hr' }));
    expect(unreadable.status).toBe(403);
    expect(unreadable.json()).toMatchObject({ error: 'forbidden', message: 'no rule grants read on dataset:hr to user:alice' });
    const unwritable = await submit('alice', spec(COPY, { output: 'transactions_copy' }));
    expect(unwritable.status).toBe(403);
    expect(unwritable.json()).toMatchObject({ error: 'forbidden', message: 'no rule grants write on dataset:transactions_copy to user:alice' });
    const pii = await submit('dave', spec(COPY, { input: 'customers' }));
    expect(pii.status).toBe(403);
    expect(pii.json()).toMatchObject({ error: 'forbidden', rule: 'p, role:contractors, label:pii, read, deny' });
    // The same contractor may run over what is granted: the refusals above are the policy's.
    const allowed = await submitted('dave', spec(COPY, { input: 'words', output: 'scratch-dave/words-copy' }));
    expect((await waitState('dave', allowed.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await stack.api('/v1/jobs', tokens.dave)).json<{ jobs: View[] }>().jobs.map((j) => j.id)).toEqual([allowed.id]);
  });

  it('answers a bad spec with 400 naming the field, and a missing input with 404', async () => {
    const zero = await submit('alice', { ...spec(COPY), resources: { cores: 0, memory_mb: 256, time_limit_s: 60 } });
    expect(zero.status).toBe(400);
    expect(zero.json()).toMatchObject({ error: 'invalid_request', field: expect.stringContaining('cores') });
    const noSource = await submit('alice', { ...spec(COPY), source: undefined });
    expect(noSource.json()).toMatchObject({ error: 'invalid_request', field: 'body.source' });
    const missing = await submit('alice', spec(COPY, { input: 'scratch/nothing-here' }));
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found', message: 'no dataset scratch/nothing-here' });
    expect((await quota('alice')).usage.running_jobs).toBe(0);
  });
});

describe('quotas', () => {
  it('refuses what can never fit, parks what does not fit now with its reason, and admits it when usage frees', async () => {
    const big = await submitted('alice', spec(SLOW(30), { cores: 8 }));
    expect(big.state).toBe('queued');
    const over = await submit('alice', spec(COPY, { cores: 16 }));
    expect(over.status).toBe(403);
    expect(over.json()).toMatchObject({ error: 'quota_exceeded', limit: 'max_cores', used: 8, requested: 16, max: 8 });
    const waiting = await submitted('alice', spec(COPY));
    expect(waiting).toMatchObject({ state: 'pending', reason: 'quota: cores 8/8 in use' });
    expect(await view('alice', waiting.id)).toMatchObject({ state: 'pending', reason: 'quota: cores 8/8 in use' });
    const q = await quota('alice');
    expect(q.usage).toMatchObject({ running_jobs: 1, cores: 8, memory_mb: 2048 }); // 8 workers × 256 MB
    expect(q.limits.max_cores).toMatchObject({ value: 8, source: 'role', line: expect.stringContaining('p2, role:analysts, max_cores, 8') });
    expect(q.pending).toEqual([expect.objectContaining({ id: waiting.id, reason: 'quota: cores 8/8 in use' })]);

    const cancelled = await stack.api(`/v1/jobs/${big.id}`, tokens.alice, { method: 'DELETE' });
    expect(cancelled.json()).toMatchObject({ state: 'cancelled' });
    // The pending job is admitted by itself once the 8 cores are free.
    expect((await waitState('alice', waiting.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await quota('alice')).usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
    expect((await stack.api(`/v1/jobs/${big.id}`, tokens.alice, { method: 'DELETE' })).status).toBe(409);
  });

  it('cancels a pending job: it leaves the queue and never runs', async () => {
    const running = await submitted('frank', spec(SLOW(30)));
    const parked = await submitted('frank', spec(COPY));
    expect(parked.reason).toBe('quota: jobs 1/1 in use');
    const cancelled = await stack.api(`/v1/jobs/${parked.id}`, tokens.frank, { method: 'DELETE' });
    expect(cancelled.json()).toMatchObject({ state: 'cancelled', started_at: null });
    expect((await quota('frank')).pending).toEqual([]);
    await stack.api(`/v1/jobs/${running.id}`, tokens.frank, { method: 'DELETE' });
    expect((await quota('frank')).usage.running_jobs).toBe(0);
  });

  it('holds 200 racing submissions of one user to max_concurrent_jobs 3, and runs or refuses every one', async () => {
    let maxHeld = 0;
    let sampling = true;
    // Samples erin's running jobs every 20 ms until told to stop.
    const sampler = until(
      async () => {
        // A sample lost to a loaded machine is skipped, not a failure: the engine's own clock below checks the same bound.
        const seen = await stack
          .apiAt(stack.url, '/v1/quota', tokens.erin, { timeoutMs: 60_000 })
          .then((r) => r.json<Quota>().usage.running_jobs)
          .catch(() => 0);
        maxHeld = Math.max(maxHeld, seen);
        return !sampling;
      },
      240_000,
      'the end of sampling',
      20,
    );
    const specs = Array.from({ length: 200 }, (_, i) => spec(COPY, i % 20 === 19 ? { cores: 16 } : {}));
    // Two hundred decisions for one person wait for each other (the person's lock): on a loaded machine
    // the last answers come long after the first, so each may wait longer than a request usually does.
    const answers = await Promise.all(specs.map((s) => stack.apiAt(stack.url, '/v1/jobs', tokens.erin, { method: 'POST', body: s, timeoutMs: 120_000 })));
    const refused = answers.filter((a) => a.status === 403);
    const accepted = answers.filter((a) => a.status === 201).map((a) => a.json<{ id: string; state: string }>());
    expect(refused).toHaveLength(10);
    for (const r of refused) expect(r.json()).toMatchObject({ error: 'quota_exceeded', limit: 'max_cores', requested: 16 });
    expect(accepted).toHaveLength(190);
    // The limit made jobs wait. Admitted at once may be more than three in all: an early job can end (pushed
    // by the engine the moment it does) before a later submission is decided, freeing its place; the
    // sampler and the engine's clock below check that no more than three ever ran at once.
    expect(accepted.filter((a) => a.state === 'pending').length).toBeGreaterThan(0);
    const finals = await Promise.all(accepted.map((a) => waitState('erin', a.id, ['succeeded', 'failed', 'cancelled'], 170_000)));
    sampling = false;
    await sampler;
    expect(finals.filter((f) => f.state !== 'succeeded')).toEqual([]);
    expect(maxHeld).toBe(3);
    // The engine's own clock agrees: never more than three of erin's jobs ran at once.
    const edges = finals.flatMap((f) => [
      { t: Date.parse(f.started_at!), d: 1 },
      { t: Date.parse(f.finished_at!), d: -1 },
    ]);
    edges.sort((a, b) => a.t - b.t || a.d - b.d);
    let now = 0;
    let most = 0;
    for (const e of edges) most = Math.max(most, (now += e.d));
    expect(most).toBeLessThanOrEqual(3);
    const q = await quota('erin');
    expect(q.usage).toMatchObject({ running_jobs: 0, cores: 0 });
    expect(q.usage.core_seconds_24h).toBeGreaterThan(0);
  }, 240_000);

  it('releases usage after a failure, with the error', async () => {
    const failed = await submitted('alice', spec(FAIL));
    const done = await waitState('alice', failed.id, ['succeeded', 'failed']);
    expect(done.state).toBe('failed');
    expect(done.error).toContain('boom in partition');
    expect((await quota('alice')).usage).toMatchObject({ running_jobs: 0, cores: 0 });
  });

  it("charges core-seconds to the rolling day and refuses new jobs once the day's core-hours are spent", async () => {
    const burner = await submitted('gina', spec(BURN(1.2), { partitions: [0, 1] }));
    const done = await waitState('gina', burner.id, ['succeeded', 'failed']);
    expect(done.state).toBe('succeeded');
    expect(done.core_seconds).toBeGreaterThan(1.8);
    const next = await submit('gina', spec(COPY));
    expect(next.status).toBe(403);
    expect(next.json()).toMatchObject({ error: 'quota_exceeded', limit: 'core_hours_per_day', max: 0.0005 });
    expect((await quota('gina')).usage.core_seconds_24h).toBeGreaterThan(1.8);
  });
});

describe('failures the gateway survives', () => {
  it('keeps a running job’s quota while the engine is killed, and releases it when the job ends after the restart', async () => {
    const job = await submitted('alice', spec(GATED));
    await waitState('alice', job.id, ['running']);
    const seen = stack.gateway.output().length;
    await stack.engine.stop('SIGKILL');
    // A reconciler pass has found the engine gone (and kept the quota, as it says) before we look.
    await until(() => stack.gateway.output().slice(seen).includes('backend unreachable; jobs keep their quota until it answers'), 10_000, 'a reconciler pass without the engine');
    expect((await quota('alice')).usage.running_jobs).toBe(1);
    await stack.startEngine();
    await release(job.id); // in the area the restarted engine made again
    expect((await waitState('alice', job.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await quota('alice')).usage.running_jobs).toBe(0);
  });

  it('releases the quota of a job the engine lost (restarted without its state), saying so', async () => {
    const job = await submitted('alice', spec(SLOW(30)));
    await waitState('alice', job.id, ['running']);
    await stack.engine.stop('SIGKILL');
    const state = join(stack.home, 'var', 'engine');
    renameSync(state, `${state}.lost`);
    await stack.startEngine();
    const lost = await waitState('alice', job.id, ['succeeded', 'failed', 'cancelled']);
    expect(lost).toMatchObject({ state: 'failed', error: expect.stringContaining('lost the job') });
    expect((await quota('alice')).usage.running_jobs).toBe(0);
  });

  it('keeps pending jobs across a gateway restart, then runs them', async () => {
    const first = await submitted('frank', spec(SLOW(3)));
    const second = await submitted('frank', spec(COPY));
    expect(second.state).toBe('pending');
    await stack.gateway.stop('SIGKILL');
    await stack.startGateway();
    const after = await view('frank', second.id);
    expect(after.state === 'pending' || after.state === 'queued' || after.state === 'running' || after.state === 'succeeded').toBe(true);
    // Still waiting, or admitted from the queue since the view (the first job's end is pushed to the gateway the moment it comes).
    if (after.state === 'pending') expect([[second.id], []]).toContainEqual((await quota('frank')).pending.map((p) => p.id));
    expect((await waitState('frank', first.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await waitState('frank', second.id, ['succeeded', 'failed'])).state).toBe('succeeded');
    expect((await quota('frank')).usage.running_jobs).toBe(0);
  });
});

describe('one user’s jobs are theirs', () => {
  it('hides a job from other users (404 to see, read logs of, or cancel), and shows it to an admin', async () => {
    const job = await submitted('alice', spec(SLOW(2)));
    for (const [method, path] of [['GET', `/v1/jobs/${job.id}`], ['GET', `/v1/jobs/${job.id}/logs`], ['DELETE', `/v1/jobs/${job.id}`]] as const) {
      const answer = await stack.api(path, tokens.dave, { method });
      expect(answer.status, `${method} ${path}`).toBe(404);
      expect(answer.json()).toMatchObject({ error: 'not_found', message: `no job ${job.id}` });
    }
    expect((await stack.api('/v1/jobs', tokens.dave)).json<{ jobs: View[] }>().jobs.map((j) => j.id)).not.toContain(job.id);
    expect((await stack.api('/v1/jobs?all=1', tokens.carol)).status).toBe(403);
    expect((await stack.api('/v1/jobs?all=1', tokens.bob)).json<{ jobs: View[] }>().jobs.map((j) => j.id)).toContain(job.id);
    expect((await stack.api(`/v1/jobs/${job.id}`, tokens.bob)).json<View>().user).toBe('alice');
    // Looking at someone else's job is a decision like any other: both answers are in the trail.
    const looks = stack.auditEvents().filter((e) => e.object === `job:${job.id}` && (e.action === 'job.read' || e.action === 'job.cancel'));
    expect(looks).toContainEqual(expect.objectContaining({ action: 'job.read', decision: 'allow', actor: expect.objectContaining({ user: 'bob' }), details: { owner: 'alice', requested: 'admin', rule_line: expect.stringMatching(/^policy\.csv:\d+$/) } }));
    expect(looks).toContainEqual(expect.objectContaining({ action: 'job.read', decision: 'deny', actor: expect.objectContaining({ user: 'dave' }) }));
    expect(looks).toContainEqual(expect.objectContaining({ action: 'job.cancel', decision: 'deny', actor: expect.objectContaining({ user: 'dave' }) }));
    // Its owner follows the log until the job ends.
    const followed = await stack.api(`/v1/jobs/${job.id}/logs?follow=1`, tokens.alice);
    expect(followed.status).toBe(200);
    expect(followed.body).toMatch(/succeeded/);
    // The status may come from the cache for jobs.status_cache_ms (bob's look above may have filled it).
    await until(async () => ((await view('alice', job.id)).state === 'succeeded' ? true : undefined), 5000, 'the job to show succeeded');
  });

  it('applies a lowered quota to the next admission, never to a running job', async () => {
    const running = await submitted('alice', spec(GATED, { cores: 2 }));
    appendFileSync(join(stack.policies, 'policy.csv'), 'p2, user:alice, max_cores, 1\n');
    await until(async () => ((await quota('alice')).limits.max_cores!.value === 1 ? true : undefined), 10_000, 'the lowered quota');
    const refused = await submit('alice', spec(COPY, { cores: 2 }));
    expect(refused.json()).toMatchObject({ error: 'quota_exceeded', limit: 'max_cores', max: 1 });
    // The 2-core job admitted before the change still runs, and ends well, under the lowered quota.
    expect((await view('alice', running.id)).state).not.toMatch(/^(failed|cancelled)$/);
    await release(running.id);
    expect((await waitState('alice', running.id, ['succeeded', 'failed', 'cancelled'])).state).toBe('succeeded');
  });
});

describe('the data scientist’s commands', () => {
  /** A CLI config folder holding the user's saved login, as `gatehouse login --sso` leaves it. */
  async function cliEnv(user: string): Promise<Record<string, string>> {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), `gatehouse-home-${user}-`)), GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.home, 'certs', 'ca.crt') };
    const cli = startCli(['login', '--sso', '--no-browser', '--json'], env);
    const [, url] = await cli.waitFor(/or open (\S+)/);
    expect((await approveDevice(url!, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
    expect((await cli.done).code).toBe(0);
    return env;
  }

  it('submits and waits, lists, shows status and logs, cancels and shows the quota', async () => {
    const env = await cliEnv('frank');
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-jobsrc-'));
    writeFileSync(join(dir, 'copy_rows.py'), COPY);
    writeFileSync(join(dir, 'slow.py'), SLOW(30));
    const run = (args: string[]) => runCli(args, { env, timeoutMs: 90_000 });

    const waited = await run(['submit', '--input', 'scratch/tiny', '--output', 'scratch/cli-copy', '--python', join(dir, 'copy_rows.py'), '--wait']);
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stdout).toMatch(/succeeded: 2\/2 partitions, rows 6 → 6/);
    const id = /submitted job (j[0-9a-f]{12})/.exec(waited.stdout + waited.stderr)![1]!;

    const listed = JSON.parse((await run(['jobs', '--json'])).stdout) as { jobs: View[] };
    expect(listed.jobs[0]).toMatchObject({ id, state: 'succeeded', user: 'frank' });
    expect((await run(['jobs'])).stdout).toMatch(new RegExp(`${id}\\s+copy_rows\\s+succeeded`));
    const status = await run(['status', id]);
    expect(status.stdout).toContain('succeeded');
    expect(status.stdout).toContain('scratch/cli-copy');
    expect((await run(['logs', id])).stdout).toMatch(/submitted by frank[\s\S]*succeeded/);
    expect((await run(['datasets'])).stdout).toMatch(/scratch\/cli-copy/);

    const slow = JSON.parse((await run(['submit', '--input', 'scratch/tiny', '--output', 'scratch/cli-slow', '--python', join(dir, 'slow.py'), '--json'])).stdout) as { id: string; state: string };
    expect(slow.state).toBe('queued');
    const parked = JSON.parse((await run(['submit', '--input', 'scratch/tiny', '--output', 'scratch/cli-parked', '--python', join(dir, 'copy_rows.py'), '--json'])).stdout) as { id: string; state: string; reason: string };
    expect(parked).toMatchObject({ state: 'pending', reason: 'quota: jobs 1/1 in use' });
    const quotaText = (await run(['quota'])).stdout;
    expect(quotaText).toContain('p2, user:frank, max_concurrent_jobs, 1');
    expect(quotaText).toContain(parked.id);
    expect(quotaText).toContain('quota: jobs 1/1 in use');
    const cancelled = await run(['cancel', parked.id]);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toContain(`cancelled job ${parked.id}`);
    expect((await run(['cancel', slow.id])).code).toBe(0);
    const again = await run(['cancel', slow.id]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);

    const greedy = await run(['submit', '--input', 'scratch/tiny', '--output', 'scratch/cli-greedy', '--python', join(dir, 'copy_rows.py'), '--cores', '16']);
    expect(greedy.code).toBe(4); // refused by quota
    expect(greedy.stderr.trim()).toBe('gatehouse submit: quota: 16 cores requested, the limit is 8 (quota_exceeded: max_cores, used 0, requested 16, max 8)');
    const nobody = await run(['status', 'j000000000000']);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr.trim()).toBe('gatehouse status: no job j000000000000');
  }, 120_000);
});

describe('pending jobs and policy changes', () => {
  it('decides a pending job’s datasets again when it leaves the queue: revoked access fails it, audited', async () => {
    const file = join(stack.policies, 'policy.csv');
    const before = readFileSync(file, 'utf8');
    const version = async () => (await quota('frank')).policy_version;
    const running = await submitted('frank', spec(SLOW(30)));
    const parked = await submitted('frank', spec(COPY));
    expect(parked.state).toBe('pending');
    const v0 = await version();
    appendFileSync(file, 'p, user:frank, dataset:scratch/tiny, read, deny\n');
    await until(async () => ((await version()) !== v0 ? true : undefined), 10_000, 'the reload');
    try {
      await stack.api(`/v1/jobs/${running.id}`, tokens.frank, { method: 'DELETE' });
      const failed = await waitState('frank', parked.id, ['succeeded', 'failed', 'cancelled']);
      expect(failed).toMatchObject({ state: 'failed', error: expect.stringContaining('no longer allowed when admitted from the queue: denied by') });
      expect(stack.auditEvents()).toContainEqual(expect.objectContaining({ action: 'dataset.authorize', object: 'dataset:scratch/tiny', decision: 'deny', details: expect.objectContaining({ job: parked.id, leaving_queue: true, requested: 'read' }) }));
      expect((await quota('frank')).usage.running_jobs).toBe(0);
    } finally {
      writeFileSync(file, before);
      await until(async () => ((await version()) === v0 ? true : undefined), 10_000, 'the restore');
    }
  });
});
