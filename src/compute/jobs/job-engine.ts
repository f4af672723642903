// The engine's jobs: admitted specs become rows, rows become runs, and runs get workers as fair
// share allows. A worker pulls partitions until its job is done or over its share; each finished
// partition is renamed into the job's output folder and recorded, so a restart redoes only what
// was running. When every partition is done the folder becomes the output dataset in one rename.
//
// This class composes the parts and answers the engine's routes; each part is a file of its own:
// intake.ts (submissions), recovery.ts (after a restart), preparation.ts (a job's area),
// scheduler.ts (slots by fair share), task-workers.ts (what a slot runs), worker-loop.ts (a
// worker's life), partition-keep.ts (a finished partition kept), job-commit.ts (the output dataset),
// job-end.ts (every way a job ends), time-limit.ts, phase-clock.ts (where a job's time went, in the
// "job finished" log line); engine-context.ts is what they share.
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { AdmissionClaims, JobSpec, JobStatus } from '../../wire/index.js';
import { taskLauncher } from '../runners/index.js';
import { UidPool } from '../sandbox/index.js';
import { type EngineContext, type EngineEvents, type JobEngineOptions, statusOf } from './engine-context.js';
import { JobDb } from './job-db.js';
import { finishRun } from './job-end.js';
import type { JobLog } from './job-log.js';
import { jobStatus } from './job-run.js';
import { JobIntake, type PreparedJob } from './intake.js';
import { clearLeftoverUids, removeAbandonedAreas, resume } from './recovery.js';
import { reschedule } from './scheduler.js';
import { SparePool } from './spares.js';

export type { JobEngineOptions, PartitionEvent } from './engine-context.js';

export class JobEngine extends EventEmitter<EngineEvents> {
  private readonly ctx: EngineContext;
  private readonly intake: JobIntake;

  private constructor(o: JobEngineOptions) {
    super();
    this.ctx = {
      o,
      db: new JobDb(join(o.stateDir, 'engine.db')),
      runs: new Map(),
      uids: o.isolation.taskUids === null ? null : new UidPool(o.isolation.taskUids),
      stagingRoot: join(o.dataRoot, '.staging'),
      loops: new Set(),
      events: this,
      closed: false,
      reschedule: () => reschedule(this.ctx),
      spares: null,
    };
    this.ctx.spares = SparePool.for(this.ctx);
    this.intake = new JobIntake(this.ctx);
  }

  /** Opens the job database and picks up every job a previous engine left unfinished. */
  static async open(o: JobEngineOptions): Promise<JobEngine> {
    const engine = new JobEngine(o);
    const { ctx } = engine;
    // Workers are started by the launcher process (task-workers.ts): started now, not by the first job.
    taskLauncher(o.isolation.tools.setpriv).prepare();
    await clearLeftoverUids(ctx); // first: nothing of a dead engine may meet a uid given from here on
    const unfinished = ctx.db.unfinished();
    await removeAbandonedAreas(ctx, new Set(unfinished.map((r) => r.id)));
    for (const row of unfinished) await resume(ctx, row);
    ctx.reschedule();
    return engine;
  }

  get slots(): number {
    return this.ctx.o.slots;
  }

  submit(spec: JobSpec, claims: AdmissionClaims): Promise<JobStatus> {
    return this.intake.submit(spec, claims);
  }

  /** A submission checked and held, not stored (the held handover, src/compute/held-jobs.ts). */
  prepare(spec: JobSpec, claims: AdmissionClaims): Promise<PreparedJob> {
    return this.intake.prepare(spec, claims);
  }

  commit(prepared: PreparedJob): JobStatus {
    return this.intake.commit(prepared);
  }

  drop(prepared: PreparedJob): void {
    this.intake.drop(prepared);
  }

  status(id: string): JobStatus | undefined {
    return statusOf(this.ctx, id);
  }

  list(user: string | undefined, limit: number): JobStatus[] {
    return this.ctx.db.jobs(user, limit).map((row) => this.status(row.id)!);
  }

  /** Every job not yet ended (queued or running), oldest first. */
  active(): JobStatus[] {
    this.ctx.db.flush(); // as statusOf: what is shown done is recorded
    return [...this.ctx.runs.values()].map((run) => jobStatus(run.row, run.parts, run));
  }

  /** The live log of a running job, or the file of a finished one (undefined: no such job). */
  logOf(id: string): { live: JobLog | null; file: string } | undefined {
    const run = this.ctx.runs.get(id);
    if (run !== undefined) return { live: run.log, file: run.log.file };
    if (this.ctx.db.job(id) === undefined) return undefined;
    return { live: null, file: join(this.ctx.o.stateDir, 'logs', `${id}.log`) };
  }

  /** Kills every process of the job at once and removes its staging; a finished job is left as it is. */
  async cancel(id: string): Promise<JobStatus | undefined> {
    const run = this.ctx.runs.get(id);
    if (run !== undefined) {
      await finishRun(this.ctx, run, 'cancelled', null);
      await run.ended; // a job already committing ends as the commit decides, and that is what we answer
    }
    return this.status(id);
  }

  metrics(): { slots: number; busy: number; queuedPartitions: number; byState: Record<string, number> } {
    const runs = [...this.ctx.runs.values()];
    return {
      slots: this.ctx.o.slots,
      busy: runs.reduce((n, r) => n + r.workers.size, 0),
      queuedPartitions: runs.reduce((n, r) => n + r.todo.length, 0),
      byState: this.ctx.db.countsByState(),
    };
  }

  /** Stops every worker; running jobs stay running in the database and resume on the next start. */
  async close(): Promise<void> {
    const { ctx } = this;
    ctx.closed = true; // from here no worker is started and no job's end is recorded
    const settling: Promise<unknown>[] = [...ctx.loops];
    for (const run of ctx.runs.values()) {
      run.stopped = true;
      if (run.deadline !== null) clearTimeout(run.deadline);
      for (const worker of run.workers) worker.kill();
      for (const spare of run.spareRunners.splice(0)) spare.worker.kill();
      if (run.preparation !== null) settling.push(run.preparation);
    }
    if (ctx.spares !== null) settling.push(ctx.spares.close());
    // Every worker loop has seen `stopped` and ended (its worker killed, nothing more written)
    // before the database closes under it.
    await Promise.allSettled(settling);
    ctx.db.close();
  }
}
