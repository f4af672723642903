// The engine's jobs: admitted specs become rows, rows become runs, and runs get workers as fair
// share allows. A worker pulls partitions until its job is done or over its share; each finished
// partition is renamed into the job's output folder and recorded, so a restart redoes only what
// was running. When every partition is done the folder becomes the output dataset in one rename.
import { EventEmitter } from 'node:events';
import { lstat, readdir, rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  type AdmissionClaims,
  DEFAULT_ENTRYPOINT,
  GatehouseError,
  type JobSpec,
  jobSpecProblem,
  type JobState,
  type JobStatus,
} from '../../wire/index.js';
import { commitOutput, DatasetError, exists, MANIFEST_FILE, openDataset, openRoot, partitionFile, readExisting, replaceRefusal } from '../catalog/index.js';
import { countRows, expandArgv, runCommand, runtimeArgv, WarmWorker, WorkerStartError } from '../runners/index.js';
import {
  type Isolation,
  killUidProcesses,
  outOfMemoryMessage,
  prepareJobArea,
  removeJobArea,
  REMOVING_PREFIX,
  removeTree,
  sealJobOutput,
  taskLaunch,
  taskPaths,
  UidPool,
  writeJobSource,
} from '../sandbox/index.js';
import { fairShare } from './fair-share.js';
import { JobDb, type JobRow, type PartitionRow } from './job-db.js';
import { JobLog } from './job-log.js';
import { type InputShape, JobRun, jobStatus, type TaskOutcome, type TaskWorker } from './job-run.js';

/** Job ids are folder and file names here: the gateway's ids fit this. */
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const SOURCE_FILE = { python: 'job.py', node: 'job.mjs', command: 'job.src' } as const;
const ERROR_TAIL_LINES = 12;

export interface JobEngineOptions {
  dataRoot: string;
  /** The engine's own folder: engine.db and logs/. */
  stateDir: string;
  slots: number;
  isolation: Isolation;
  /** Host path of the runner scripts tasks execute. */
  runtimeDir: string;
  python: string;
  maxOutputBytes: number;
  logMaxBytes: number;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
  /** Set when tasks cannot run here at all (say, a data root they cannot reach): submissions are refused with it. */
  unusable?: string | null;
}

export interface PartitionEvent {
  job: string;
  seconds: number;
  outcome: 'done' | 'retried' | 'failed';
}

export class JobEngine extends EventEmitter<{ partition: [PartitionEvent]; finished: [JobStatus] }> {
  private readonly db: JobDb;
  private readonly runs = new Map<string, JobRun>();
  private readonly uids: UidPool | null;
  private readonly stagingRoot: string;
  /** Job ids and output names of submissions in flight. */
  private readonly reserved = new Set<string>();
  private closed = false;

  private constructor(private readonly o: JobEngineOptions) {
    super();
    this.db = new JobDb(join(o.stateDir, 'engine.db'));
    this.uids = o.isolation.taskUids === null ? null : new UidPool(o.isolation.taskUids);
    this.stagingRoot = join(o.dataRoot, '.staging');
  }

  /** Opens the job database and picks up every job a previous engine left unfinished. */
  static async open(o: JobEngineOptions): Promise<JobEngine> {
    const engine = new JobEngine(o);
    const unfinished = engine.db.unfinished();
    await engine.removeAbandonedAreas(new Set(unfinished.map((r) => r.id)));
    for (const row of unfinished) await engine.resume(row);
    engine.reschedule();
    return engine;
  }

  get slots(): number {
    return this.o.slots;
  }

