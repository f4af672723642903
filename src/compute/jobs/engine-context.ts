// What the parts of the job engine share: its options, the job database, the runs held in memory,
// the events it emits, and the one step any part may call back into (rescheduling). Apart so that
// each part depends on this alone, never on the class that composes them or on each other in a circle.
import type { EventEmitter } from 'node:events';
import type { JobStatus } from '../../wire/index.js';
import type { Isolation, JobArea, UidPool } from '../sandbox/index.js';
import type { JobDb } from './job-db.js';
import { type JobRun, jobStatus, type SpareRunner } from './job-run.js';

export interface JobEngineOptions {
  dataRoot: string;
  /** The engine's own folder: engine.db and logs/. */
  stateDir: string;
  slots: number;
  isolation: Isolation;
  /** Host path of the runner scripts tasks execute. */
  runtimeDir: string;
  python: string;
  /** Whether python_runner.pyc is written in runtimeDir yet (python-compiled.ts): workers started from then on run it. */
  pythonCompiled?: () => boolean;
  maxOutputBytes: number;
  logMaxBytes: number;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
  /** Spare sandboxes (spares.ts, sandbox/ISOLATION.md): on unless false; used only under bubblewrap. */
  spares?: boolean;
  /** Set when tasks cannot run here at all (say, a data root they cannot reach): submissions are refused with it. */
  unusable?: string | null;
}

export interface PartitionEvent {
  job: string;
  seconds: number;
  outcome: 'done' | 'retried' | 'failed';
}

export interface EngineEvents {
  partition: [PartitionEvent];
  /** A job's first worker is starting: it is `running` from now (its id). */
  started: [string];
  finished: [JobStatus];
}

/** Spare sandboxes (spares.ts): what the job path asks of them. */
export interface Spares {
  /** The spare for a new job, its area renamed to the job's and its uid passed on; null: start workers as before. */
  take(run: JobRun): { area: JobArea; runners: SpareRunner[] } | null;
  /** Discards the spare, if any (its uid released): for a job that finds no free uid. */
  discard(): Promise<boolean>;
  close(): Promise<void>;
}

export interface EngineContext {
  readonly o: JobEngineOptions;
  readonly db: JobDb;
  /** Every job not yet ended, by id. */
  readonly runs: Map<string, JobRun>;
  /** Which job holds which task uid; null when the engine is not root. */
  readonly uids: UidPool | null;
  /** Spare sandboxes for new python jobs; null when not used (spares.ts). */
  spares: Spares | null;
  /** `<data root>/.staging`, where the job areas are. */
  readonly stagingRoot: string;
  /** Every worker loop started and not yet ended: close() awaits them before it closes the database. */
  readonly loops: Set<Promise<void>>;
  readonly events: EventEmitter<EngineEvents>;
  /** Set by close(): nothing more is scheduled, and no job's end is recorded. */
  closed: boolean;
  /** Hands free slots to the runs furthest below their fair share (scheduler.ts). */
  reschedule(): void;
}

/** A job's status: from memory while it runs, else from the database (undefined: no such job). */
export function statusOf(ctx: EngineContext, id: string): JobStatus | undefined {
  const run = ctx.runs.get(id);
  // What a status shows done is recorded first: a restart must never redo a partition seen done.
  ctx.db.flush();
  if (run !== undefined) return jobStatus(run.row, run.parts, run);
  const row = ctx.db.job(id);
  return row === undefined ? undefined : jobStatus(row, ctx.db.partitions(id));
}
