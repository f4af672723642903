// What the Slurm backend keeps of each job, beside what Slurm knows: one JSON file per job in
// state.dir/slurm (0700), replaced whole by a rename, so a gateway killed at any moment finds each
// record as it was before or after a step, never half-written. Written before the job reaches Slurm
// (slurm_job_id null), so a restart can tell a submission it never heard the answer of.
import { mkdirSync, readdirSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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

export class SlurmJobFiles {
  /** The records not final, by id: read from disk once, then kept up to date by write(). */
  private liveIndex: Map<string, SlurmJobRecord> | null = null;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  async read(id: string): Promise<SlurmJobRecord | null> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) return null;
    try {
      return JSON.parse(await readFile(this.file(id), 'utf8')) as SlurmJobRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async write(r: SlurmJobRecord): Promise<void> {
    const tmp = `${this.file(r.id)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(r), { mode: 0o600 });
    await rename(tmp, this.file(r.id));
    if (this.liveIndex !== null) {
      if (r.final === null) this.liveIndex.set(r.id, r);
      else this.liveIndex.delete(r.id);
    }
  }

  /** The records not final: what a submission checks outputs against and the reconciler asks about. */
  async live(): Promise<SlurmJobRecord[]> {
    if (this.liveIndex === null) {
      const index = new Map<string, SlurmJobRecord>();
      for (const id of this.ids()) {
        const r = await this.read(id);
        if (r !== null && r.final === null) index.set(id, r);
      }
      this.liveIndex ??= index;
    }
    return [...this.liveIndex.values()];
  }

  /** The ids of every record. */
  ids(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  }

  /** Where a finished job's task logs are kept once its folder is gone. */
  logDir(id: string): string {
    return join(this.dir, `${id}.logs`);
  }
}
