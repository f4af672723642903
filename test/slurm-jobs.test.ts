// Slurm jobs end to end through a real gateway (built in this process with buildGateway: real store,
// policy, identity, audit trail, HTTPS; backends from createBackends) in front of a real private
// Slurm cluster (test/support/slurm.ts) and a real bundled engine process to compare with. People
// log in with a POSIX account (gh-alice, the cluster's test account); their `backend: slurm` jobs
// run as that account, are bound by the same policy quotas, cancel, time out, retry, survive a
// slurmrestd kill and a gateway restart, and are audited with Slurm's job id and the account.
//
// The gateway's data.root is 0700 (closed to gh-alice: the backend stages the input into the job's
// folder); the engine has a data root of its own holding the same input, so the same job can run on
// both and their outputs be compared byte for byte.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { createIdentityService, ensureServiceCertificates, type IdentityService } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { type Config, loadConfig } from '../src/config/index.js';
import { buildGateway } from '../src/gateway/index.js';
import { PolicyReloader } from '../src/policy/index.js';
import { closeBackends, type ComputeBackend, createBackends } from '../src/proxy/index.js';
import type { Store } from '../src/store/index.js';
import { type JobSpec, type JobStatus, readTlsMaterial } from '../src/wire/index.js';
import { readTrail } from './support/audit-trail.js';
import { type EngineProcess, startEngineProcess } from './support/engine.js';
import { ROOT, type Sandbox, sandbox, TEST_POLICIES } from './support/gatehouse.js';
import { fetchTls, type Response } from './support/https.js';
import { type SlurmCluster, slurmTaskRuntime, startSlurm } from './support/slurm.js';
import { openStoreOf } from './support/test-store.js';
import { until } from './support/until.js';

const run = promisify(execFile);

let slurm: SlurmCluster;
let home: string;
let box: Sandbox;
let config: Config;
let engine: EngineProcess;
let engineRoot: string;
let dataRoot: string;
let jobsDir: string;
let store: Store;
let policy: PolicyReloader;
let identity: IdentityService;
let audit: AuditTrail;
let auditDir: string;
let gateway: { app: FastifyInstance; backends: ComputeBackend[] } | undefined;
let url = '';
let ca = '';
const tokens: Record<string, string> = {};
/** The job that outlives its time limit: submitted first, asserted last (Slurm ends it 60-90 s after it starts). */
let timeLimited = '';

type View = JobStatus & { backend: string };
interface Quota {
  usage: { running_jobs: number; cores: number; memory_mb: number; core_seconds_24h: number };
  pending: { id: string }[];
}

const PARTITIONS = [['word', 'apple', 'banana'], ['word', 'cherry'], ['word', 'date', 'elder', 'fig']];
/** Everyone is an analyst; each test has its own person, so quota usage is one test's alone. */
const PEOPLE = ['ana', 'dora', 'carl', 'rex', 'gus', 'tina'];

function api(path: string, who: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  return fetchTls(`${url}${path}`, {
    ca,
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${tokens[who]}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
}

const job = (o: Partial<JobSpec>): JobSpec => ({ name: 'upper', input: 'words', output: 'scratch-x/out', runtime: 'command', argv: ['cp', '{input}', '{output}'], backend: 'slurm', resources: { cores: 1, memory_mb: 256, time_limit_s: 300 }, ...o });

async function submit(who: string, spec: JobSpec): Promise<{ id: string; state: string; reason: string | null }> {
  const r = await api('/v1/jobs', who, { method: 'POST', body: spec });
  expect(r.status, r.body).toBe(201);
  return r.json();
}

const view = async (id: string, who: string): Promise<View> => {
  const r = await api(`/v1/jobs/${id}`, who);
  expect(r.status, r.body).toBe(200);
  return r.json<View>();
};

/** The job once the gateway says it is in a state `done` accepts (default: ended). */
function waitFor(id: string, who: string, done: (v: View) => boolean = (v) => ['succeeded', 'failed', 'cancelled'].includes(v.state), timeoutMs = 60_000): Promise<View> {
  let last: View | undefined;
  return until(
    async () => {
      last = await view(id, who);
      return done(last) ? last : undefined;
    },
    timeoutMs,
    () => `job ${id} reaching the awaited state (last seen: ${JSON.stringify(last)})\n${slurm.logs().slice(-3000)}`,
    100,
  );
}

const quota = async (who: string): Promise<Quota> => (await api('/v1/quota', who)).json<Quota>();

/** Slurm's own view, from its command-line tools as root (not through the gateway or slurmrestd). */
const slurmEnv = (): NodeJS.ProcessEnv => ({ ...process.env, ...slurm.env });

/** Every task Slurm knows of (finished ones stay for MinJobAge): array job id, task, state, job name. */
async function squeueAll(): Promise<{ arrayJob: string; task: string; state: string; name: string }[]> {
  const { stdout } = await run('squeue', ['-h', '-t', 'all', '-o', '%F|%K|%T|%j'], { env: slurmEnv() });
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [arrayJob, task, state, name] = line.split('|') as [string, string, string, string];
      return { arrayJob, task, state, name };
    });
}

