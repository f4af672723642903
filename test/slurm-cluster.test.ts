// The private Slurm cluster the Slurm backend is tested against (test/support/slurm.ts, scripts/slurm/cluster):
// real munged/slurmctld/slurmd/slurmrestd, reached the way the gateway reaches it, through slurmrestd's REST API
// v0.0.38 with a self-minted HS256 token. Jobs run as a real non-root Unix account; a forged or expired token is
// refused; a cancelled job leaves no process behind; stop() leaves nothing at all.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintSlurmToken, SLURM_SCRIPT, type SlurmCluster, startSlurm } from './support/slurm.js';
import { until } from './support/until.js';

interface SlurmReply {
  errors?: { error?: string; error_number?: number; description?: string }[];
  job_id?: number;
  jobs?: { job_id: number; array_job_id?: number; array_task_id?: number | null; array_max_tasks?: number; job_state: string; user_name: string; user_id: number; group_id: number; name: string }[];
}

let slurm: SlurmCluster;

beforeAll(async () => {
  slurm = await startSlurm();
  console.log(`slurm cluster: started in ${slurm.startMs} ms (${slurm.restUrl}, partition ${slurm.partition}, jobs as ${slurm.user.name})`);
}, 90_000);

afterAll(async () => {
  await slurm?.stop();
});

