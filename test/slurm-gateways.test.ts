// Two gateways over one PostgreSQL in front of one Slurm cluster: each a real `gatehouse gateway`
// process with its own state.dir and audit trail, both mounting the same data.root and slurm.jobs_dir
// (here: the same paths on one host). A Slurm job submitted through one is seen, its logs read, and
// it is finished or cancelled through the other; after the gateway that submitted a job is killed
// (-9), the other, now the leader, finishes it: the output committed once, the usage released once.
// The store is a private PostgreSQL server of this file (like test/replicas.test.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec, JobStatus } from '../src/wire/index.js';
import { readTrail } from './support/audit-trail.js';
import type { EngineProcess } from './support/engine.js';
import { type Postgres, startPostgres } from './support/postgres.js';
import { ROOT } from './support/gatehouse.js';
import { type SlurmCluster, slurmTaskRuntime, startSlurm } from './support/slurm.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

type View = JobStatus & { backend: string };
interface Quota {
  usage: { running_jobs: number; cores: number; memory_mb: number; core_seconds_24h: number };
}

let slurm: SlurmCluster;
let pg: Postgres;
let stack: Stack;
let b: EngineProcess;
let token = '';
let person = '';
let outputs = 0;
/** Every job submitted: the person's charges of the day are theirs. */
const submitted: string[] = [];

/** A job whose task says it started, then waits for `flag` (a file the account can see) before copying. */
function gated(flag: string): JobSpec {
  outputs += 1;
  const argv = ['sh', '-c', `echo started-{partition}; while [ ! -e '${flag}' ]; do sleep 0.1; done; cp {input} {output}`];
  return { name: 'gated', input: 'words', output: `scratch/slurm-gw-${outputs}`, runtime: 'command', argv, backend: 'slurm', partitions: [0], resources: { cores: 1, memory_mb: 256, time_limit_s: 300 } };
}
const flagFile = (name: string) => join(slurm.workDir, `go-${name}-${Date.now()}`);

const at = (base: string) => ({
  submit: async (s: JobSpec) => {
    const r = await stack.apiAt(base, '/v1/jobs', token, { method: 'POST', body: s });
    expect(r.status, r.body).toBe(201);
    const { id } = r.json<{ id: string }>();
    submitted.push(id);
    return id;
  },
  view: async (id: string) => {
    const r = await stack.apiAt(base, `/v1/jobs/${id}`, token);
    expect(r.status, r.body).toBe(200);
    return r.json<View>();
  },
  logs: async (id: string) => (await stack.apiAt(base, `/v1/jobs/${id}/logs`, token)).body,
  cancel: (id: string) => stack.apiAt(base, `/v1/jobs/${id}`, token, { method: 'DELETE' }),
  quota: async () => (await stack.apiAt(base, '/v1/quota', token)).json<Quota>(),
});

const waitFor = (base: string, id: string, done: (v: View) => boolean, timeoutMs = 60_000) => {
  let last: View | undefined;
  return until(
    async () => {
      last = await at(base).view(id);
      return done(last) ? last : undefined;
    },
    timeoutMs,
    () => `job ${id} reaching the awaited state (last seen: ${JSON.stringify(last)})\n${slurm.logs().slice(-2000)}`,
    100,
  );
};
const ended = (v: View) => ['succeeded', 'failed', 'cancelled'].includes(v.state);

/** Slurm's own view of an array's tasks (as root, not through the gateway): their states. */
const slurmStates = (arrayJob: string) =>
  execFileSync('squeue', ['-h', '-t', 'all', '-j', arrayJob, '-o', '%T'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).trim().split('\n').filter(Boolean);

/** Every audit event of job `id`, across both gateways' trails. */
const eventsOf = (id: string) => [...stack.auditEvents(), ...readTrail(join(stack.home, 'b', 'audit'))].filter((e) => e.object === `job:${id}`);

beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, 'bin', 'gatehouse.js'), '--help'], { stdio: 'ignore' }); // dist/ up to date
  slurm = await startSlurm();
  person = slurm.user.name;
  pg = await startPostgres();
  const url = await pg.database('slurm_gateways');
  const runtime = slurmTaskRuntime(slurm);
  stack = await Stack.start({
    // preferred_username names the POSIX account: the person is the cluster's test account.
    users: { [person]: ['analysts'] },
    config: {
      store: { url, password_file: pg.passwordFile },
      jobs: { poll_ms: 100, status_cache_ms: 0 },
      slurm: { url: slurm.restUrl, jwt_key_file: slurm.jwtKeyFile, partition: slurm.partition, jobs_dir: join(slurm.workDir, 'jobs'), min_uid: slurm.user.uid, install_dir: runtime.installDir, node: runtime.node, user_claim: 'preferred_username', default: true },
    },
  });
  b = await stack.startReplica('b');
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'word\napple\nbanana\n', rows: 2 }] });
  token = await stack.login(person);
}, 180_000);