const ENDED = new Set(['COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE']);

/** The tasks of Slurm job `arrayJob` that have not ended (pending, running, completing...). */
async function notEnded(arrayJob: string): Promise<string[]> {
  return (await squeueAll()).filter((t) => t.arrayJob === arrayJob && !ENDED.has(t.state)).map((t) => `${t.task}:${t.state}`);
}

/** `scontrol show job` for an array: one field map per task. */
function slurmRecord(arrayJob: string): Record<string, string>[] {
  const out = execFileSync('scontrol', ['-o', 'show', 'job', arrayJob], { env: slurmEnv(), encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.split(/\s+/).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}

/** Processes whose command line is exactly `argv` (a job's processes live in the cluster's PID namespace, but /proc shows them). */
function processesRunning(argv: string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8') === wanted) found.push(Number(pid));
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

const manifestOf = (root: string, name: string) => JSON.parse(readFileSync(join(root, name, '_dataset.json'), 'utf8'));

async function openGateway(): Promise<void> {
  const backends = createBackends(config, readTlsMaterial(config.certs.dir, 'gatewayClient'), store);
  const tls = readTlsMaterial(config.certs.dir, 'gateway');
  ca = tls.ca;
  const app = await buildGateway({
    tls,
    logLevel: 'warn',
    bodyLimit: config.server.body_limit_bytes,
    store,
    policy,
    backends,
    jobs: { maxPendingPerUser: 8, pollMs: 200, statusCacheMs: 0 },
    identity,
    publicUrl: () => url,
    audit,
    auditRetention: { maxAgeMs: 0, archiveDir: join(auditDir, 'archive') },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  gateway = { app, backends };
}

async function closeGateway(): Promise<void> {
  if (gateway === undefined) return;
  await gateway.app.close();
  closeBackends(gateway.backends);
  gateway = undefined;
}

beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, 'bin', 'gatehouse.js'), '--help'], { stdio: 'ignore' }); // dist/ up to date, built as root
  slurm = await startSlurm();
  home = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-jobs-'));
  const policies = join(home, 'policies');
  cpSync(TEST_POLICIES, policies, { recursive: true });
  // dora races jobs against a limit of one at a time; carl has one running and one waiting to cancel.
  writeFileSync(join(policies, 'policy.csv'), `${readFileSync(join(policies, 'policy.csv'), 'utf8')}\np2, user:dora, max_concurrent_jobs, 1\np2, user:carl, max_concurrent_jobs, 1\n`);

  // The engine's data root, which its task uids must reach; the gateway's (Slurm's) is closed to them.
  engineRoot = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-jobs-engine-'));
  chmodSync(engineRoot, 0o711);
  dataRoot = join(home, 'data');
  mkdirSync(dataRoot, { mode: 0o700 });
  chmodSync(dataRoot, 0o700);
  jobsDir = join(slurm.workDir, 'jobs');
  box = sandbox({ data: { root: engineRoot }, state: { dir: join(home, 'var') }, certs: { dir: join(home, 'certs') }, policies: { dir: policies }, log: { level: 'warn' } });
  config = loadConfig({ path: box.configFile, env: {} }).config;
  ensureServiceCertificates(config);
  for (const root of [engineRoot, dataRoot]) {
    await writeDataset(root, 'words', { format: 'csv', columns: ['word'], owner: 'platform', labels: ['internal'], produced_by: 'test', partitions: PARTITIONS.map((rows) => ({ text: `${rows.join('\n')}\n`, rows: rows.length - 1 })) });
  }
  engine = await startEngineProcess(box);
  config.engine.port = Number(new URL(engine.url).port);
  config.data.root = dataRoot;
  // gh-alice is a --system account (uid < 1000): the floor is its uid here, 1000 in production.
  // The checkout (or a view of it the account can reach) and node the tasks run.
  const runtime = slurmTaskRuntime(slurm);
  config.slurm = { ...config.slurm, url: slurm.restUrl, jwt_key_file: slurm.jwtKeyFile, partition: slurm.partition, jobs_dir: jobsDir, min_uid: slurm.user.uid, install_dir: runtime.installDir, node: runtime.node };

  store = await openStoreOf(config);
  policy = await PolicyReloader.start(policies, { requireTests: true });
  identity = await createIdentityService(config, store);
  auditDir = join(home, 'audit');
  audit = await AuditTrail.open({ dir: auditDir, key: loadAuditKey(config.certs.dir), checkpointMs: 3_600_000 });
  await openGateway();
  for (const user of PEOPLE) tokens[user] = (await identity.tokens.login({ user, groups: ['analysts'], auth_method: 'oidc', posix_user: slurm.user.name })).access_token;
  tokens.nina = (await identity.tokens.login({ user: 'nina', groups: ['analysts'], auth_method: 'oidc' })).access_token;

  // Slurm enforces a time limit in minutes, checked about every 30 s: this job's wait overlaps the others.
  timeLimited = (await submit('tina', job({ name: 'too-long', output: 'scratch-tina/never', argv: ['sleep', '597'], partitions: [0], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } }))).id;
}, 120_000);