  async submit(spec: JobSpec, claims: AdmissionClaims): Promise<JobStatus> {
    if (this.o.unusable) throw new GatehouseError('not_ready', `the engine cannot run jobs: ${this.o.unusable}`);
    const problem = jobSpecProblem(spec);
    if (problem !== null) throw new GatehouseError('invalid_request', problem, { field: `body.${problem.slice(0, problem.indexOf(':'))}` });
    if (!JOB_ID.test(claims.job)) throw new GatehouseError('invalid_request', 'the ticket names a job id that is not 1-64 letters, digits, _ and -');
    if (this.db.ticketSpent(claims.jti)) throw new GatehouseError('forbidden', 'this admission ticket was used before; each ticket admits one job', { ticket: 'replayed' });
    // Claimed before the first await, so two submissions racing for an id or an output cannot both pass.
    this.checkFree(claims.job, spec);
    this.reserved.add(claims.job).add(`output:${spec.output}`);
    try {
      const input = await this.openInput(spec.input);
      const count = input.manifest.partitions.length;
      const wanted = spec.partitions ?? input.manifest.partitions.map((_, i) => i);
      const outside = wanted.find((i) => i >= count);
      if (outside !== undefined) throw new GatehouseError('invalid_request', `partitions: ${spec.input} has ${count} partitions (0-${count - 1}); there is no ${outside}`, { field: 'body.partitions' });
      await this.checkOutput(spec, claims);
      // Spent only now: a refused submission leaves the gateway free to retry with the same ticket.
      if (!this.db.spendTicket(claims.jti, claims.exp)) throw new GatehouseError('forbidden', 'this admission ticket was used before; each ticket admits one job', { ticket: 'replayed' });
      this.db.insertJob(
        { id: claims.job, user: claims.user, spec, granted: claims.granted, created_at: new Date().toISOString(), replaces: claims.replaces },
        wanted.map((i) => ({ input_idx: i, rows: input.manifest.partitions[i]!.rows, bytes: input.manifest.partitions[i]!.bytes })),
      );
      const row = this.db.job(claims.job)!;
      const run = this.activate(row, this.db.partitions(row.id), shape(input));
      run.log.engine(`submitted by ${row.user}: ${spec.runtime} over ${wanted.length} partitions of ${spec.input} → ${spec.output}, ${claims.granted.cores} cores × ${claims.granted.memory_mb} MB, ${claims.granted.time_limit_s} s`);
      this.o.log.info({ job: row.id, user: row.user, input: spec.input, output: spec.output, partitions: wanted.length }, 'job queued');
      this.startPreparing(run);
      return this.status(row.id)!;
    } finally {
      this.reserved.delete(claims.job);
      this.reserved.delete(`output:${spec.output}`);
    }
  }

  private checkFree(jobId: string, spec: JobSpec): void {
    if (this.reserved.has(jobId) || this.db.job(jobId) !== undefined) throw new GatehouseError('conflict', `job ${jobId} exists`);
    if (this.reserved.has(`output:${spec.output}`)) throw new GatehouseError('conflict', `another job is being submitted to write ${spec.output}`);
    for (const run of this.runs.values()) {
      if (run.row.spec.output === spec.output) throw new GatehouseError('conflict', `another job is already writing ${spec.output}`); // whose is not this user's business
      if (spec.mode === 'overwrite' && run.row.spec.input === spec.output) throw new GatehouseError('conflict', `another job is reading ${spec.output}; it cannot be overwritten until that job ends`);
      if (run.row.spec.output === spec.input) throw new GatehouseError('conflict', `another job is writing ${spec.input}; read it once that job has finished`);
    }
  }