afterAll(async () => {
  await b?.stop();
  await stack?.stop();
  await pg?.stop();
  await slurm?.stop();
});

describe('two gateways over one PostgreSQL in front of one Slurm cluster', () => {
  it('serve each other’s Slurm jobs: submitted on one, seen, its logs read and finished on the other', async () => {
    const flag = flagFile('finish');
    const id = await at(stack.url).submit(gated(flag));
    const running = await waitFor(b.url, id, (v) => v.state === 'running');
    expect(running).toMatchObject({ backend: 'slurm', posix_user: person });
    await until(async () => (await at(b.url).logs(id)).includes('[p0] started-0'), 30_000, 'the task’s first line, read through the other gateway');
    writeFileSync(flag, '');
    const done = await waitFor(b.url, id, ended);
    expect(done.error).toBeNull();
    expect(done).toMatchObject({ state: 'succeeded', rows_out: 2, backend_job_id: running.backend_job_id });
    expect(await at(stack.url).view(id)).toMatchObject({ state: 'succeeded', rows_out: 2 });
    expect(await at(b.url).logs(id)).toContain('[p0] started-0'); // the kept copy, once the folder is gone
    expect(readFileSync(join(stack.dataRoot, done.output, 'part-00000.csv'), 'utf8')).toBe('word\napple\nbanana\n');
    expect(eventsOf(id).filter((e) => e.action === 'job.finish')).toHaveLength(1);
  }, 120_000);

  it('cancels through the other gateway, leaving no task on Slurm', async () => {
    const id = await at(stack.url).submit(gated(flagFile('never')));
    const running = await waitFor(stack.url, id, (v) => v.state === 'running');
    const r = await at(b.url).cancel(id);
    expect(r.status, r.body).toBe(200);
    expect(r.json<View>().state).toBe('cancelled');
    expect(slurmStates(running.backend_job_id!)).toEqual(['CANCELLED']);
    expect((await at(stack.url).view(id)).state).toBe('cancelled');
    expect((await at(b.url).quota()).usage).toMatchObject({ running_jobs: 0, cores: 0 });
  }, 90_000);

  it('finishes a job whose gateway was killed: the other leads, commits its output once and releases its usage once', async () => {
    const role = async (base: string) => (await stack.apiAt(base, '/readyz')).json<{ checks: Record<string, string> }>().checks.job_path;
    // The leader submits and is killed: the survivor must take the lead to finish the job.
    const [killed, survivor] = (await role(stack.url)) === 'leader' ? [stack.gateway, b] : [b, stack.gateway];
    const flag = flagFile('orphan');
    const id = await at(killed.url).submit(gated(flag));
    const running = await waitFor(survivor.url, id, (v) => v.state === 'running');
    expect((await at(survivor.url).quota()).usage).toMatchObject({ running_jobs: 1, cores: 1 });
    killed.child.kill('SIGKILL');
    await killed.exited;
    // The survivor takes the job path's lead, then learns the end on its own (no one asks it about the job).
    await until(async () => (await role(survivor.url)) === 'leader', 30_000, 'the survivor leading');
    writeFileSync(flag, '');
    await until(() => slurmStates(running.backend_job_id!).join() === 'COMPLETED', 60_000, 'the job to end on Slurm');
    await until(async () => eventsOf(id).some((e) => e.action === 'job.finish'), 60_000, 'the leader to finish the job');

    const done = await at(survivor.url).view(id);
    expect(done).toMatchObject({ state: 'succeeded', rows_out: 2, backend_job_id: running.backend_job_id, error: null });
    const manifest = JSON.parse(readFileSync(join(stack.dataRoot, done.output, '_dataset.json'), 'utf8'));
    expect(manifest).toMatchObject({ owner: person, produced_by: id });
    expect(readdirSync(join(stack.dataRoot, '.slurm-staging'))).not.toContain(id); // no commit half done or repeated
    expect(existsSync(join(slurm.workDir, 'jobs', id))).toBe(false);
    expect(eventsOf(id).filter((e) => e.action === 'job.finish')).toHaveLength(1);
    const { usage } = await at(survivor.url).quota();
    expect(usage).toMatchObject({ running_jobs: 0, cores: 0, memory_mb: 0 });
    expect(done.core_seconds).toBeGreaterThan(0);
    // Charged once each: the day's usage is the sum of this person's jobs' own core-seconds.
    const charged = (await Promise.all(submitted.map((j) => at(survivor.url).view(j)))).reduce((sum, v) => sum + v.core_seconds, 0);
    expect(usage.core_seconds_24h).toBeCloseTo(charged, 6);
  }, 150_000);
});
