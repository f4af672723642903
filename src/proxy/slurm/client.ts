// slurmrestd, spoken to as a person: every request carries a token minted for their POSIX account,
// every answer is checked (errors[] fails it, even with HTTP 200), and a daemon that does not answer
// is not_ready. What the Slurm backend builds its verbs on.
import { GatehouseError } from '../../wire/index.js';
import { checkSlurmResponse, type SlurmTask, slurmTasksOf } from './states.js';
import type { SlurmTokenMinter } from './token.js';

export interface SlurmClientOptions {
  /** slurm.url: http(s)://host[:port]. */
  url: string;
  /** slurm.api_version: v0.0.38. */
  apiVersion: string;
  /** slurm.timeout_ms. */
  timeoutMs: number;
  minter: SlurmTokenMinter;
  /**
   * The uids a person's account may have on the cluster (default 1000 to 59999: Debian's and most
   * distributions' UID_MIN..UID_MAX). A name outside is a system or service account (daemon, munge,
   * slurm = SlurmUser, which can read Slurm's JWT key; nobody = 65534): a job is never released as one.
   */
  accountUids?: { min?: number; max?: number };
  /**
   * The gateway's own uid (default: this process's). A job is never released as it, whatever the
   * range: a gateway run as a plain service account (uid 1001) has its JWT key, CA key and database
   * readable by that uid, and a person whose directory attribute or IdP claim named the account
   * would run code as the gateway.
   */
  gatewayUid?: number;
}

/** One job array: one task per partition. */
export interface ArraySubmission {
  name: string;
  /** The batch script (#!/bin/sh ...). */
  script: string;
  /** Array task ids: the partitions. */
  tasks: readonly number[];
  /** Tasks running at once (`%`): the granted cores. */
  throttle: number;
  cpusPerTask: number;
  memoryPerCpuMb: number;
  /** Rounded up to whole minutes, as Slurm counts them. */
  timeLimitS: number;
  partition?: string;
  account?: string;
  /** Where the tasks start; shared by the gateway host and the nodes. */
  workDir: string;
  environment: Record<string, string>;
  /** Paths with Slurm's %A (array job) and %a (task) patterns. */
  stdout: string;
  stderr?: string;
}

export interface SlurmClient {
  /** Whether slurmctld answers, asked as this account: Slurm's own words (`UP`). */
  ping(asUser: string): Promise<string>;
  /**
   * Submits the array held, checks whom Slurm will run it as, calls `beforeRelease` with that
   * account's uid and gid (what the job's folder is given to), then releases it; its job id.
   */
  submitArray(asUser: string, job: ArraySubmission, beforeRelease?: (account: SlurmAccount) => Promise<void>): Promise<number>;
  /** CPUs of the nodes of `partition` (empty: every node), asked as `asUser`. */
  cpus(asUser: string, partition: string): Promise<number>;
  /** The ids of `asUser`'s jobs named `name` that Slurm still knows (a submission whose answer was lost). */
  jobsNamed(asUser: string, name: string): Promise<number[]>;
  /** The array's tasks; null when Slurm does not know the job (never submitted, or purged). */
  arrayTasks(asUser: string, arrayJobId: number): Promise<SlurmTask[] | null>;
  /** Cancels every task of the array; a job that already ended is fine. */
  cancel(asUser: string, arrayJobId: number): Promise<void>;
}

/** The POSIX account Slurm runs a job as, from its own job record. */
export interface SlurmAccount {
  uid: number;
  gid: number;
}

/** Slurm's error numbers the client expects (slurm_errno.h). */
const ESLURM_INVALID_JOB_ID = 2017;
const ESLURM_ALREADY_DONE = 2021;
/** "Job is in held state, pending scheduler release": what a submission with hold answers, in errors[]. */
const ESLURM_JOB_HELD = 2042;
/** The uid Slurm gives a name it cannot resolve (SLURM_AUTH_NOBODY): the job would run as someone else. */
const SLURM_AUTH_NOBODY = 99;
/** login.defs' UID_MIN and UID_MAX on Debian (60000-64999 are static system accounts, 65534 nobody). */
export const SLURM_ACCOUNT_UID_MIN = 1000;
export const SLURM_ACCOUNT_UID_MAX = 59999;

