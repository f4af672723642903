// The gateway's slurmrestd client against a real private cluster (test/support/slurm.ts): requests made
// as the person's POSIX account with tokens from the gateway's own minter, one array per job with its
// throttle, CPUs, memory and time limit, states read back through the mapping, cancel, and every
// refusal (errors[] in the answer, an unknown account, no account, a daemon that does not answer)
// turned into a clear error.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arraySpec, createSlurmClient, type ArraySubmission, type SlurmClient } from '../src/proxy/slurm/client.js';
import { mapSlurmArray, type SlurmTask } from '../src/proxy/slurm/states.js';
import { createSlurmTokenMinter } from '../src/proxy/slurm/token.js';
import { GatehouseError } from '../src/wire/index.js';
import { type SlurmCluster, startSlurm } from './support/slurm.js';
import { until } from './support/until.js';

let slurm: SlurmCluster;
let client: SlurmClient;
let alice: string;

beforeAll(async () => {
  slurm = await startSlurm();
  alice = slurm.user.name;
  const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 300 });
  client = createSlurmClient({ url: slurm.restUrl, apiVersion: slurm.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: slurm.user.uid } });
}, 90_000);

afterAll(async () => {
  await slurm?.stop();
});

function job(name: string, script: string, extra: Partial<ArraySubmission> = {}): ArraySubmission {
  return {
    name,
    script,
    tasks: [0],
    throttle: 1,
    cpusPerTask: 1,
    memoryPerCpuMb: 100,
    timeLimitS: 60,
    partition: slurm.partition,
    workDir: slurm.workDir,
    environment: { PATH: '/usr/bin:/bin' },
    stdout: join(slurm.workDir, `${name}-%A_%a.out`),
    ...extra,
  };
}

const nowS = () => Math.floor(Date.now() / 1000);

/** The array's tasks once every one of `total` has ended. */
function ended(id: number, total: number, what: string): Promise<SlurmTask[]> {
  return until(
    async () => {
      const tasks = await client.arrayTasks(alice, id);
      return tasks && mapSlurmArray(tasks, total, nowS()).finished_at !== null ? tasks : undefined;
    },
    60_000,
    what,
    200,
  );
}

async function refusal(promise: Promise<unknown>): Promise<GatehouseError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatehouseError);
  return err as GatehouseError;
}