  /**
   * The output is a new name, or with overwrite an existing dataset the ticket's user owns (or whose
   * owner the ticket's replaces claim names): never a namespace, never inside a dataset. Refusals are
   * conflict, never forbidden (the gateway reads an engine forbidden as a refused ticket). Decided
   * again at commit, where the dataset may have appeared or changed hands meanwhile.
   */
  private async checkOutput(spec: JobSpec, claims: AdmissionClaims): Promise<void> {
    const target = join(this.o.dataRoot, spec.output);
    const slash = spec.output.indexOf('/');
    if (slash > 0 && (await exists(join(this.o.dataRoot, spec.output.slice(0, slash), MANIFEST_FILE)))) {
      throw new GatehouseError('invalid_request', `output: ${spec.output.slice(0, slash)} is a dataset, not a namespace`, { field: 'body.output' });
    }
    if (!(await exists(target))) return;
    if (!(await exists(join(target, MANIFEST_FILE)))) {
      throw new GatehouseError('conflict', `${spec.output} is a namespace (a folder of datasets), not a dataset; choose another output`);
    }
    if (spec.mode !== 'overwrite') throw new GatehouseError('conflict', `dataset ${spec.output} exists; submit with "mode": "overwrite" to replace it`);
    let existing: Awaited<ReturnType<typeof readExisting>>;
    try {
      existing = await readExisting(await openRoot(this.o.dataRoot), spec.output);
    } catch (err) {
      if (err instanceof DatasetError) throw new GatehouseError('conflict', `output ${spec.output} cannot be replaced: ${err.message}`);
      throw err;
    }
    if (existing === null || existing.manifest === null) return; // gone meanwhile, or a namespace now: the commit decides
    const refusal = replaceRefusal(spec.output, existing.manifest.owner, { user: claims.user, replaces: claims.replaces });
    if (refusal !== null) throw new GatehouseError('conflict', `the engine will not replace ${spec.output}: ${refusal}`);
  }

  status(id: string): JobStatus | undefined {
    const run = this.runs.get(id);
    if (run !== undefined) return jobStatus(run.row, run.parts, run);
    const row = this.db.job(id);
    return row === undefined ? undefined : jobStatus(row, this.db.partitions(id));
  }

  list(user: string | undefined, limit: number): JobStatus[] {
    return this.db.jobs(user, limit).map((row) => this.status(row.id)!);
  }

  /** Every job not yet ended (queued or running), oldest first. */
  active(): JobStatus[] {
    return [...this.runs.values()].map((run) => jobStatus(run.row, run.parts, run));
  }

  /** The live log of a running job, or the file of a finished one (undefined: no such job). */
  logOf(id: string): { live: JobLog | null; file: string } | undefined {
    const run = this.runs.get(id);
    if (run !== undefined) return { live: run.log, file: run.log.file };
    if (this.db.job(id) === undefined) return undefined;
    return { live: null, file: join(this.o.stateDir, 'logs', `${id}.log`) };
  }

  /** Kills every process of the job at once and removes its staging; a finished job is left as it is. */
  async cancel(id: string): Promise<JobStatus | undefined> {
    const run = this.runs.get(id);
    if (run !== undefined) {
      await this.finish(run, 'cancelled', null);
      await run.ended; // a job already committing ends as the commit decides, and that is what we answer
    }
    return this.status(id);
  }

  metrics(): { slots: number; busy: number; queuedPartitions: number; byState: Record<string, number> } {
    const runs = [...this.runs.values()];
    return {
      slots: this.o.slots,
      busy: runs.reduce((n, r) => n + r.workers.size, 0),
      queuedPartitions: runs.reduce((n, r) => n + r.todo.length, 0),
      byState: this.db.countsByState(),
    };
  }

  /** Stops every worker; running jobs stay running in the database and resume on the next start. */
  async close(): Promise<void> {
    this.closed = true;
    const settling: Promise<unknown>[] = [];
    for (const run of this.runs.values()) {
      run.stopped = true;
      if (run.deadline !== null) clearTimeout(run.deadline);
      for (const worker of run.workers) worker.kill();
      if (run.preparation !== null) settling.push(run.preparation);
    }
    await Promise.allSettled(settling);
    await new Promise((r) => setTimeout(r, 50)); // workers' loops see `stopped` and write nothing more
    this.db.close();
  }