async function rest(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: SlurmReply }> {
  const res = await fetch(`${slurm.restUrl}/slurm/${slurm.apiVersion}${path}`, {
    method,
    headers: {
      'X-SLURM-USER-NAME': slurm.user.name,
      'X-SLURM-USER-TOKEN': token ?? (await slurm.token()),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: SlurmReply;
  try {
    parsed = JSON.parse(text) as SlurmReply;
  } catch {
    throw new Error(`slurmrestd answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed };
}

/** A reply with HTTP 200 and an empty errors[] (slurmrestd can put errors in a 200). */
function ok(reply: { status: number; body: SlurmReply }): SlurmReply {
  expect(reply.body.errors ?? [], JSON.stringify(reply.body.errors)).toEqual([]);
  expect(reply.status).toBe(200);
  return reply.body;
}

function submit(name: string, script: string, job: Record<string, unknown> = {}, token?: string) {
  return rest(
    'POST',
    '/job/submit',
    {
      script,
      job: {
        name,
        partition: slurm.partition,
        cpus_per_task: 1,
        memory_per_cpu: 100,
        time_limit: 5,
        current_working_directory: slurm.workDir,
        environment: { PATH: '/usr/bin:/bin', GREETING: 'hello from the gateway' },
        standard_output: join(slurm.workDir, `${name}-%A_%a.out`),
        ...job,
      },
    },
    token,
  );
}

async function jobs(id: number): Promise<NonNullable<SlurmReply['jobs']>> {
  return ok(await rest('GET', `/job/${id}`)).jobs ?? [];
}

/**
 * Host PIDs of the processes whose command line is exactly `argv` (jobs run in the cluster's PID namespace, so the
 * PID a job sees of itself is not one this process can signal).
 */
function pidsOf(argv: string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === wanted;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** How many processes have `text` in their command line. */
function mentioning(text: string): number {
  return readdirSync('/proc').filter((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  }).length;
}

/** A `sleep` no other process runs: its argument is unique (GNU sleep takes fractions). */
const uniqueSleep = (): string[] => ['sleep', `600.${randomInt(1e9)}`];

/** Names of this cluster's jobs, from squeue (pending and running, and finished ones MinJobAge keeps). */
function squeueNames(): string[] {
  return execFileSync('squeue', ['-h', '-a', '-t', 'all', '-o', '%j'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe('a private Slurm cluster (slurmrestd v0.0.38, JWT)', () => {
  it('runs an array job through the REST API as the Unix account named in the token, two tasks at a time', async () => {
    const script = '#!/bin/sh\necho "user=$(id -un) task=$SLURM_ARRAY_TASK_ID greeting=$GREETING"\n';
    const submitted = ok(await submit('smoke', script, { array: '0-3%2' }));
    const id = submitted.job_id!;
    expect(id).toBeGreaterThan(0);

    const done = await until(
      async () => {
        const tasks = await jobs(id);
        return tasks.length === 4 && tasks.every((t) => t.job_state === 'COMPLETED') ? tasks : undefined;
      },
      60_000,
      'the four array tasks COMPLETED',
      200,
    );
    expect(done.map((t) => t.array_task_id).sort()).toEqual([0, 1, 2, 3]);
    for (const task of done) {
      expect(task.user_name).toBe(slurm.user.name);
      expect(task.user_id).toBe(slurm.user.uid);
      expect(task.group_id).toBe(slurm.user.gid);
      expect(task.array_max_tasks).toBe(2);
      expect(task.array_job_id).toBe(id);
    }
    for (const n of [0, 1, 2, 3]) {
      const file = join(slurm.workDir, `smoke-${id}_${n}.out`);
      expect(readFileSync(file, 'utf8')).toBe(`user=${slurm.user.name} task=${n} greeting=hello from the gateway\n`);
      expect(statSync(file)).toMatchObject({ uid: slurm.user.uid, gid: slurm.user.gid });
    }
  });

  it('cancels a running job, and nothing of it keeps running', async () => {
    const sleep = uniqueSleep();
    const id = ok(await submit('cancel-me', `#!/bin/sh\nexec ${sleep.join(' ')}\n`)).job_id!;
    await until(async () => (await jobs(id))[0]?.job_state === 'RUNNING' && pidsOf(sleep).length === 1, 30_000, 'the job RUNNING', 100);
    const [pid] = pidsOf(sleep);
    expect(statSync(`/proc/${pid}`).uid).toBe(slurm.user.uid);

    ok(await rest('DELETE', `/job/${id}`));
    await until(async () => (await jobs(id))[0]?.job_state === 'CANCELLED', 30_000, 'the job CANCELLED', 100);
    await until(() => pidsOf(sleep).length === 0, 30_000, `the cancelled job's process ${pid} gone`);
  });

  it('refuses a token signed with another key, and an expired one, with errors[]: no job is created', async () => {
    const now = Math.floor(Date.now() / 1000);
    const forged = await mintSlurmToken(randomBytes(32), slurm.user.name, now, now + 300);
    const expired = await mintSlurmToken(readFileSync(slurm.jwtKeyFile), slurm.user.name, now - 600, now - 300);
    for (const [name, token] of [
      ['forged', forged],
      ['expired', expired],
    ] as const) {
      const reply = await submit(`refused-${name}`, '#!/bin/sh\ntrue\n', {}, token);
      expect(reply.status, name).not.toBe(200);
      expect(reply.body.errors?.length ?? 0, name).toBeGreaterThan(0);
      expect(reply.body.job_id, name).toBeUndefined();
      const read = await rest('GET', '/jobs', undefined, token);
      expect(read.status, name).not.toBe(200);
      expect(read.body.errors?.length ?? 0, name).toBeGreaterThan(0);
      expect(read.body.jobs ?? [], name).toEqual([]);
    }
    expect(squeueNames().filter((n) => n.startsWith('refused-'))).toEqual([]);
  });

  it('`scripts/slurm/cluster token DIR USER` prints a token slurmrestd accepts for that user (for curl by hand)', async () => {
    const token = execFileSync(SLURM_SCRIPT, ['token', slurm.dir, slurm.user.name, '60'], { encoding: 'utf8' }).trim();
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(Object.keys(claims).sort()).toEqual(['exp', 'iat', 'sun']);
    expect(claims.sun).toBe(slurm.user.name);
    expect(Number(claims.exp) - Number(claims.iat)).toBe(60);
    expect(ok(await rest('GET', '/jobs', undefined, token)).jobs?.length).toBeGreaterThan(0);
    expect(() => execFileSync(SLURM_SCRIPT, ['token', slurm.dir, 'not a name'], { stdio: 'pipe' })).toThrow(/not a Unix user name/);
  });

  it('starts slurmrestd again on the same port when it is killed (kill -9), jobs untouched', async () => {
    const sleep = uniqueSleep();
    const id = ok(await submit('outlives-rest', `#!/bin/sh\nexec ${sleep.join(' ')}\n`)).job_id!;
    await until(() => pidsOf(sleep).length === 1, 30_000, 'the job running');
    const [before] = pidsOf(['slurmrestd', '-f', slurm.env.SLURM_CONF, '-a', 'rest_auth/jwt', '-s', 'openapi/v0.0.38', slurm.restUrl.replace('http://', '')]);
    expect(before).toBeGreaterThan(0);
    slurm.signal('slurmrestd', 'SIGKILL');
    await until(async () => (await rest('GET', '/ping').catch(() => undefined))?.status === 200, 30_000, 'slurmrestd answering again');
    const [after] = pidsOf(['slurmrestd', '-f', slurm.env.SLURM_CONF, '-a', 'rest_auth/jwt', '-s', 'openapi/v0.0.38', slurm.restUrl.replace('http://', '')]);
    expect(after).not.toBe(before);
    expect((await jobs(id))[0]?.job_state).toBe('RUNNING');
    expect(pidsOf(sleep)).toHaveLength(1);
    ok(await rest('DELETE', `/job/${id}`));
    await until(() => pidsOf(sleep).length === 0, 30_000, 'the job gone');
  });

  it('stop() kills every process of the cluster, jobs included, and removes its folder', async () => {
    const other = await startSlurm();
    try {
      const sleep = uniqueSleep();
      const token = await other.token();
      const res = await fetch(`${other.restUrl}/slurm/${other.apiVersion}/job/submit`, {
        method: 'POST',
        headers: { 'X-SLURM-USER-NAME': other.user.name, 'X-SLURM-USER-TOKEN': token, 'content-type': 'application/json' },
        body: JSON.stringify({
          script: `#!/bin/sh\nexec ${sleep.join(' ')}\n`,
          job: { name: 'left-running', partition: other.partition, current_working_directory: other.workDir, environment: { PATH: '/usr/bin:/bin' } },
        }),
      });
      expect(((await res.json()) as SlurmReply).errors).toEqual([]);
      await until(() => pidsOf(sleep).length === 1, 30_000, 'the job running');
      // The clusters are separate: this one's job is not in the first cluster.
      expect(squeueNames()).not.toContain('left-running');
      // munged, slurmctld, slurmd and slurmrestd (and the script) name the cluster's folder in their arguments.
      expect(mentioning(other.dir)).toBeGreaterThanOrEqual(5);
      await other.stop();
      expect(existsSync(other.dir)).toBe(false);
      expect(pidsOf(sleep)).toEqual([]);
      expect(mentioning(other.dir)).toBe(0);
      await expect(fetch(`${other.restUrl}/slurm/${other.apiVersion}/ping`)).rejects.toThrow();
    } finally {
      await other.stop();
    }
    // The first cluster is untouched.
    ok(await rest('GET', '/ping'));
  });
});
