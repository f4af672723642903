// Slurm as a ComputeBackend: one job array per job, one array task per partition of the input,
// each task running bin/gatehouse-task.js (the bundled engine's own runners) as the person's POSIX
// account, through slurmrestd with a token minted for that account. The gateway stages the granted
// input into the job's folder (data.root stays closed to people's accounts), and commits the
// output into data.root itself once every task completed, with the engine's commit rules.
//
// The backend keeps a small record per job in the store (job-records.ts); Slurm is asked for the
// rest. A job is final once Slurm says every task ended and, for a success, the output is committed:
// that status is kept, the folder's logs are copied out of the person's reach into the store and the
// folder is removed. Any gateway over a shared store may be the one that sees the end: finishing is
// exclusive per job across them, so the output is committed once.
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DatasetError, listDatasets, openDataset, openRoot, readExisting, replaceRefusal } from '../../catalog/index.js';
import { type DatasetInfo, GatehouseError, type JobStatus } from '../../wire/index.js';
import type { Store } from '../../store/index.js';
import type { BackendCapacity, BackendSubmission, ComputeBackend } from '../backend.js';
import { localReads } from '../local-reads.js';
import type { SlurmClient } from './client.js';
import { giveToAccount, jobFolderOf, openJobsDir, prepareJobFolder, readOwned, readOwnedTail, removeJobFolder } from './job-folder.js';
import { keptLogBytes, type SlurmJobRecord, SlurmJobRecords } from './job-records.js';
import { commitSlurmOutput } from './output-commit.js';
import { mapSlurmArray } from './states.js';
import { taskScript } from './task-script.js';

export const SLURM = 'slurm';

export interface SlurmBackendOptions {
  client: SlurmClient;
  /** slurm.url, for people. */
  url: string;
  /** data.root, shared by the gateway host and the nodes. */
  dataRoot: string;
  /** slurm.jobs_dir: the job folders, shared too. */
  jobsDir: string;
  /** Where the backend's records and finished jobs' logs are kept: shared by every gateway over it. */
  store: Store;
  /** state.dir/slurm: where gateways before 0011 kept them; imported into the store once at start. */
  legacyDir?: string;
  /** slurm.partition and slurm.account ('' for the cluster's defaults). */
  partition: string;
  account: string;
  /** slurm.status_user: whom health and nodes are asked as. */
  statusUser: string;
  /** argv of the task on a node, before `--job <dir> --partition N`. */
  taskCommand: readonly string[];
  /** engine.python: the python runtime's interpreter on the nodes. */
  python: string;
  /** Between two looks at Slurm while waiting for a cancel to end, or for a log to grow. */
  pollMs?: number;
  now?: () => number;
}

const CAPACITY_TTL_MS = 30_000;
const LOG_MAX_BYTES = 8 * 1024 * 1024;
/** Read of a failed task's log for its last line. */
const LAST_LINE_TAIL_BYTES = 64 * 1024;
/** The longest line `logs` gives: the rest of a longer line is dropped, never held in memory. */
const LOG_LINE_MAX = 64 * 1024;
const CANCEL_WAIT_MS = 60_000;