  /** Areas of jobs that ended while the engine died before it could remove them. */
  private async removeAbandonedAreas(keep: Set<string>): Promise<void> {
    const entries = await readdir(this.stagingRoot).catch(() => [] as string[]);
    for (const entry of entries) {
      // A tree whose removal was cut short stays in a root-only .removing-* folder: finish it.
      if ((entry.startsWith('.') && !entry.startsWith(REMOVING_PREFIX)) || keep.has(entry)) continue;
      await removeTree(join(this.stagingRoot, entry)).catch((err: Error) => this.o.log.warn({ area: entry, err: err.message }, 'could not remove an abandoned job area'));
    }
  }

  private activate(row: JobRow, parts: PartitionRow[], input: InputShape): JobRun {
    const run = new JobRun(row, row.seq, parts, input, JobLog.forJob(join(this.o.stateDir, 'logs'), row.id, this.o.logMaxBytes));
    this.runs.set(row.id, run);
    return run;
  }

  private async openInput(name: string) {
    try {
      return await openDataset(await openRoot(this.o.dataRoot), name);
    } catch (err) {
      if (err instanceof DatasetError) {
        throw new GatehouseError(err.code === 'not_found' ? 'not_found' : 'invalid_request', `input ${name}: ${err.message}`, { field: 'body.input' });
      }
      throw err;
    }
  }

  /** After a restart: what was running is todo again, and the job waits for slots like a new one. */
  private async resume(row: JobRow): Promise<void> {
    const at = () => new Date().toISOString();
    // Killed between moving the output into place and recording it: the dataset is the proof.
    const committed = await openDataset(await openRoot(this.o.dataRoot), row.spec.output).catch(() => null);
    if (committed !== null && committed.manifest.produced_by === row.id) {
      this.db.finish(row.id, 'succeeded', null, at());
      await removeTree(join(this.stagingRoot, row.id)).catch(() => undefined);
      return;
    }
    const parts = this.db.partitions(row.id);
    for (const p of parts) {
      if (p.state === 'running' || p.state === 'failed') {
        // The engine's death is not the partition's failure: that attempt is not counted.
        this.db.partitionInterrupted(row.id, p.idx);
        p.state = 'todo';
        p.attempts = Math.max(0, p.attempts - 1);
      }
    }
    let input: InputShape;
    try {
      input = shape(await this.openInput(row.spec.input));
      const missing = parts.find((p) => input.files[p.input_idx] === undefined);
      if (missing !== undefined) throw new Error(`${row.spec.input} changed while the engine was down: it has no partition ${missing.input_idx} any more`);
    } catch (err) {
      this.db.finish(row.id, 'failed', `after a restart: ${(err as Error).message}`, at());
      await removeTree(join(this.stagingRoot, row.id)).catch(() => undefined);
      return;
    }
    const run = this.activate(row, parts, input);
    run.log.engine(`engine restarted: ${parts.filter((p) => p.state === 'done').length} of ${parts.length} partitions were committed; the rest run again`);
    this.o.log.info({ job: row.id, todo: run.todo.length }, 'job resumed');
    if (row.state === 'running') this.armDeadline(run);
    this.startPreparing(run);
  }

  /** Builds the job's area; finish() waits for this, so a cancel never races the linking of inputs. */
  private startPreparing(run: JobRun): void {
    run.preparation = this.prepare(run);
    void run.preparation.then(async (problem) => {
      if (problem !== null) await this.finish(run, 'failed', `the job could not be prepared: ${problem}`);
      else if (!run.stopped && run.finished) await this.commit(run);
      else this.reschedule();
    });
  }

