// What the Slurm backend keeps of one job (in the store's slurm_jobs): its own file, so the record's
// checker (record-check.ts) and the store's reader (job-records.ts) share it without importing each other.
import type { DatasetFormat, JobSpec, JobStatus, Resources } from '../../wire/index.js';

export interface SlurmJobRecord {
  id: string;
  slurm_job_id: number | null;
  user: string;
  posix_user: string;
  /** Of the account, from Slurm's record; null until Slurm said. */
  uid: number | null;
  spec: JobSpec;
  granted: Resources;
  replaces?: { owner: string | null };
  /** The input partitions, one array task each (the task id is the partition). */
  partitions: number[];
  format: DatasetFormat;
  input_columns: string[];
  input_rows: number;
  /** The input rows of each partition, in `partitions` order (absent in records of older gateways). */
  partition_rows?: number[];
  input_bytes: number;
  /** The output's labels: the input's and the spec's. */
  labels: string[];
  dir: string;
  created_at: string;
  /** Set when the job on Slurm was changed beyond its grant: it is cancelled and fails with this. */
  breach?: string;
  /** The status once ended and, for a success, committed: never asked of Slurm again. */
  final: JobStatus | null;
}