afterAll(async () => {
  await closeGateway();
  policy?.close();
  identity?.close();
  await audit?.close();
  await store?.close();
  await engine?.stop();
  await slurm?.stop();
  box?.remove();
  if (home) rmSync(home, { recursive: true, force: true });
  if (engineRoot) rmSync(engineRoot, { recursive: true, force: true });
});

describe('a Slurm job through the gateway', () => {
  let firstJob = '';

  it("runs as the person's Unix account, commits with owner, labels and produced_by, and matches the bundled engine byte for byte", async () => {
    const argv = ['sh', '-c', 'tr a-z A-Z < {input} > {output} && { id -un || id -u; } >&2'];
    const onSlurm = await submit('ana', job({ output: 'scratch-ana/upper-slurm', argv, labels: ['scratch'], resources: { cores: 2, memory_mb: 256, time_limit_s: 300 } }));
    const onEngine = await submit('ana', job({ output: 'scratch-ana/upper-engine', argv, labels: ['scratch'], backend: undefined, resources: { cores: 2, memory_mb: 256, time_limit_s: 300 } }));
    firstJob = onSlurm.id;
    const done = await waitFor(onSlurm.id, 'ana');
    expect(done.error).toBeNull();
    expect(done).toMatchObject({ state: 'succeeded', backend: 'slurm', posix_user: slurm.user.name, rows_in: 6, rows_out: 6, partitions: { total: 3, done: 3, failed: 0 } });
    expect(done.backend_job_id).toMatch(/^\d+$/);
    const ref = await waitFor(onEngine.id, 'ana');
    expect(ref.state, `${ref.error}\n${(await api(`/v1/jobs/${onEngine.id}/logs`, 'ana')).body}`).toBe('succeeded');

    // From inside each task, and from Slurm's own record of every task of the array.
    const logs = (await api(`/v1/jobs/${onSlurm.id}/logs`, 'ana')).body;
    for (const p of [0, 1, 2]) expect(logs).toContain(`[p${p}] stderr: ${slurm.user.name}`); // written to stderr: labelled as the engine labels it
    const tasks = slurmRecord(done.backend_job_id!);
    expect(tasks).toHaveLength(3);
    for (const t of tasks) expect(t).toMatchObject({ UserId: `${slurm.user.name}(${slurm.user.uid})`, JobName: `gatehouse-${onSlurm.id}`, JobState: 'COMPLETED', ArrayJobId: done.backend_job_id });

    const manifest = manifestOf(dataRoot, 'scratch-ana/upper-slurm');
    expect(manifest).toMatchObject({ owner: 'ana', labels: ['internal', 'scratch'], produced_by: onSlurm.id, columns: ['WORD'] });
    const reference = manifestOf(engineRoot, 'scratch-ana/upper-engine');
    expect(reference).toMatchObject({ owner: 'ana', labels: ['internal', 'scratch'], produced_by: onEngine.id });
    expect(manifest.partitions).toEqual(reference.partitions);
    for (const { file } of reference.partitions as { file: string }[]) {
      const ours = readFileSync(join(dataRoot, 'scratch-ana/upper-slurm', file));
      expect(ours.equals(readFileSync(join(engineRoot, 'scratch-ana/upper-engine', file))), file).toBe(true);
      expect(statSync(join(dataRoot, 'scratch-ana/upper-slurm', file)).uid).toBe(0); // copied out: the account keeps no hold on it
    }
    expect(readFileSync(join(dataRoot, 'scratch-ana/upper-slurm', 'part-00002.csv'), 'utf8')).toBe('WORD\nDATE\nELDER\nFIG\n');
    expect(statSync(dataRoot).mode & 0o777).toBe(0o700);
  }, 90_000);

  it('is audited with the backend, the Unix account and Slurm\'s job id', async () => {
    const trail = readTrail(auditDir).filter((e) => e.object === `job:${firstJob}`);
    const jobId = (await view(firstJob, 'ana')).backend_job_id;
    expect(trail.find((e) => e.action === 'job.submit')?.details).toMatchObject({ backend: 'slurm', posix_user: slurm.user.name });
    expect(trail.find((e) => e.action === 'job.start')?.details).toMatchObject({ backend: 'slurm', backend_job_id: jobId, posix_user: slurm.user.name });
    expect(trail.filter((e) => e.action === 'job.finish').map((e) => e.details)).toEqual([expect.objectContaining({ state: 'succeeded', backend: 'slurm', backend_job_id: jobId, posix_user: slurm.user.name })]);
  });

  it('is refused with 403 for a person without a POSIX account, and nothing reaches Slurm', async () => {
    const before = (await squeueAll()).map((t) => `${t.arrayJob}_${t.task}`);
    const folders = readdirSync(jobsDir);
    const r = await api('/v1/jobs', 'nina', { method: 'POST', body: job({ output: 'scratch-nina/out' }) });
    expect(r.status, r.body).toBe(403);
    expect(r.json<{ error: string; message: string }>()).toMatchObject({ error: 'forbidden', message: expect.stringMatching(/no POSIX account/) });
    expect((await squeueAll()).map((t) => `${t.arrayJob}_${t.task}`)).toEqual(before);
    expect(readdirSync(jobsDir)).toEqual(folders);
    expect((await api('/v1/jobs', 'nina')).json<{ jobs: unknown[] }>().jobs).toEqual([]);
    expect((await quota('nina')).usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
  });

  it("retries a failing partition per max_attempts and reports its error in the job's status", async () => {
    const argv = ['sh', '-c', 'if [ {partition} = 1 ]; then echo boom-p{partition} >&2; exit 3; fi; cp {input} {output}'];
    const { id } = await submit('ana', job({ output: 'scratch-ana/fails', argv, max_attempts: 2 }));
    const done = await waitFor(id, 'ana');
    expect(done.state).toBe('failed');
    expect(done.error).toMatch(/partition 1/);
    expect(done.error).toMatch(/boom-p1/);
    expect(done.partitions).toMatchObject({ total: 3, failed: 1, done: 2 });
    const logs = (await api(`/v1/jobs/${id}/logs`, 'ana')).body;
    expect(logs.match(/\[p1\] gatehouse-task: partition 1: command exited with exit code 3/g), logs).toHaveLength(2); // tried twice
    expect(logs).toMatch(/\[p1\] .*partition 1 failed \(attempt 1\); trying again/);
    expect(logs).not.toMatch(/attempt 2\); trying again/);
    expect(() => statSync(join(dataRoot, 'scratch-ana/fails'))).toThrow(/ENOENT/);
  }, 90_000);

  it('cancels a job held by quota before it reaches Slurm, and a running one leaving no task behind', async () => {
    const sleeper = ['sleep', '301'];
    const running = await submit('carl', job({ name: 'long', output: 'scratch-carl/long', argv: sleeper, partitions: [0] }));
    const held = await submit('carl', job({ name: 'waits', output: 'scratch-carl/waits' }));
    expect(running.state).toBe('queued');
    expect(held).toMatchObject({ state: 'pending', reason: 'quota: jobs 1/1 in use' });

    const cancelledPending = await api(`/v1/jobs/${held.id}`, 'carl', { method: 'DELETE' });
    expect(cancelledPending.status, cancelledPending.body).toBe(200);
    expect(cancelledPending.json<View>().state).toBe('cancelled');
    const pendingView = await view(held.id, 'carl');
    expect(pendingView.state).toBe('cancelled');
    expect(pendingView.backend_job_id).toBeUndefined();
    expect((await squeueAll()).filter((t) => t.name === `gatehouse-${held.id}`)).toEqual([]);

    const started = await waitFor(running.id, 'carl', (v) => v.state === 'running');
    await until(() => processesRunning(sleeper).length > 0, 30_000, 'the task running sleep 301');
    const r = await api(`/v1/jobs/${running.id}`, 'carl', { method: 'DELETE' });
    expect(r.status, r.body).toBe(200);
    expect(r.json<View>()).toMatchObject({ state: 'cancelled', partitions: { running: 0 } });
    expect(await notEnded(started.backend_job_id!)).toEqual([]);
    expect(slurmRecord(started.backend_job_id!).map((t) => t.JobState)).toEqual(['CANCELLED']);
    await until(() => processesRunning(sleeper).length === 0, 10_000, 'no sleep 301 left on the node');
    expect((await view(running.id, 'carl')).state).toBe('cancelled');
    expect((await quota('carl')).usage).toMatchObject({ running_jobs: 0, cores: 0 });
  }, 90_000);

  it('binds Slurm jobs by the policy: a race of submissions never has more than the limit on the cluster', async () => {
    // dora may run one job at a time. Counted: her jobs Slurm has at all (queued there or running), so the check
    // holds whatever the node has free (the time-limited job holds one of its CPUs meanwhile).
    const argv = ['sh', '-c', 'sleep 2; cp {input} {output}'];
    const race = await Promise.all([1, 2, 3].map((n) => submit('dora', job({ name: `race-${n}`, output: `scratch-dora/race-${n}`, argv, partitions: [0] }))));
    expect(race.map((j) => j.state).sort()).toEqual(['pending', 'pending', 'queued']);
    const names = new Set(race.map((j) => `gatehouse-${j.id}`));
    let most = 0;
    const seen = new Set<string>();
    const finals = await until(
      async () => {
        const onCluster = (await squeueAll()).filter((t) => names.has(t.name) && !ENDED.has(t.state));
        for (const t of onCluster) seen.add(t.name);
        most = Math.max(most, new Set(onCluster.map((t) => t.name)).size);
        const views = await Promise.all(race.map((j) => view(j.id, 'dora')));
        return views.every((v) => ['succeeded', 'failed', 'cancelled'].includes(v.state)) ? views : undefined;
      },
      90_000,
      'the race to end',
      100,
    );
    expect(finals.map((v) => v.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(most).toBe(1);
    expect(seen.size).toBe(3);
    // Slurm's record agrees: each job was submitted to it only after the one before had ended there.
    const records = finals.map((v) => slurmRecord(v.backend_job_id!)[0]!).sort((a, b) => a.SubmitTime!.localeCompare(b.SubmitTime!) || Number(a.JobId) - Number(b.JobId));
    for (let i = 1; i < records.length; i++) expect(records[i]!.SubmitTime! >= records[i - 1]!.EndTime!, JSON.stringify(records)).toBe(true);
    const admitted = readTrail(auditDir).filter((e) => e.action === 'job.admit' && race.some((j) => e.object === `job:${j.id}`));
    expect(admitted).toHaveLength(2);
    expect((await quota('dora')).usage).toMatchObject({ running_jobs: 0, cores: 0 });
  }, 120_000);

  it('learns the end of a job after slurmrestd is killed during it, and releases its usage once', async () => {
    const { id } = await submit('rex', job({ name: 'through-restd', output: 'scratch-rex/out', argv: ['sh', '-c', 'sleep 3; cp {input} {output}'], partitions: [0] }));
    await waitFor(id, 'rex', (v) => v.state === 'running');
    expect((await quota('rex')).usage).toMatchObject({ running_jobs: 1, cores: 1 });
    slurm.signal('slurmrestd', 'SIGKILL');
    const done = await waitFor(id, 'rex');
    expect(done.state).toBe('succeeded');
    expect(manifestOf(dataRoot, 'scratch-rex/out')).toMatchObject({ owner: 'rex', produced_by: id });
    const { usage } = await quota('rex');
    expect(usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
    expect(done.core_seconds).toBeGreaterThan(0);
    expect(usage.core_seconds_24h).toBeCloseTo(done.core_seconds, 6); // charged once
    expect(readTrail(auditDir).filter((e) => e.action === 'job.finish' && e.object === `job:${id}`)).toHaveLength(1);
  }, 90_000);

  it('learns the end of a job that ended while the gateway was away, from a new gateway over the same state', async () => {
    const { id } = await submit('gus', job({ name: 'outlives', output: 'scratch-gus/out', argv: ['sh', '-c', 'sleep 3; cp {input} {output}'], partitions: [0] }));
    const started = await waitFor(id, 'gus', (v) => v.state === 'running');
    await closeGateway();
    // Gone before the job ended; it ends on Slurm with nobody watching.
    await until(async () => (await notEnded(started.backend_job_id!)).length === 0, 60_000, 'the job to end on Slurm');
    expect(slurmRecord(started.backend_job_id!).map((t) => t.JobState)).toEqual(['COMPLETED']);

    await openGateway();
    const done = await waitFor(id, 'gus');
    expect(done).toMatchObject({ state: 'succeeded', backend_job_id: started.backend_job_id, posix_user: slurm.user.name });
    expect(manifestOf(dataRoot, 'scratch-gus/out')).toMatchObject({ owner: 'gus', produced_by: id });
    const { usage } = await quota('gus');
    expect(usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
    expect(usage.core_seconds_24h).toBeCloseTo(done.core_seconds, 6);
    const events = readTrail(auditDir).filter((e) => e.object === `job:${id}`);
    expect(events.filter((e) => e.action === 'job.start')).toHaveLength(1);
    expect(events.filter((e) => e.action === 'job.finish').map((e) => e.details)).toEqual([expect.objectContaining({ state: 'succeeded', backend_job_id: started.backend_job_id, posix_user: slurm.user.name })]);
    const rows = await store.db.selectFrom('jobs').select(['id', 'state']).where('id', '=', id).execute();
    expect(rows).toEqual([{ id, state: 'succeeded' }]);
  }, 120_000);

  // Last: submitted in beforeAll, so Slurm's minute-granular limit ran out while the others ran.
  it('ends a job that outlives its time limit as failed, naming the limit, with nothing left running', async () => {
    const done = await waitFor(timeLimited, 'tina', undefined, 150_000);
    expect(done.state).toBe('failed');
    expect(done.error).toMatch(/time limit reached on Slurm \(TIMEOUT\)/);
    expect(slurmRecord(done.backend_job_id!).map((t) => t.JobState)).toEqual(['TIMEOUT']);
    expect(await notEnded(done.backend_job_id!)).toEqual([]);
    expect(processesRunning(['sleep', '597'])).toEqual([]);
    expect((await quota('tina')).usage).toMatchObject({ running_jobs: 0, cores: 0 });
    expect(readTrail(auditDir).filter((e) => e.action === 'job.finish' && e.object === `job:${timeLimited}`)).toHaveLength(1);
  }, 160_000);
});