describe('the slurmrestd client', () => {
  it('pings slurmctld as the person', async () => {
    expect(await client.ping(alice)).toBe('UP');
  });

  it('runs one array, a task per partition, as the person’s account, and reads it back as succeeded', async () => {
    const id = await client.submitArray(alice, job('ok', '#!/bin/sh\necho "task=$SLURM_ARRAY_TASK_ID user=$(id -un) cpus=$SLURM_CPUS_ON_NODE"\n', { tasks: [0, 1, 2, 5], throttle: 2, cpusPerTask: 2, timeLimitS: 61 }));
    const tasks = await ended(id, 4, 'the array of 4 ended');
    const view = mapSlurmArray(tasks, 4, nowS());
    expect(view).toMatchObject({ state: 'succeeded', error: null, partitions: { total: 4, done: 4, failed: 0, running: 0 }, attempts: 4 });
    expect(tasks.map((t) => t.task_id)).toEqual([0, 1, 2, 5]);
    // What the client asked of Slurm, as Slurm recorded it: the throttle, CPUs, memory per CPU, minutes.
    const raw = await fetch(`${slurm.restUrl}/slurm/${slurm.apiVersion}/job/${id}`, { headers: { 'X-SLURM-USER-NAME': alice, 'X-SLURM-USER-TOKEN': await slurm.token() } });
    const records = ((await raw.json()) as { jobs: Record<string, unknown>[] }).jobs;
    expect(records).toHaveLength(4);
    for (const r of records) {
      expect(r).toMatchObject({ array_job_id: id, array_max_tasks: 2, user_name: alice, time_limit: 2 });
      expect(r.cpus).toBe(2); // v0.0.38 shows cpus_per_task as null and sets no SLURM_CPUS_PER_TASK; SLURM_CPUS_ON_NODE says 2 (below)
      expect(Number(r.memory_per_cpu)).toBe(100);
    }
    for (const t of tasks) {
      expect(t.cpus).toBe(2);
      const out = join(slurm.workDir, `ok-${id}_${t.task_id}.out`);
      // Written by the person's own account: the cluster sees real users.
      expect(statSync(out).uid).toBe(slurm.user.uid);
      expect(readFileSync(out, 'utf8')).toBe(`task=${t.task_id} user=${alice} cpus=2\n`);
    }
  });

  it('maps a failing task to failed with its exit status and partition', async () => {
    const id = await client.submitArray(alice, job('fails', '#!/bin/sh\n[ "$SLURM_ARRAY_TASK_ID" = 1 ] && exit 3\nexit 0\n', { tasks: [0, 1], throttle: 2 }));
    const view = mapSlurmArray(await ended(id, 2, 'the failing array ended'), 2, nowS());
    expect(view).toMatchObject({ state: 'failed', error: 'partition 1 failed on Slurm (FAILED, exit status 3)', partitions: { total: 2, done: 1, failed: 1, running: 0 } });
  });

  it('cancels a running array: cancelled, nothing left running, and cancelling again is fine', async () => {
    const id = await client.submitArray(alice, job('cancel', '#!/bin/sh\nsleep 300\n', { tasks: [0, 1, 2], throttle: 1 }));
    await until(async () => ((await client.arrayTasks(alice, id)) ?? []).some((t) => t.state === 'RUNNING'), 60_000, 'a task running', 200);
    await client.cancel(alice, id);
    const view = mapSlurmArray(await ended(id, 3, 'the cancelled array ended'), 3, nowS());
    expect(view).toMatchObject({ state: 'cancelled', error: null, workers: 0, partitions: { total: 3, done: 0, failed: 0, running: 0 } });
    await client.cancel(alice, id);
  });

  it('answers null for a job Slurm does not know', async () => {
    expect(await client.arrayTasks(alice, 987654)).toBeNull();
  });

  it('refuses with Slurm’s own words when errors[] is not empty (a partition that does not exist)', async () => {
    const err = await refusal(client.submitArray(alice, job('nopart', '#!/bin/sh\ntrue\n', { partition: 'no-such-partition' })));
    expect(err.code).toBe('not_ready');
    expect(err.message).toMatch(/^Slurm refused the request: .*(partition|Partition)/);
  });

  it('never asks Slurm for a person without a POSIX account, and refuses (403) an account the cluster does not know, cancelling its held job before it can run as uid 99', async () => {
    for (const none of [undefined, '', 'root', 'Alice']) {
      const err = await refusal(client.submitArray(none as unknown as string, job('nobody', '#!/bin/sh\ntrue\n')));
      expect(err.status).toBe(403);
      expect(err.message).toMatch(/POSIX account/);
    }
    const unknown = await refusal(client.submitArray('gh-no-such-user', job('unknown', '#!/bin/sh\ntrue\n')));
    expect(unknown.status, unknown.message).toBe(403);
    // Slurm 22.05 takes a token for a name it cannot resolve and would run the job as uid 99 (nobody):
    // the client holds every job until Slurm names its user as asked, and cancels it otherwise.
    expect(unknown.message).toMatch(/^the cluster has no POSIX account gh-no-such-user \(Slurm would run the job as uid 99\)/);
    const names = execFileSync('squeue', ['-h', '-a', '-t', 'all', '-o', '%j %T %u'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('unknown '));
    expect(names.length).toBeGreaterThan(0);
    for (const line of names) expect(line).toMatch(/^unknown CANCELLED /);
  });

  it('is not_ready when slurmrestd does not answer', async () => {
    const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 60 });
    const dead = createSlurmClient({ url: 'http://127.0.0.1:9', apiVersion: 'v0.0.38', timeoutMs: 2000, minter });
    const err = await refusal(dead.ping(alice));
    expect(err.code).toBe('not_ready');
    expect(err.message).toMatch(/^slurmrestd at http:\/\/127\.0\.0\.1:9 did not answer/);
  });

  it('writes task lists as Slurm array specifications', () => {
    expect(arraySpec([0, 1, 2, 5, 7, 8])).toBe('0-2,5,7-8');
    expect(arraySpec([3])).toBe('3');
    expect(arraySpec([2, 1, 1, 0])).toBe('0-2');
  });
});