  /** Null when the area is ready, else why not (never throws). */
  private async prepare(run: JobRun): Promise<string | null> {
    const { row } = run;
    try {
      let uid: number | null = null;
      if (this.uids !== null) {
        if (row.uid !== null) {
          this.uids.restore(row.id, row.uid);
          uid = row.uid;
          // Workers of a killed engine die by their parent-death signal; anything they started must go too.
          await killUidProcesses(uid);
        } else {
          uid = this.uids.take(row.id);
          this.db.setUid(row.id, uid);
        }
      }
      if (run.stopped) return null;
      run.area = await prepareJobArea(this.o.isolation, {
        stagingRoot: this.stagingRoot,
        jobId: row.id,
        uid,
        inputs: run.parts.map((p) => run.input.files[p.input_idx]!),
      });
      if (run.stopped) return null;
      if (row.spec.source !== undefined) await writeJobSource(run.area, SOURCE_FILE[row.spec.runtime], row.spec.source);
      // A partition recorded done whose file is gone (a hand-cleaned staging) is simply redone.
      for (const p of run.parts) {
        if (p.state === 'done' && !(await exists(join(run.area.output, partitionFile(p.idx, run.outputFormat))))) {
          this.db.partitionTodo(row.id, p.idx);
          p.state = 'todo';
          run.todo.push(p.idx);
        }
      }
      run.ready = true;
      return null;
    } catch (err) {
      return this.scrub((err as Error).message);
    }
  }

  /** Messages reach users: the data root's place on the engine's disk is not theirs to know. */
  private scrub(message: string): string {
    return message.replaceAll(this.o.dataRoot, '<data root>');
  }

  private reschedule(): void {
    if (this.closed) return;
    const runs = [...this.runs.values()];
    const targets = fairShare(
      this.o.slots,
      runs.map((r) => ({ id: r.row.id, user: r.row.user, seq: r.seq, wants: r.wants })),
    );
    for (const r of runs) r.target = targets.get(r.row.id) ?? 0;
    let busy = runs.reduce((n, r) => n + r.workers.size, 0);
    // The furthest below its share first, so a freed slot goes where fairness says.
    runs.sort((a, b) => b.target - b.workers.size - (a.target - a.workers.size) || a.seq - b.seq);
    for (const run of runs) {
      while (!run.stopped && run.ready && run.workers.size < run.target && busy < this.o.slots) {
        this.spawn(run);
        busy++;
      }
    }
  }

  private spawn(run: JobRun): void {
    if (run.row.state === 'queued') {
      const at = new Date().toISOString();
      this.db.started(run.row.id, at);
      run.row = { ...run.row, state: 'running', started_at: run.row.started_at ?? at };
      run.log.engine(`started (${this.o.isolation.describe()})`);
      this.armDeadline(run);
    }
    let worker: TaskWorker;
    try {
      worker = this.newWorker(run);
    } catch (err) {
      void this.finish(run, 'failed', `a worker could not be started: ${(err as Error).message}`);
      return;
    }
    run.workers.add(worker);
    // Nothing a job does may take the engine down: whatever escapes fails that job alone.
    void this.work(run, worker).catch((err: Error) => {
      this.o.log.error({ job: run.row.id, err: err.message }, 'worker loop failed');
      return this.finish(run, 'failed', `the engine failed running this job: ${this.scrub(err.message)}`);
    });
  }

  private armDeadline(run: JobRun): void {
    const limit = run.row.granted.time_limit_s;
    const started = Date.parse(run.row.started_at ?? new Date().toISOString());
    const left = Math.max(0, started + limit * 1000 - Date.now());
    run.deadline = setTimeout(() => void this.finish(run, 'failed', `time limit of ${limit} s reached; every process of the job was killed`), left);
    run.deadline.unref();
  }

