// One active job as the engine holds it in memory: its rows from the job database, the partitions
// still to do, the workers it has and what each is running. The database stays the truth; this is
// what scheduling decisions read without a query.
import type { DatasetFormat, JobStatus } from '../../wire/index.js';
import { DEFAULT_MAX_ATTEMPTS } from '../../wire/index.js';
import type { LineSink, WarmWorker } from '../runners/index.js';
import type { JobArea } from '../sandbox/index.js';
import type { JobRow, PartitionRow } from './job-db.js';
import type { JobLog } from './job-log.js';
import { PhaseClock } from './phase-clock.js';

/** What the engine needs of a worker, warm or one process per partition. */
export interface TaskWorker {
  readonly startedAt: number;
  /** How many partitions it may be handed at once (known once ready): more than 1 queues the next behind the running one. */
  readonly depth: number;
  ready(): Promise<void>;
  run(task: { partition: number; attempt: number; input: string; output: string; format: DatasetFormat }): Promise<TaskOutcome>;
  /** Exit once what was handed is run and answered (a warm runner; nothing is handed after it). */
  finish?(): void;
  stop(): Promise<void>;
  kill(): void;
}

export type TaskOutcome =
  | { ok: true; rows_out: number | null; bytes_out: number | null; seconds: number }
  /** unanswered: the worker died after this partition ran to its end, before it answered: run it again, not counted. */
  | { ok: false; error: string; oom: boolean; unanswered?: true };

/** A spare sandbox's runner (spares.ts): started before its job, its prints sent to `sink` once a job has it. */
export interface SpareRunner {
  worker: WarmWorker;
  sink: LineSink | null;
}

export interface InputShape {
  format: DatasetFormat;
  columns: string[];
  labels: string[];
  /** Input partition files by index (host paths). */
  files: string[];
}

export class JobRun {
  readonly todo: number[];
  readonly running = new Map<TaskWorker, number>();
  readonly workers = new Set<TaskWorker>();
  target = 0;
  stopped = false;
  committing = false;
  finishing = false;
  /** The job's area on disk, once made (removed by finishRun, job-end.ts). */
  area: JobArea | null = null;
  /** Runners of the spare sandbox this job took (spares.ts), not yet given a slot: its first workers. Killed at its end. */
  spareRunners: SpareRunner[] = [];
  /** Set once the area's folders are made and the source written: workers may start (and load it). */
  startable = false;
  /** Set once the area is complete (inputs linked): only then is a worker handed a partition. */
  ready = false;
  /** The area being made: null when it is complete, else why not (never rejects). */
  preparation: Promise<string | null> | null = null;
  /** Resolves when finishRun (job-end.ts) has done everything. */
  readonly ended: Promise<void>;
  markEnded!: () => void;
  deadline: NodeJS.Timeout | null = null;
  /** Bytes of the partitions kept so far (against engine.max_output_mb), added to as each is kept. */
  bytesOut: number;
  /** Where its time went (the engine's "job finished" log line); intake restarts it at the submission's arrival. */
  phases = new PhaseClock();
  /** A partition's seconds in a worker, averaged as they come (worker-loop.ts sizes each worker's queue by it). */
  partitionSeconds: number | null = null;

  constructor(
    public row: JobRow,
    readonly seq: number,
    readonly parts: PartitionRow[],
    readonly input: InputShape,
    readonly log: JobLog,
  ) {
    this.todo = parts.filter((p) => p.state === 'todo').map((p) => p.idx);
    this.bytesOut = parts.reduce((n, p) => n + (p.state === 'done' ? p.bytes_out : 0), 0);
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
  }

  get maxAttempts(): number {
    return this.row.spec.max_attempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  get outputFormat(): DatasetFormat {
    return this.row.spec.output_format ?? this.input.format;
  }

  /** Workers it could use now. */
  get wants(): number {
    return this.stopped || !this.startable ? 0 : Math.min(this.row.granted.cores, this.todo.length + this.running.size);
  }

  get finished(): boolean {
    return this.parts.every((p) => p.state === 'done');
  }
}

/** The status of a job, from its rows (and, while it runs, its live workers). */
export function jobStatus(row: JobRow, parts: PartitionRow[], live?: JobRun, now = Date.now()): JobStatus {
  const count = (state: PartitionRow['state']) => parts.filter((p) => p.state === state).length;
  const done = parts.filter((p) => p.state === 'done');
  const sum = (rows: PartitionRow[], key: 'rows_in' | 'bytes_in' | 'rows_out' | 'bytes_out') => rows.reduce((n, p) => n + p[key], 0);
  const liveSeconds = live === undefined ? 0 : [...live.workers].reduce((s, w) => s + (now - w.startedAt) / 1000, 0);
  return {
    id: row.id,
    name: row.spec.name,
    user: row.user,
    state: row.state,
    input: row.spec.input,
    output: row.spec.output,
    runtime: row.spec.runtime,
    resources: row.granted,
    // A worker holds a short queue of handed partitions (worker-loop.ts) but runs one at a time: a person reads "running" as that.
    partitions: { total: parts.length, done: done.length, failed: count('failed'), running: live === undefined ? count('running') : Math.min(count('running'), live.workers.size) },
    workers: live?.workers.size ?? 0,
    rows_in: sum(done, 'rows_in'),
    rows_out: sum(done, 'rows_out'),
    bytes_in: sum(done, 'bytes_in'),
    bytes_out: sum(done, 'bytes_out'),
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    core_seconds: Math.round((row.core_seconds + liveSeconds) * 1000) / 1000,
    attempts: parts.reduce((n, p) => n + p.attempts, 0),
    error: row.error,
    reason: row.state === 'queued' ? (live !== undefined && !live.ready ? 'preparing the job area' : 'waiting for a free slot') : null,
  };
}
