// What the Slurm backend keeps of each job, beside what Slurm knows: one row per job in the store
// (slurm_jobs, migration 0011), so every gateway over a shared store answers status, logs and cancel
// of any job, and the leader finishes a job another gateway submitted. Written before the job reaches
// Slurm (slurm_job_id null), so a restart can tell a submission it never heard the answer of. Once a
// record is final it is never written again (every write is conditional on the row still live), so a
// late write of a gateway that looked before the end cannot undo it.
//
// A finished job's logs are kept in slurm_job_logs: the job folder is the person's and is removed at
// the end, and the store is the one place every gateway reads.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../../store/index.js';
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

/** Apart from the gateway's other advisory locks (store/exclusive.ts 0x47480001, leadership 0x47480002). */
const FINISH_LOCK_CLASS = 0x47480003;
const JOB_ID = /^[A-Za-z0-9-]{1,64}$/;

export class SlurmJobRecords {
  constructor(
    private readonly store: Store,
    private readonly pollMs = 250,
  ) {}

  async read(id: string): Promise<SlurmJobRecord | null> {
    if (!JOB_ID.test(id)) return null;
    const row = await this.store.db.selectFrom('slurm_jobs').select('record').where('id', '=', id).executeTakeFirst();
    return row === undefined ? null : (JSON.parse(row.record) as SlurmJobRecord);
  }

  /** Writes r unless its row is final already; true when written. */
  async write(r: SlurmJobRecord): Promise<boolean> {
    const values = { id: r.id, live: r.final === null ? 1 : 0, record: JSON.stringify(r), updated_at: new Date().toISOString() };
    const result = await this.store.db
      .insertInto('slurm_jobs')
      .values(values)
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet((eb) => ({ live: eb.ref('excluded.live'), record: eb.ref('excluded.record'), updated_at: eb.ref('excluded.updated_at') }))
          .where('slurm_jobs.live', '=', 1),
      )
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /** The records not final: what a submission checks outputs against and the reconciler asks about. */
  async live(): Promise<SlurmJobRecord[]> {
    const rows = await this.store.db.selectFrom('slurm_jobs').select('record').where('live', '=', 1).execute();
    return rows.map((row) => JSON.parse(row.record) as SlurmJobRecord);
  }

  /** Keeps partition p's log of a finished job (already bounded by the caller). */
  async keepLog(id: string, partition: number, content: Buffer): Promise<void> {
    await this.store.db
      .insertInto('slurm_job_logs')
      .values({ job_id: id, partition, content })
      .onConflict((oc) => oc.columns(['job_id', 'partition']).doUpdateSet((eb) => ({ content: eb.ref('excluded.content') })))
      .execute();
  }

  /** Partition p's kept log; empty when none was kept. */
  async keptLog(id: string, partition: number): Promise<Buffer> {
    const row = await this.store.db.selectFrom('slurm_job_logs').select('content').where('job_id', '=', id).where('partition', '=', partition).executeTakeFirst();
    return row === undefined ? Buffer.alloc(0) : Buffer.from(row.content);
  }

  /**
   * Runs fn alone among every gateway over the store for job `id` (finishing a job: one commit of its
   * output). Over PostgreSQL: a session-level advisory lock on a session of its own, so a gateway that
   * dies mid-way frees it with its connection and another finishes the job again, as a restarted one
   * would. The embedded store has one process, whose callers the backend already keeps to one per job.
   */
  async exclusively<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.store.session === undefined) return fn();
    const key = createHash('sha256').update(`slurm-finish:${id}`).digest().readInt32BE(0);
    const session = this.store.session({ applicationName: 'gatehouse slurm finish' });
    session.on('error', () => undefined); // a lost session fails its next statement instead
    await session.connect();
    try {
      // Tried, not waited on in the server: a wait there would meet the statement timeout.
      for (;;) {
        const { rows } = await session.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [FINISH_LOCK_CLASS, key]);
        if (rows[0]?.ok === true) break;
        await new Promise((resolve) => setTimeout(resolve, this.pollMs));
      }
      return await fn();
    } finally {
      await session.end().catch(() => undefined); // ending the session frees the lock
    }
  }

  /**
   * Records of a gateway from before they moved into the store (state.dir/slurm/<id>.json and
   * <id>.logs/log-N.txt) are imported once at start-up; the folder is then renamed to
   * state.dir/slurm.imported, kept for the operator. A record the store has already is left as is.
   */
  async importFiles(dir: string): Promise<number> {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let imported = 0;
    for (const name of names) {
      const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
      if (!JOB_ID.test(id)) continue;
      let r: SlurmJobRecord;
      try {
        r = JSON.parse(readFileSync(join(dir, name), 'utf8')) as SlurmJobRecord;
      } catch (err) {
        throw new Error(`cannot import the Slurm job record ${join(dir, name)}: ${(err as Error).message}`);
      }
      if (r.id !== id) continue;
      const inserted = await this.store.db
        .insertInto('slurm_jobs')
        .values({ id, live: r.final === null ? 1 : 0, record: JSON.stringify(r), updated_at: new Date().toISOString() })
        .onConflict((oc) => oc.column('id').doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0) continue;
      imported += 1;
      for (const p of r.partitions) {
        let log: Buffer;
        try {
          log = readFileSync(join(dir, `${id}.logs`, `log-${p}.txt`));
        } catch {
          continue;
        }
        await this.keepLog(id, p, log);
      }
    }
    try {
      renameSync(dir, `${dir}.imported`);
    } catch {
      renameSync(dir, `${dir}.imported-${Date.now()}`); // an earlier import's folder is there
    }
    return imported;
  }
}
