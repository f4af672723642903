// A job that waits in the queue is decided again as it leaves it, with who its owner is then
// (JobBook.dispatch, personNow from src/auth/directory-check.ts), not who they were at submission. The
// attacker is a person IT has deleted, or taken out of a group, in the directory: before, their queued
// jobs (up to jobs.max_pending_per_user) still ran later and read data as them. Real slapd (behind a
// door the test can shut), engine and gateway; the quota (max_concurrent_jobs 1) makes a second job wait.
// Its quota too: a pending job waits on the limits of the groups the directory gives as the queue moves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { type Door, openDoor } from '../support/door.js';
import { GATED, releaseGated } from '../support/gated-job.js';
import { GROUPS, ldapSection, PEOPLE, passwordOf, type Slapd, startSlapd } from '../support/slapd.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let slapd: Slapd;
let door: Door;
let stack: Stack;

beforeAll(async () => {
  slapd = await startSlapd();
  const target = new URL(slapd.url);
  door = await openDoor(target.hostname, Number(target.port));
  stack = await Stack.start({
    policyLines: [
      'p2, user:alice, max_concurrent_jobs, 1',
      // Data stewards (alice, beside analysts) write steward/*: leaving analysts keeps that access and
      // takes her back to the default quota (max_job_runtime_s 1 h against the analysts' 4 h).
      'g, group:data-stewards, role:stewards',
      'p, role:stewards, dataset:scratch/*, read, allow',
      'p, role:stewards, dataset:steward/*, write, allow',
      // Frank (a POSIX account named by his gecos, slurm.user_attribute) writes steward/* too.
      'p, user:frank, dataset:scratch/*, read, allow',
      'p, user:frank, dataset:steward/*, write, allow',
      'p2, user:frank, max_concurrent_jobs, 1',
    ],
    config: { ldap: ldapSection(slapd, `ldap://127.0.0.1:${door.port}/`), slurm: { user_attribute: 'gecos' } } });
  await writeDataset(stack.dataRoot, 'scratch/ledger', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  door?.close();
  await slapd?.stop();
});

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const spec = (output: string, source: string, timeLimit = 120): JobSpec => ({ name: 'q', input: 'scratch/ledger', output, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: timeLimit }, max_attempts: 1 });
/** The analysts group's one member (groupOfNames must keep one): alice, or bob in her place. */
const analystsAre = (uid: string) => `dn: cn=analysts,${GROUPS}\nchangetype: modify\nreplace: member\nmember: uid=${uid},${PEOPLE}\n`;

type JobView = { id: string; state: string; error?: string | null; reason?: string | null };

/** Alice runs a gated job and queues a copy behind it (her quota is one job at a time): the queued job's id. */
async function queueBehindRunning(output: string, timeLimit = 120, who = 'alice'): Promise<{ running: string; queued: string }> {
  const token = await tokenOf(who);
  const first = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(`${output}-first`, GATED) });
  expect(first.status, first.body).toBe(201);
  const queued = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(output, COPY, timeLimit) });
  expect(queued.json()).toMatchObject({ state: 'pending' });
  return { running: first.json<{ id: string }>().id, queued: queued.json<{ id: string }>().id };
}

async function tokenOf(who: string): Promise<string> {
  const login = await stack.api('/v1/auth/ldap', undefined, { method: 'POST', body: { username: who, password: passwordOf(who) } });
  expect(login.status, login.body).toBe(200);
  return login.json<{ access_token: string }>().access_token;
}

async function view(id: string): Promise<JobView> {
  const admin = await stack.login('bob'); // an admin of the development provider sees every job
  return (await stack.api(`/v1/jobs/${id}`, admin)).json<JobView>();
}

const ENDED = ['succeeded', 'failed', 'cancelled'];
const ended = (id: string): Promise<JobView> => until(async () => ((s) => (ENDED.includes(s.state) ? s : undefined))(await view(id)), 60_000, `job ${id} ended`);
const finishOf = (id: string) => stack.auditEvents().find((e) => e.action === 'job.finish' && e.object === `job:${id}`);

