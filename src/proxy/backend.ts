// Stage 4's contract: where approved jobs go. The bundled engine is the first ComputeBackend; Slurm
// (through slurmrestd) is meant to fit the same five verbs, plus `active` for the reconciler. Each
// backend has its own catalog: a job's datasets are authorized on its backend's labels. Backends
// are built from configuration in backends.ts; the rest of the gateway knows only the list.
import type { Readable } from 'node:stream';
import type { ReadableDataset } from '../catalog/index.js';
import type { UploadCommitBody } from './engine-client.js';
import type { EngineEvents, EventsLog } from './engine-events.js';
import type { DatasetInfo, JobSpec, JobStatus, Resources } from '../wire/index.js';

/** A job as the gateway admitted it: its id, its owner, the exact spec and what was granted. */
export interface BackendSubmission {
  id: string;
  user: string;
  /**
   * The owner's POSIX account on a cluster (from their login, kept with the job): what a backend
   * that runs jobs as people (Slurm) runs this one as. Absent: the login named none.
   */
  posix_user?: string;
  spec: JobSpec;
  granted: Resources;
  /**
   * An overwrite of a dataset that is not the submitter's, which the gateway authorized (admin on
   * it by policy): the owner it had then (null: no owner). Absent: only the submitter's own
   * dataset may be replaced.
   */
  replaces?: { owner: string | null };
  /**
   * jobSpecHash(spec) as the gateway's record keeps it, so a backend that signs it (the bundled
   * engine's ticket) need not hash the spec again. A stale one only gets the job refused: the engine
   * hashes the spec it receives and compares.
   */
  spec_hash?: string;
}

export interface PreparedHandover {
  /**
   * Whether the backend holds the job checked (its refusals then come from submit() alone): true
   * once it has said so, false when it refused it or cannot say.
   */
  held: Promise<boolean>;
  submit(): Promise<{ backendId: string }>;
  drop(): void;
}

/** What a backend can run at once. */
export interface BackendCapacity {
  /** Workers across all jobs; a job never gets more than this many at once, whatever its cores. */
  slots: number;
}

export interface ComputeBackend {
  /** The `backend` a job spec names (`bundled`, `slurm`). */
  readonly name: string;
  /** Where it is, for people: a URL. */
  readonly location: string;
  /**
   * Hands the job over and resolves with the backend's id for it. A definite refusal (the output
   * exists, the input is missing) rejects with a GatehouseError of status < 500; a backend that
   * cannot answer rejects with `not_ready`, and then the job may or may not have arrived.
   */
  submit(job: BackendSubmission): Promise<{ backendId: string }>;
  /**
   * Optional, the held handover: the backend checks the job now and holds it, nothing stored or run,
   * while its job.submit is made durable; `submit()` then admits it (submit's answer and refusals),
   * `drop()` lets it go. Null: not now (submit the job as usual).
   */
  prepare?(job: BackendSubmission): PreparedHandover | null;
  /** Null: the backend does not know the job (never arrived, or lost). */
  status(backendId: string): Promise<JobStatus | null>;
  /** Every job the backend has not finished: what the reconciler compares the ledger with. */
  active(): Promise<JobStatus[]>;
  /** The job's log as text; with follow, a stream that ends with the job. Null: no such job. */
  logs(backendId: string, follow: boolean): Promise<Readable | null>;
  /** Stops the job; resolves with its status once it has ended. Null: no such job. */
  cancel(backendId: string): Promise<JobStatus | null>;
  /** The datasets it can read and write, with their manifests' owner and labels: what its jobs are authorized on. */
  datasets(): Promise<DatasetInfo[]>;
  /** What datasets() would say of one name, without listing the rest (the dataset, or undefined). Absent: the lookup lists. */
  dataset?(name: string): Promise<DatasetInfo | undefined>;
  /**
   * One dataset as a person reads it (GET /v1/datasets/:name): its manifest and which version of
   * it (etag). Null: none by that name, or none it can serve (a broken one is in its log). Absent:
   * this backend serves no reads.
   */
  readDataset?(name: string): Promise<ReadableDataset | null>;
  /**
   * Bytes `start`..`end` (inclusive, inside the partition) of partition `n` of version `etag`,
   * streamed. Rejects with `conflict` when the dataset was replaced since, `not_found` when gone.
   * `short`: the caller reads it to its end at once (a preview's window), so it may share a kept-alive
   * connection; anything a client paces (a download) must not.
   */
  readPartition?(name: string, n: number, etag: string, start: number, end: number, o?: { short?: boolean }): Promise<Readable>;
  /**
   * Removes version `etag` of a dataset the gateway decided may go. Rejects with `not_found` when
   * it is gone, `conflict` when it changed since. Absent: this backend removes nothing.
   */
  removeDataset?(name: string, etag: string): Promise<void>;
  /** An upload's partition streamed to staging (see EngineClient.uploadPartition). Absent: this backend takes no uploads. */
  uploadPartition?(o: { user: string; name: string; n: number; allowance: number; declared?: number | undefined; body: Readable }): Promise<{ bytes: number }>;
  /** Commits a staged upload as a dataset the user owns (see EngineClient.commitUpload). */
  commitUpload?(body: UploadCommitBody): Promise<{ columns: string[]; partitions: { file: string; rows: number; bytes: number }[] }>;
  /** Drops a staged upload; false when there was none. */
  dropUpload?(user: string, name: string): Promise<boolean>;
  /** The name of its line in /readyz (`engine` for the bundled engine). */
  readonly readinessCheck: string;
  /** That line: a short detail when it answers (`ok (<where>, ...)`); rejects with why not. */
  readiness(): Promise<string>;
  /** Its capacity, reused for a while (it changes only with the backend's configuration). */
  capacity(): Promise<BackendCapacity>;
  /**
   * Tells of each job change as it happens (the bundled engine's GET /events, engine-events.ts):
   * `onStatus` for every status it pushes, `onGap` when some may have been missed. Absent: this
   * backend is only polled.
   */
  watch?(o: { onStatus(status: JobStatus): Promise<void>; onGap(): void; log: EventsLog }): EngineEvents;
  /** Its own Prometheus text, relayed on the gateway's /metrics (so Prometheus needs only the gateway); absent: nothing to relay. */
  metrics?(): Promise<string>;
  close(): void;
}