export function createSlurmClient(options: SlurmClientOptions): SlurmClient {
  const minUid = options.accountUids?.min ?? SLURM_ACCOUNT_UID_MIN;
  const maxUid = options.accountUids?.max ?? SLURM_ACCOUNT_UID_MAX;
  const gatewayUid = options.gatewayUid ?? process.getuid?.() ?? 0;
  // Never below 1 (root) whatever the configuration says.
  if (!Number.isInteger(minUid) || !Number.isInteger(maxUid) || minUid < 1 || maxUid < minUid) throw new GatehouseError('invalid_request', `Slurm account uids: ${minUid}..${maxUid} is not a range of non-root uids`);
  const base = `${options.url.replace(/\/$/, '')}/slurm/${options.apiVersion}`;

  /** One request as `asUser`; `allow`: Slurm error numbers that are not failures for this request. */
  const call = async (asUser: string, method: string, path: string, body?: unknown, allow: number[] = []): Promise<Record<string, unknown>> => {
    const headers = { ...(await options.minter.headers(asUser)), ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    let status: number;
    let text: string;
    try {
      const res = await fetch(`${base}${path}`, { method, headers, signal: AbortSignal.timeout(options.timeoutMs), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      status = res.status;
      text = await res.text();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new GatehouseError('not_ready', `slurmrestd at ${options.url} did not answer (${cause})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (allow.length > 0 && parsed !== null && typeof parsed === 'object' && Array.isArray((parsed as { errors?: unknown }).errors)) {
      const answer = parsed as { errors: { error_code?: unknown; error_number?: unknown; errno?: unknown }[] };
      const numberOf = (e: (typeof answer.errors)[number]) => [e.error_code, e.error_number, e.errno].find((n) => typeof n === 'number');
      if (answer.errors.every((e) => allow.includes(numberOf(e) as number))) parsed = { ...answer, errors: [] };
    }
    return checkSlurmResponse(status, parsed);
  };

  const slurmErrorNumbers = (err: unknown): number[] =>
    err instanceof GatehouseError && Array.isArray(err.details.slurm_errors) ? (err.details.slurm_errors as { error_number?: number }[]).map((e) => e.error_number ?? 0) : [];

  return {
    async ping(asUser) {
      const answer = await call(asUser, 'GET', '/ping');
      const pings = Array.isArray(answer.pings) ? (answer.pings as { ping?: unknown; hostname?: unknown }[]) : [];
      const first = pings[0];
      if (first === undefined || typeof first.ping !== 'string') throw new GatehouseError('not_ready', 'slurmrestd answered a ping without slurmctld');
      if (first.ping !== 'UP') throw new GatehouseError('not_ready', `slurmctld is ${first.ping}`);
      return first.ping;
    },

    async submitArray(asUser, job, beforeRelease) {
      if (job.tasks.length === 0) throw new GatehouseError('invalid_request', 'a Slurm array needs at least one task', { field: 'partitions' });
      const answer = await call(asUser, 'POST', '/job/submit', {
        script: job.script,
        job: {
          name: job.name,
          array: `${arraySpec(job.tasks)}%${Math.max(1, job.throttle)}`,
          cpus_per_task: job.cpusPerTask,
          memory_per_cpu: job.memoryPerCpuMb,
          time_limit: Math.max(1, Math.ceil(job.timeLimitS / 60)),
          current_working_directory: job.workDir,
          environment: job.environment,
          standard_output: job.stdout,
          ...(job.stderr ? { standard_error: job.stderr } : {}),
          ...(job.partition ? { partition: job.partition } : {}),
          ...(job.account ? { account: job.account } : {}),
          // No `requeue: false`: Slurm 22.05's v0.0.38 accepts it and ignores it (the job keeps the
          // cluster's JobRequeue). A task Slurm requeues (node failure, preemption) runs again: its
          // restarts are counted in attempts, and a partition's output must be written idempotently.
          // Held until the gateway has seen whom Slurm will run it as (below).
          hold: true,
        },
      }, [ESLURM_JOB_HELD]);
      const id = answer.job_id;
      if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0) throw new GatehouseError('not_ready', 'slurmrestd accepted the job without a job id');
      // Slurm 22.05 accepts a token for a name it cannot resolve and gives the job uid 99 (nobody):
      // it would run as someone else. Released only when Slurm names the job's user as asked.
      try {
        const seen = await call(asUser, 'GET', `/job/${id}`);
        const record = (Array.isArray(seen.jobs) ? (seen.jobs as { user_name?: unknown; user_id?: unknown; group_id?: unknown }[]) : [])[0];
        if (record === undefined || record.user_name !== asUser) {
          const uid = typeof record?.user_id === 'number' ? record.user_id : SLURM_AUTH_NOBODY;
          throw new GatehouseError('forbidden', `the cluster has no POSIX account ${asUser} (Slurm would run the job as uid ${uid}); ask your administrator to create it`);
        }
        // A name that resolves, but to a system or service account (daemon, munge, slurm, nobody):
        // a directory attribute or an IdP claim that names one must not give its holder that account.
        if (typeof record.user_id !== 'number' || !Number.isInteger(record.user_id) || record.user_id < minUid || record.user_id > maxUid) {
          throw new GatehouseError('forbidden', `${asUser} is a system account on the cluster (uid ${String(record.user_id)}, outside ${minUid}..${maxUid}); a job never runs as one`);
        }
        if (record.user_id === gatewayUid) throw new GatehouseError('forbidden', `${asUser} is the gateway's own account (uid ${gatewayUid}); a job never runs as it`);
        const gid = record.group_id;
        if (typeof gid !== 'number' || !Number.isInteger(gid) || gid < 1) throw new GatehouseError('forbidden', `${asUser}'s primary group on the cluster is not a non-root group (gid ${String(gid)}); a job never runs in one`);
        await beforeRelease?.({ uid: record.user_id, gid });
        // Slurm 22.05 answers an array's release with "job array update ... failed" in errors[] even
        // when it released every task: what counts is that the job is no longer held.
        await call(asUser, 'POST', `/job/${id}`, { hold: false }).catch(async (err: unknown) => {
          const after = await call(asUser, 'GET', `/job/${id}`);
          const records = Array.isArray(after.jobs) ? (after.jobs as { state_reason?: unknown }[]) : [];
          if (records.length === 0 || records.some((r) => r.state_reason === 'JobHeldUser')) throw err;
        });
      } catch (err) {
        await call(asUser, 'DELETE', `/job/${id}`).catch(() => undefined);
        throw err;
      }
      return id;
    },

    async arrayTasks(asUser, arrayJobId) {
      try {
        const answer = await call(asUser, 'GET', `/job/${arrayJobId}`);
        const tasks = slurmTasksOf(Array.isArray(answer.jobs) ? answer.jobs : [], arrayJobId);
        return tasks.length === 0 ? null : tasks;
      } catch (err) {
        if (slurmErrorNumbers(err).includes(ESLURM_INVALID_JOB_ID)) return null;
        throw err;
      }
    },

    async cpus(asUser, partition) {
      const answer = await call(asUser, 'GET', '/nodes');
      const nodes = Array.isArray(answer.nodes) ? (answer.nodes as { cpus?: unknown; partitions?: unknown }[]) : [];
      let total = 0;
      for (const n of nodes) {
        const parts = Array.isArray(n.partitions) ? n.partitions : [];
        if (partition !== '' && !parts.includes(partition)) continue;
        if (typeof n.cpus === 'number' && Number.isInteger(n.cpus) && n.cpus > 0) total += n.cpus;
      }
      if (total === 0) throw new GatehouseError('not_ready', `Slurm has no node with CPUs${partition === '' ? '' : ` in partition ${partition}`}`);
      return total;
    },

    async jobsNamed(asUser, name) {
      const answer = await call(asUser, 'GET', '/jobs');
      const jobs = Array.isArray(answer.jobs) ? (answer.jobs as { name?: unknown; user_name?: unknown; job_id?: unknown; array_job_id?: unknown }[]) : [];
      const ids = new Set<number>();
      for (const j of jobs) {
        if (j.name !== name || j.user_name !== asUser) continue;
        const id = typeof j.array_job_id === 'number' && j.array_job_id > 0 ? j.array_job_id : j.job_id;
        if (typeof id === 'number' && Number.isInteger(id) && id > 0) ids.add(id);
      }
      return [...ids];
    },

    async cancel(asUser, arrayJobId) {
      try {
        await call(asUser, 'DELETE', `/job/${arrayJobId}`);
      } catch (err) {
        if (slurmErrorNumbers(err).includes(ESLURM_ALREADY_DONE)) return;
        throw err;
      }
    },
  };
}

/** [0, 1, 2, 5, 7, 8] → "0-2,5,7-8". */
export function arraySpec(tasks: readonly number[]): string {
  const sorted = [...new Set(tasks)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