  private newWorker(run: JobRun): TaskWorker {
    const { spec, granted, id } = run.row;
    const area = run.area!;
    const paths = taskPaths(this.o.isolation, area, this.o.runtimeDir);
    const source = join(paths.work, SOURCE_FILE[spec.runtime]);
    const limits = { memoryMb: granted.memory_mb, addressSpace: spec.runtime !== 'node', maxFileBytes: this.o.maxOutputBytes };
    const sink = (partition: number | null, stream: 'stdout' | 'stderr', line: string) => run.log.partition(partition, stream, line);
    if (spec.runtime === 'command') {
      const launchFor = (task: { input: string; output: string; partition: number }) =>
        taskLaunch(this.o.isolation, area, this.o.runtimeDir, expandArgv(spec.argv!, { ...task, partition: String(task.partition), source }), limits);
      return new CommandWorker(launchFor, sink);
    }
    const argv = runtimeArgv(spec.runtime, {
      runtimeDir: paths.runtime,
      source,
      entrypoint: spec.entrypoint ?? DEFAULT_ENTRYPOINT,
      jobId: id,
      python: this.o.python,
      memoryMb: granted.memory_mb,
      node: process.execPath,
    });
    const warm = WarmWorker.start(taskLaunch(this.o.isolation, area, this.o.runtimeDir, argv, limits, { GATEHOUSE_PDEATHSIG: '1' }), sink);
    return {
      startedAt: warm.startedAt,
      ready: () => warm.ready(),
      run: async (task) => {
        const result = await warm.run(task);
        return result.ok ? result : { ok: false, error: result.error, oom: result.oom };
      },
      stop: () => warm.stop(),
      kill: () => warm.kill(),
    };
  }

  /** One worker's life: pull partitions while the job has some and this worker is within its share. */
  private async work(run: JobRun, worker: TaskWorker): Promise<void> {
    const { row } = run;
    const paths = taskPaths(this.o.isolation, run.area!, this.o.runtimeDir);
    let healthy = true;
    try {
      try {
        await worker.ready();
      } catch (err) {
        if (run.stopped) return;
        healthy = false;
        const what = err instanceof WorkerStartError ? `the ${row.spec.runtime} source failed to load` : 'a worker could not start';
        await this.finish(run, 'failed', `${what}: ${tail(err instanceof Error ? err.message : String(err))}`);
        return;
      }
      const dispatch = (idx: number) => {
        const part = run.parts[idx]!;
        part.state = 'running';
        part.attempts += 1;
        this.db.partitionRunning(row.id, idx);
        run.running.set(worker, idx);
        const file = partitionFile(idx, run.outputFormat);
        const attemptFile = `${file}.a${part.attempts}`;
        // Users see the input's partition numbers (ctx.partition, [p7], errors); the output is numbered 0..n-1.
        const shown = part.input_idx;
        const outcome = worker.run({
          partition: shown,
          attempt: part.attempts,
          input: join(paths.input, basename(run.input.files[part.input_idx]!)),
          output: join(paths.output, attemptFile),
          format: run.input.format,
        });
        return { idx, part, file, attemptFile, shown, outcome };
      };
      // A worker over its job's share takes no more: its slot goes back to fair share.
      const next = () => (!run.stopped && run.workers.size <= run.target ? run.todo.shift() : undefined);
      const first = next();
      let current = first === undefined ? null : dispatch(first);
      while (current !== null) {
        const { idx, part, file, attemptFile, shown } = current;
        const outcome = await current.outcome;
        run.running.delete(worker);
        if (run.stopped) return;
        if (outcome.ok) {
          // The worker gets its next partition before this one's bookkeeping, so it never waits for the engine.
          const following = next();
          current = following === undefined ? null : dispatch(following);
          current?.outcome.catch(() => undefined);
          const error = await this.keep(run, part, attemptFile, file, outcome);
          if (error !== null) {
            await this.finish(run, 'failed', error);
            return;
          }
          continue;
        }
        healthy = false; // a retry gets a fresh worker: this one's state is suspect
        const message = outcome.oom ? `${outOfMemoryMessage(shown, row.granted.memory_mb)}\n${tail(outcome.error)}` : tail(outcome.error);
        if (part.attempts < run.maxAttempts) {
          part.state = 'todo';
          part.error = message;
          this.db.partitionFailed(row.id, idx, 'todo', message);
          run.todo.push(idx);
          run.log.engine(`partition ${shown} attempt ${part.attempts} failed; retrying (its worker is replaced by a fresh one):\n${message}`);
          this.emit('partition', { job: row.id, seconds: 0, outcome: 'retried' });
          break;
        }
        part.state = 'failed';
        this.db.partitionFailed(row.id, idx, 'failed', message);
        this.emit('partition', { job: row.id, seconds: 0, outcome: 'failed' });
        await this.finish(run, 'failed', `partition ${shown} failed after ${part.attempts} attempt${part.attempts === 1 ? '' : 's'}: ${message}`);
        return;
      }
    } finally {
      run.running.delete(worker);
      if (healthy && !run.stopped) await worker.stop();
      else worker.kill();
      run.workers.delete(worker);
      if (!this.closed) this.db.addCoreSeconds(row.id, (Date.now() - worker.startedAt) / 1000);
      if (!run.stopped && run.finished && run.workers.size === 0) await this.commit(run);
      this.reschedule();
    }
  }