export function slurmBackend(o: SlurmBackendOptions): ComputeBackend {
  const now = o.now ?? Date.now;
  const pollMs = o.pollMs ?? 250;
  const files = new SlurmJobRecords(o.store, pollMs, o.jobsDir);
  // Every answer waits for the import of older on-disk records (a no-op once done).
  const imported = o.legacyDir === undefined ? Promise.resolve(0) : files.importFiles(o.legacyDir);
  imported.catch(() => undefined); // reported by the first call that awaits it
  const finishing = new Map<string, Promise<JobStatus>>();
  let known: { at: number; capacity: BackendCapacity } | null = null;

  const base = (r: SlurmJobRecord): Omit<JobStatus, 'state' | 'reason' | 'error' | 'partitions' | 'workers' | 'attempts' | 'started_at' | 'finished_at' | 'core_seconds'> => ({
    id: r.id,
    name: r.spec.name,
    user: r.user,
    input: r.spec.input,
    output: r.spec.output,
    runtime: r.spec.runtime,
    resources: r.granted,
    rows_in: 0,
    rows_out: 0,
    bytes_in: 0,
    bytes_out: 0,
    created_at: r.created_at,
    posix_user: r.posix_user,
    ...(r.slurm_job_id !== null ? { backend_job_id: String(r.slurm_job_id) } : {}),
  });

  /** What Slurm says now; a job it has ended is finished (committed, logs kept) once. */
  const statusOf = async (r: SlurmJobRecord): Promise<JobStatus | null> => {
    if (r.final !== null) return r.final;
    if (r.slurm_job_id === null || r.uid === null) return null; // never reached Slurm (or not released)
    const tasks = await o.client.arrayTasks(r.posix_user, r.slurm_job_id);
    if (tasks === null) return null; // Slurm no longer knows it (purged after MinJobAge): lost
    const view = mapSlurmArray(tasks, r.partitions.length, Math.floor(now() / 1000));
    // Progress as the engine shows it: the input rows of the partitions done so far.
    const done = new Set(tasks.filter((t) => t.state === 'COMPLETED').map((t) => t.task_id));
    const rowsIn = r.partitions.reduce((n, p, i) => n + (done.has(p) ? (r.partition_rows?.[i] ?? 0) : 0), 0);
    const status: JobStatus = { ...base(r), ...view, rows_in: rowsIn };
    if (view.state === 'queued' || view.state === 'running') {
      // The person can change their own job on Slurm (scontrol update): more tasks at once, more CPUs
      // per task than the gateway granted. Such a job is stopped and fails, saying why.
      const breach = r.breach ?? grantBreach(r, tasks, view.partitions.running);
      if (breach !== null && r.breach === undefined) {
        r.breach = breach;
        await files.write(r);
        await o.client.cancel(r.posix_user, r.slurm_job_id).catch(() => undefined);
      }
      return status;
    }
    let run = finishing.get(r.id);
    if (run === undefined) {
      run = files
        .tryExclusively(r.id, async () => {
          // Another gateway (or an earlier call here) may have finished it since r was read.
          const latest = (await files.read(r.id)) ?? r;
          if (latest.final !== null) return latest.final;
          return finish(latest, { ...status, ...base(latest) });
        })
        // Another gateway is finishing it: still running until that one records the end (or dies and
        // frees the lock, and a later look here finishes it).
        .then((done) => done?.value ?? { ...status, state: 'running' as const, reason: null, error: null, finished_at: null })
        .finally(() => finishing.delete(r.id));
      finishing.set(r.id, run);
    }
    return run;
  };

  /** Commits a success, keeps the logs, removes the folder, records the final status. */
  const finish = async (r: SlurmJobRecord, status: JobStatus): Promise<JobStatus> => {
    const final: JobStatus = { ...status };
    const uid = r.uid as number;
    if (r.breach !== undefined) {
      Object.assign(final, { state: 'failed', error: r.breach });
    } else if (status.state === 'succeeded') {
      try {
        // A finisher killed after its commit and before recording the end left the output in place,
        // produced by this job (the manifest, written in the commit's one rename, is the marker):
        // the job succeeded, and the output is not committed again.
        const mine = await committedBy(r);
        const out = mine ?? await commitSlurmOutput({
          jobId: r.id,
          jobDir: r.dir,
          uid,
          dataRoot: o.dataRoot,
          spec: r.spec,
          user: r.user,
          partitions: r.partitions,
          format: r.spec.output_format ?? r.format,
          inputColumns: r.input_columns,
          labels: r.labels,
          ...(r.replaces ? { replaces: r.replaces } : {}),
        });
        Object.assign(final, { rows_in: r.input_rows, bytes_in: r.input_bytes, rows_out: out.rows, bytes_out: out.bytes });
      } catch (err) {
        Object.assign(final, { state: 'failed', error: `the output could not be committed: ${(err as Error).message}` });
      }
    } else if (status.state === 'failed') {
      const said = await lastLine(r, firstFailed(final));
      if (said !== null) final.error = `${final.error}: ${said}`;
    }
    await keepLogs(r);
    // A folder something keeps filling, or with a mount in it, is left: the end is still recorded once.
    await removeJobFolder(r.dir).catch(() => undefined);
    const done = { ...r, final };
    await files.write(done);
    return final;
  };

  /** The rows and bytes of job r's output when data.root already has it as r committed it, else null. */
  const committedBy = async (r: SlurmJobRecord): Promise<{ rows: number; bytes: number } | null> => {
    const existing = await readExisting(await openRoot(o.dataRoot), r.spec.output).catch(() => null);
    const m = existing?.manifest;
    if (m === null || m === undefined || m.produced_by !== r.id || m.owner !== r.user) return null;
    return { rows: m.partitions.reduce((n, p) => n + p.rows, 0), bytes: m.partitions.reduce((n, p) => n + p.bytes, 0) };
  };

  /** The partition a failed job names first (the mapping says "partition N" or "partitions N, M"). */
  const firstFailed = (s: JobStatus): number | null => {
    const m = /partitions? (\d+)/.exec(s.error ?? '');
    return m ? Number(m[1]) : null;
  };

  /** The last line a task wrote (its error, from gatehouse-task), for the job's error. */
  const lastLine = async (r: SlurmJobRecord, partition: number | null): Promise<string | null> => {
    if (partition === null || r.uid === null) return null;
    // The tail is enough: the error is the last line (one longer than the tail is cut at 500 characters anyway).
    const text = await readOwnedTail(r.dir, [`log-${partition}.txt`], r.uid, LAST_LINE_TAIL_BYTES).catch(() => null);
    const lines = (text?.toString('utf8') ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    const last = lines.at(-1);
    return last === undefined ? null : last.replace(/^gatehouse-task: /, '').slice(0, 500);
  };

  const keepLogs = async (r: SlurmJobRecord): Promise<void> => {
    if (r.uid === null) return;
    const each = keptLogBytes(r.partitions.length); // 8 MiB per job in all, however many partitions
    for (const p of r.partitions) {
      const text = await readOwned(r.dir, [`log-${p}.txt`], r.uid, each).catch(() => null);
      if (text !== null) await files.keepLog(r.id, p, text);
    }
  };

  /** Bytes of partition p's log from `from`: from the folder while the job runs, from the kept copy after. */
  const logBytes = async (r: SlurmJobRecord, p: number, from: number): Promise<Buffer> => {
    if (r.final === null && r.uid !== null) {
      const text = await readOwned(r.dir, [`log-${p}.txt`], r.uid, LOG_MAX_BYTES, from).catch(() => null);
      if (text !== null) return text;
    }
    return (await files.keptLog(r.id, p)).subarray(from);
  };

  const record = async (id: string): Promise<SlurmJobRecord | null> => {
    await imported;
    return files.read(id);
  };
  const live = async (): Promise<SlurmJobRecord[]> => {
    await imported;
    return files.live();
  };

  const capacity = async (): Promise<BackendCapacity> => {
    if (known !== null && now() - known.at < CAPACITY_TTL_MS) return known.capacity;
    try {
      known = { at: now(), capacity: { slots: await o.client.cpus(o.statusUser, o.partition) } };
    } catch (err) {
      if (known !== null) return known.capacity;
      throw err;
    }
    return known.capacity;
  };

  const checkOutput = async (job: BackendSubmission): Promise<void> => {
    const { output, mode } = job.spec;
    for (const other of await live()) {
      if (other.id === job.id) continue;
      if (other.spec.output === output) throw new GatehouseError('conflict', `another job is already writing ${output}`);
      if (mode === 'overwrite' && other.spec.input === output) throw new GatehouseError('conflict', `another job is reading ${output}; it cannot be overwritten until that job ends`);
      if (other.spec.output === job.spec.input) throw new GatehouseError('conflict', `another job is writing ${job.spec.input}; read it once that job has finished`);
    }
    let existing: Awaited<ReturnType<typeof readExisting>>;
    try {
      existing = await readExisting(await openRoot(o.dataRoot), output);
    } catch (err) {
      if (err instanceof DatasetError) throw new GatehouseError('conflict', `output ${output} cannot be written: ${err.message}`);
      throw err;
    }
    if (existing === null) return;
    if (existing.manifest === null) throw new GatehouseError('conflict', `${output} is a namespace (a folder of datasets), not a dataset; choose another output`);
    if (mode !== 'overwrite') throw new GatehouseError('conflict', `dataset ${output} exists; submit with "mode": "overwrite" to replace it`);
    const refusal = replaceRefusal(output, existing.manifest.owner, { user: job.user, replaces: job.replaces });
    if (refusal !== null) throw new GatehouseError('conflict', `Slurm's backend will not replace ${output}: ${refusal}`);
  };

  return {
    name: SLURM,
    location: o.url,
    readinessCheck: SLURM,
    async readiness() {
      await imported; // records from before the store kept them that could not be imported: not ready, saying why
      await openJobsDir(o.jobsDir); // a jobs_dir others could have planted is a Slurm backend not ready
      const state = await o.client.ping(o.statusUser);
      const { slots } = await capacity();
      return `ok (${o.url}, slurmctld ${state}, ${slots} CPUs${o.partition ? ` in ${o.partition}` : ''})`;
    },
    capacity,
    async datasets(): Promise<DatasetInfo[]> {
      return (await listDatasets(o.dataRoot)).datasets;
    },
    async dataset(name: string): Promise<DatasetInfo | undefined> {
      return (await listDatasets(o.dataRoot, name)).datasets.find((d) => d.name === name);
    },
    // The gateway sees data.root itself: reads need no node.
    ...localReads(o.dataRoot),

    async submit(job) {
      const account = job.posix_user;
      if (account === undefined) throw new GatehouseError('forbidden', "you have no POSIX account on the cluster (your login names none); Slurm jobs run as their owner's own account");
      const earlier = await record(job.id);
      // A resend is the same person's job: a record of someone else's under this id (an id used again
      // once the gateway's row was removed; records are never purged) must not become theirs, its
      // status, kept logs and cancel with it.
      if (earlier !== null && (earlier.user !== job.user || earlier.posix_user !== account)) throw new GatehouseError('conflict', `job id ${job.id} is already the id of another Slurm job; submit again`);
      if (earlier !== null && earlier.slurm_job_id !== null) return { backendId: job.id }; // sent before a restart
      if (earlier !== null) {
        // A submission whose answer was lost: whatever reached Slurm under this job's name goes first.
        for (const id of await o.client.jobsNamed(account, slurmJobName(job.id))) await o.client.cancel(account, id);
      }
      const root = await openRoot(o.dataRoot);
      let input: Awaited<ReturnType<typeof openDataset>>;
      try {
        input = await openDataset(root, job.spec.input);
      } catch (err) {
        if (err instanceof DatasetError && err.code === 'not_found') throw new GatehouseError('not_found', `input dataset ${job.spec.input} not found`);
        throw err;
      }
      const all = input.manifest.partitions.map((_, i) => i);
      const partitions = job.spec.partitions ?? all;
      const missing = partitions.find((p) => p >= all.length);
      if (missing !== undefined) throw new GatehouseError('invalid_request', `input ${job.spec.input} has ${all.length} partitions; there is no partition ${missing}`, { field: 'body.partitions' });
      await checkOutput(job);

      const dir = jobFolderOf(o.jobsDir, job.id);
      const r: SlurmJobRecord = {
        id: job.id,
        slurm_job_id: null,
        user: job.user,
        posix_user: account,
        uid: null,
        spec: job.spec,
        granted: job.granted,
        ...(job.replaces ? { replaces: job.replaces } : {}),
        partitions,
        format: input.manifest.format,
        input_columns: input.manifest.columns,
        input_rows: partitions.reduce((n, p) => n + (input.manifest.partitions[p]?.rows ?? 0), 0),
        partition_rows: partitions.map((p) => input.manifest.partitions[p]?.rows ?? 0),
        input_bytes: partitions.reduce((n, p) => n + (input.manifest.partitions[p]?.bytes ?? 0), 0),
        labels: [...new Set([...input.manifest.labels, ...(job.spec.labels ?? [])])].sort(),
        dir,
        created_at: new Date(now()).toISOString(),
        final: null,
      };
      await files.write(r);
      await prepareJobFolder(o.jobsDir, { id: job.id, spec: job.spec, granted: job.granted }, input, job.spec.input);
      let slurmJobId: number;
      try {
        slurmJobId = await o.client.submitArray(
          account,
          {
            name: slurmJobName(job.id),
            script: taskScript({ command: o.taskCommand, python: o.python, jobDir: dir, attempts: job.spec.max_attempts }),
            tasks: partitions,
            throttle: job.granted.cores,
            cpusPerTask: 1,
            memoryPerCpuMb: job.granted.memory_mb,
            timeLimitS: job.granted.time_limit_s,
            ...(o.partition ? { partition: o.partition } : {}),
            ...(o.account ? { account: o.account } : {}),
            workDir: dir,
            environment: { PATH: '/usr/local/bin:/usr/bin:/bin', GATEHOUSE_JOB: job.id },
            stdout: join(dir, 'log-%a.txt'),
          },
          async (owner) => {
            await giveToAccount(dir, owner);
            r.uid = owner.uid;
            await files.write(r);
          },
        );
      } catch (err) {
        await removeJobFolder(dir).catch(() => undefined);
        await files.write({ ...r, final: { ...base(r), state: 'failed', reason: null, error: (err as Error).message, partitions: { total: partitions.length, done: 0, failed: 0, running: 0 }, workers: 0, attempts: 0, started_at: null, finished_at: new Date(now()).toISOString(), core_seconds: 0 } });
        throw err;
      }
      r.slurm_job_id = slurmJobId;
      await files.write(r);
      return { backendId: job.id };
    },

    async status(id) {
      const r = await record(id);
      return r === null ? null : statusOf(r);
    },

    async active() {
      const out: JobStatus[] = [];
      for (const r of await live()) {
        const s = await statusOf(r);
        // Only what still runs: a job this look found ended is status()'s to report. Listed here,
        // the reconciler ended it and then, seeing it no longer live, cancelled it as an orphan.
        if (s !== null && (s.state === 'queued' || s.state === 'running')) out.push(s);
      }
      return out;
    },

    async logs(id, follow) {
      const first = await record(id);
      if (first === null) return null;
      const offsets = new Map<number, number>(first.partitions.map((p) => [p, 0]));
      const pending = new Map<number, string>();
      const cut = new Set<number>(); // partitions whose current line was given cut: its rest is dropped
      const clip = (line: string) => (line.length > LOG_LINE_MAX ? `${line.slice(0, LOG_LINE_MAX)} … (cut at ${LOG_LINE_MAX} characters)` : line);
      async function* lines(): AsyncGenerator<string> {
        for (;;) {
          const r = (await record(id)) ?? first!;
          const ended = r.final !== null;
          for (const p of r.partitions) {
            const chunk = await logBytes(r, p, offsets.get(p) ?? 0);
            offsets.set(p, (offsets.get(p) ?? 0) + chunk.length);
            const text = (pending.get(p) ?? '') + chunk.toString('utf8');
            const parts = text.split('\n');
            let rest = parts.pop() ?? '';
            for (const line of parts) {
              if (cut.delete(p)) continue; // the end of a line already given cut
              yield `[p${p}] ${clip(line)}\n`;
            }
            if (rest.length > LOG_LINE_MAX) {
              if (!cut.has(p)) yield `[p${p}] ${clip(rest)}\n`;
              cut.add(p);
              rest = '';
            }
            pending.set(p, rest);
            if (ended && rest !== '') {
              if (!cut.delete(p)) yield `[p${p}] ${rest}\n`;
              pending.set(p, '');
            }
          }
          if (!follow || ended) return;
          await new Promise((resolve) => setTimeout(resolve, pollMs));
          if (!ended) await statusOf(r).catch(() => null); // moves the job to final when Slurm says it ended
        }
      }
      return Readable.from(lines());
    },

    async cancel(id) {
      const r = await record(id);
      if (r === null) return null;
      if (r.final !== null) return r.final;
      if (r.slurm_job_id === null) return null;
      await o.client.cancel(r.posix_user, r.slurm_job_id);
      // Answered once no task runs any more: a cancel leaves nothing behind on the nodes.
      const deadline = now() + CANCEL_WAIT_MS;
      for (;;) {
        const s = await statusOf((await record(id)) ?? r);
        if (s === null || !(s.state === 'queued' || s.state === 'running')) return s;
        if (now() > deadline) throw new GatehouseError('not_ready', `Slurm has not ended job ${r.slurm_job_id} ${CANCEL_WAIT_MS / 1000} s after it was cancelled`);
        await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
    },

    close() {},
  };
}

/** Why the array on Slurm holds more than its grant (one CPU per task, at most the granted cores at once), or null. */
function grantBreach(r: SlurmJobRecord, tasks: readonly { state: string; cpus: number }[], running: number): string | null {
  const wide = tasks.find((t) => t.cpus > 1 && !['COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL'].includes(t.state));
  if (wide !== undefined) return `the job was changed on Slurm to ${wide.cpus} CPUs per task; the gateway granted 1 per task (${r.granted.cores} cores in all), so it was stopped`;
  if (running > r.granted.cores) return `the job was changed on Slurm to run ${running} tasks at once; the gateway granted ${r.granted.cores} cores, so it was stopped`;
  return null;
}

/** The Slurm job name of a gateway job: what squeue shows, and how a lost submission is found again. */
export function slurmJobName(id: string): string {
  return `gatehouse-${id}`;
}