describe('a job leaving the queue is decided with its owner as the directory has them then', () => {
  it('is decided on the groups the directory gives now: taken out of a group, the queued job is refused', async () => {
    const { running, queued } = await queueBehindRunning('scratch/after-regroup');
    await slapd.change(analystsAre('bob')); // scratch/* is written by analysts only
    try {
      await releaseGated(stack.dataRoot, running);
      const end = await ended(queued);
      expect(end.state).toBe('failed');
      expect(end.error).toContain('no longer allowed');
      expect(finishOf(queued)).toMatchObject({ decision: 'error' });
      expect(finishOf(queued)?.actor.groups).not.toContain('analysts');
    } finally {
      await slapd.change(analystsAre('alice'));
    }
  }, 120_000);

  it('waits on the quota of the groups the directory gives now: out of a bigger quota, a job that no longer fits is refused', async () => {
    // Two hours: within the analysts' max_job_runtime_s (4 h) when queued, over the default's (1 h) once she is not one.
    const { running, queued } = await queueBehindRunning('steward/after-regroup', 7200);
    await slapd.change(analystsAre('bob'));
    try {
      await releaseGated(stack.dataRoot, running);
      const end = await ended(queued);
      expect(end.state).toBe('failed');
      expect(end.error).toContain('the longest allowed is 3600 s');
      const reject = stack.auditEvents().find((e) => e.action === 'quota.reject' && e.object === `job:${queued}`);
      expect(reject).toMatchObject({ decision: 'deny', details: { limit: 'max_job_runtime_s', max: 3600 } });
      // review34: the trail names the groups the decision was made on, not those she submitted with.
      expect(reject?.actor.groups).not.toContain('analysts');
      expect(finishOf(queued)?.actor.groups).not.toContain('analysts');
    } finally {
      await slapd.change(analystsAre('alice'));
    }
  }, 120_000);

  it('waits while the directory cannot be asked, and runs once it answers', async () => {
    const { running, queued } = await queueBehindRunning('scratch/after-outage');
    door.shut = true;
    try {
      await releaseGated(stack.dataRoot, running);
      // Neither refused for the outage nor run unconfirmed: it says what it waits for.
      const waiting = await until(async () => ((s) => (s.reason?.includes('waiting for the directory') ? s : undefined))(await view(queued)), 60_000, `job ${queued} waiting for the directory`);
      expect(ENDED).not.toContain(waiting.state);
    } finally {
      door.shut = false;
    }
    expect((await ended(queued)).state).toBe('succeeded');
  }, 120_000);

  // review34: the quota half asked the directory before the section but, when it could not answer,
  // admitted on the groups the job was submitted with; dispatch then waited for the directory and
  // decided only the datasets on the new groups. Out of analysts during an outage, the 2-hour job
  // ran on the analysts' quota once the directory was back.
  it('is not admitted on its old groups while the directory cannot be asked: out of a bigger quota, refused once it answers', async () => {
    const { running, queued } = await queueBehindRunning('steward/after-outage-regroup', 7200);
    // The outage first: while jobs are live the reconciler drains every poll, and a pass that asked the
    // directory between the change and the shut refused the job on its answer before the outage began
    // (a CI flake: 'waiting for the directory' never shown). The shut also cuts a question in flight.
    try {
      door.shut = true;
      try {
        await slapd.change(analystsAre('bob'));
        await releaseGated(stack.dataRoot, running);
        await until(async () => ((s) => (s.reason?.includes('waiting for the directory') ? s : undefined))(await view(queued)), 60_000, `job ${queued} waiting for the directory`);
      } finally {
        door.shut = false;
      }
      const end = await ended(queued);
      expect(end.state).toBe('failed');
      expect(end.error).toContain('the longest allowed is 3600 s');
    } finally {
      await slapd.change(analystsAre('alice'));
    }
  }, 120_000);

  it('is refused once the directory no longer has its owner, logged out or not', async () => {
    const { running, queued } = await queueBehindRunning('scratch/after-leaving');
    // Alice leaves the company: her entry is deleted. She never comes back to refresh her login.
    await slapd.change(`dn: uid=alice,${PEOPLE}\nchangetype: delete\n`);
    await releaseGated(stack.dataRoot, running);
    const end = await ended(queued);
    expect(end.state).toBe('failed');
    expect(end.error).toContain('account_gone');
    // On the trail, why: the refusal (with the directory's answer), then the job's end.
    const refused = stack.auditEvents().find((e) => e.action === 'job.admit' && e.object === `job:${queued}` && e.decision === 'deny');
    expect(refused).toMatchObject({ reason: 'owner_gone', details: { directory: expect.stringContaining('account_gone') } });
    expect(finishOf(queued)).toMatchObject({ decision: 'error', details: { state: 'failed' } });
  }, 120_000);

  it('runs as the cluster account the directory names as it leaves the queue, not the one it was submitted with', async () => {
    const { running, queued } = await queueBehindRunning('steward/after-account', 120, 'frank');
    // IT gives frank's old account to someone else and frank a new one while his job waits.
    const gecos = (value: string) => `dn: uid=frank,${PEOPLE}\nchangetype: modify\nreplace: gecos\ngecos: ${value}\n`;
    await slapd.change(gecos('fnew'));
    try {
      await releaseGated(stack.dataRoot, running);
      expect((await ended(queued)).state).toBe('succeeded');
      const submitted = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${queued}`);
      expect(submitted?.details?.posix_user).toBe('fposix');
      const admitted = stack.auditEvents().find((e) => e.action === 'job.admit' && e.object === `job:${queued}` && e.decision === 'allow');
      expect(admitted?.details?.posix_user).toBe('fnew');
    } finally {
      await slapd.change(gecos('fposix'));
    }
  }, 120_000);
});