  /** Renames a finished attempt into the output; null, or why the job must fail. */
  private async keep(run: JobRun, part: PartitionRow, attemptFile: string, file: string, outcome: Extract<TaskOutcome, { ok: true }>): Promise<string | null> {
    const area = run.area!;
    const from = join(area.output, attemptFile);
    const shown = part.input_idx;
    let rows: number;
    let bytes: number;
    try {
      // Written by the task: a plain file of its own, or nothing is kept (no links to elsewhere, no FIFOs).
      const info = await lstat(from);
      if (!info.isFile() || info.nlink !== 1) return `partition ${shown}: the task's output is not a plain file`;
      bytes = info.size;
      if (bytes > this.o.maxOutputBytes) return `partition ${shown}: the output is over the engine's limit of ${Math.round(this.o.maxOutputBytes / 1048576)} MiB (engine.max_output_mb)`;
      // The runners count their own output (in the worker, in parallel); a count that is not a count is refused.
      if (outcome.rows_out !== null) {
        if (!Number.isSafeInteger(outcome.rows_out) || outcome.rows_out < 0) return `partition ${shown}: the worker's reply was malformed (did the job write to file descriptor 3?)`;
        rows = outcome.rows_out;
      } else {
        rows = (await countRows(from, run.outputFormat, this.o.maxOutputBytes)).rows;
      }
      await rename(from, join(area.output, file));
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? `partition ${shown}: the task wrote nothing to its output`
        : `partition ${shown}: its output could not be kept: ${this.scrub((err as Error).message)}`;
    }
    part.state = 'done';
    part.rows_out = rows;
    part.bytes_out = bytes;
    part.seconds = Number.isFinite(outcome.seconds) ? outcome.seconds : 0;
    part.error = null;
    this.db.partitionDone(run.row.id, part.idx, { rows_out: rows, bytes_out: bytes, seconds: part.seconds });
    this.emit('partition', { job: run.row.id, seconds: part.seconds, outcome: 'done' });
    const total = run.parts.reduce((n, p) => n + (p.state === 'done' ? p.bytes_out : 0), 0);
    if (total > this.o.maxOutputBytes) return `the output is over the engine's limit of ${Math.round(this.o.maxOutputBytes / 1048576)} MiB (engine.max_output_mb)`;
    return null;
  }

  private async commit(run: JobRun): Promise<void> {
    if (run.stopped) return;
    run.stopped = true;
    run.committing = true;
    const { row } = run;
    const area = run.area!;
    try {
      // out/ leaves the tasks' reach and becomes root's before anything in it is read: no link or
      // folder smuggled into it, and none planted later by any job, is ever followed.
      const sealed = await sealJobOutput(area, { namespaced: this.o.isolation.bwrap });
      await commitOutput(this.o.dataRoot, row.spec.output, {
        folder: sealed.folder,
        format: run.outputFormat,
        rows: run.parts.map((p) => p.rows_out),
        fallbackColumns: run.input.columns,
        owner: row.user,
        labels: [...run.input.labels, ...(row.spec.labels ?? [])],
        producedBy: row.id,
        overwrite: row.spec.mode === 'overwrite',
        ...(row.replaces !== null ? { replaces: row.replaces } : {}),
        trash: join(area.dir, 'replaced'),
        sealed: true,
      });
    } catch (err) {
      await this.finish(run, 'failed', `the output could not be committed: ${(err as Error).message}`, true);
      return;
    }
    await this.finish(run, 'succeeded', null, true);
  }

  /**
   * Ends a run. The database learns the outcome first (it is the truth a restart reads); status
   * shows it only once the job's processes are gone and its staging removed, so "failed" or
   * "cancelled" always means nothing of the job is left.
   */
  private async finish(run: JobRun, state: JobState, error: string | null, committing = false): Promise<void> {
    if (run.finishing || this.closed) return;
    // Once the output is being moved into place the job's fate is the commit's: a cancel or a
    // time limit arriving then must not report "cancelled" for a dataset that appears anyway.
    if (run.committing && !committing) return;
    run.finishing = true;
    run.stopped = true;
    if (run.deadline !== null) clearTimeout(run.deadline);
    for (const worker of run.workers) worker.kill();
    const at = new Date().toISOString();
    this.db.finish(run.row.id, state, error, at);
    await run.preparation; // never remove an area while it is being made
    if (run.area !== null) await removeJobArea(run.area, { namespaced: this.o.isolation.bwrap }).catch((err: Error) => this.o.log.error({ job: run.row.id, err: err.message }, 'could not remove the job area'));
    else await removeTree(join(this.stagingRoot, run.row.id)).catch(() => undefined);
    run.row = { ...run.row, state, error, finished_at: at };
    run.log.engine(state === 'succeeded' ? `succeeded: ${row(run)}` : `${state}${error === null ? '' : `: ${error}`}`);
    run.log.end();
    this.runs.delete(run.row.id);
    this.uids?.release(run.row.id);
    this.o.log[state === 'failed' ? 'warn' : 'info']({ job: run.row.id, state, error }, 'job finished');
    this.emit('finished', this.status(run.row.id)!);
    run.markEnded();
    this.reschedule();
  }
}

/** A slot that runs the command once per partition. */
class CommandWorker implements TaskWorker {
  readonly startedAt = Date.now();
  private readonly abort = new AbortController();

  constructor(
    private readonly launchFor: (task: { input: string; output: string; partition: number }) => ReturnType<typeof taskLaunch>,
    private readonly sink: (partition: number | null, stream: 'stdout' | 'stderr', line: string) => void,
  ) {}

  async ready(): Promise<void> {}

  async run(task: { partition: number; input: string; output: string }): Promise<TaskOutcome> {
    const result = await runCommand(this.launchFor(task), task.partition, this.sink, this.abort.signal);
    return result.ok ? { ok: true, rows_out: null, bytes_out: null, seconds: result.seconds } : { ok: false, error: result.error, oom: result.oom };
  }

  async stop(): Promise<void> {}

  kill(): void {
    this.abort.abort();
  }
}

function shape(input: Awaited<ReturnType<typeof openDataset>>): InputShape {
  return {
    format: input.manifest.format,
    columns: input.manifest.columns,
    labels: input.manifest.labels,
    files: input.manifest.partitions.map((p) => join(input.dir, p.file)),
  };
}

function row(run: JobRun): string {
  const s = jobStatus(run.row, run.parts);
  return `${s.partitions.done} partitions, ${s.rows_in} rows in, ${s.rows_out} rows out, ${s.bytes_out} bytes`;
}

function tail(text: string): string {
  return text.trimEnd().split('\n').slice(-ERROR_TAIL_LINES).join('\n');
}
