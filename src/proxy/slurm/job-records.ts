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
import { renameSync } from 'node:fs';
import type { Store } from '../../store/index.js';
import { GatehouseError } from '../../wire/index.js';
import type { SlurmJobRecord } from './job-record.js';

export type { SlurmJobRecord } from './job-record.js';
import { checkSlurmJobRecord } from './record-check.js';
import { namesIn, openOwnFolder, readOwnFile } from './state-files.js';

/** Apart from the gateway's other advisory locks (store/exclusive.ts 0x47480001, leadership 0x47480002). */
const FINISH_LOCK_CLASS = 0x47480003;
const JOB_ID = /^[A-Za-z0-9-]{1,64}$/;
/** Server-side TCP keepalives of a finishing session, as store/leadership.ts's (dropped about 9 s after its host went silent). */
const KEEPALIVES = { tcp_keepalives_idle: 5, tcp_keepalives_interval: 2, tcp_keepalives_count: 2, tcp_user_timeout: 9_000 };

/** What is kept of a finished job's logs, every partition together: the store's bound per job. */
export const LOGS_KEPT_BYTES = 8 * 1024 * 1024;
/** An older gateway's record file larger than this is not read (argv alone may be 1 MiB). */
const RECORD_FILE_MAX_BYTES = 4 * 1024 * 1024;

/** What is kept of each partition's log of a job of n partitions: the job's share, never more in all. */
export function keptLogBytes(partitions: number): number {
  return Math.floor(LOGS_KEPT_BYTES / Math.max(1, partitions));
}

export class SlurmJobRecords {
  constructor(
    private readonly store: Store,
    private readonly pollMs: number,
    /** slurm.jobs_dir: the only place a record's folder may be. */
    private readonly jobsDir: string,
  ) {}

  /** The record of job `id`; a row that is not a valid record of that job, in its own folder, is refused. */
  async read(id: string): Promise<SlurmJobRecord | null> {
    if (!JOB_ID.test(id)) return null;
    const row = await this.store.db.selectFrom('slurm_jobs').select('record').where('id', '=', id).executeTakeFirst();
    if (row === undefined) return null;
    try {
      return checkSlurmJobRecord(row.record, id, this.jobsDir);
    } catch (err) {
      throw new GatehouseError('internal', (err as Error).message);
    }
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
    const rows = await this.store.db.selectFrom('slurm_jobs').select(['id', 'record']).where('live', '=', 1).execute();
    // A row that is not a valid record is left alone (its status answers why); the others go on.
    return rows.flatMap((row) => {
      try {
        return [checkSlurmJobRecord(row.record, row.id, this.jobsDir)];
      } catch {
        return [];
      }
    });
  }

  /** Keeps partition p's log of a finished job (bounded by the caller to its share, keptLogBytes). */
  async keepLog(id: string, partition: number, content: Buffer): Promise<void> {
    await this.store.db
      .insertInto('slurm_job_logs')
      .values({ job_id: id, partition, content: content.subarray(0, LOGS_KEPT_BYTES) })
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
    const done = (await this.locked(id, fn, true)) as { value: T }; // waiting, it always ran
    return done.value;
  }

  /**
   * As exclusively, but null at once when another gateway holds job `id`'s lock (it is finishing the
   * job): a status, a log follow or the leader's reconcile must not wait on a commit elsewhere, nor on
   * a gateway that froze holding it (one frozen finisher would stall the reconcile of every job).
   */
  async tryExclusively<T>(id: string, fn: () => Promise<T>): Promise<{ value: T } | null> {
    return this.locked(id, fn, false);
  }

  private async locked<T>(id: string, fn: () => Promise<T>, wait: boolean): Promise<{ value: T } | null> {
    if (this.store.session === undefined) return { value: await fn() };
    const key = createHash('sha256').update(`slurm-finish:${id}`).digest().readInt32BE(0);
    // Keepalives as the leader's session has them (store/leadership.ts): a finisher whose host vanished
    // (no FIN, no RST) frees the lock in seconds, not after the kernel's two hours.
    const session = this.store.session({ applicationName: 'gatehouse slurm finish', settings: KEEPALIVES });
    session.on('error', () => undefined); // a lost session fails its next statement instead
    await session.connect();
    try {
      // Tried, not waited on in the server: a wait there would meet the statement timeout.
      for (;;) {
        const { rows } = await session.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [FINISH_LOCK_CLASS, key]);
        if (rows[0]?.ok === true) break;
        if (!wait) return null;
        await new Promise((resolve) => setTimeout(resolve, this.pollMs));
      }
      return { value: await fn() };
    } finally {
      await session.end().catch(() => undefined); // ending the session frees the lock
    }
  }

  /**
   * Records of a gateway from before they moved into the store (state.dir/slurm/<id>.json and
   * <id>.logs/log-N.txt) are imported once at start-up; the folder is then renamed to
   * state.dir/slurm.imported, kept for the operator. A record the store has already is left as is.
   * Read link-safely (state-files.ts) and checked like a row (record-check.ts); the logs bounded as
   * a finished job's are. Anything else there refuses the import, naming it (the backend not ready).
   */
  async importFiles(dir: string): Promise<number> {
    const folder = await openOwnFolder(dir).catch((err: Error) => {
      throw new Error(`cannot import the Slurm job records in ${dir}: ${err.message}`);
    });
    if (folder === null) return 0;
    let imported = 0;
    try {
      for (const name of await namesIn(folder)) {
        const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
        if (!JOB_ID.test(id)) continue;
        let r: SlurmJobRecord;
        try {
          const text = await readOwnFile(folder, name, RECORD_FILE_MAX_BYTES, true);
          if (text === null) continue;
          r = checkSlurmJobRecord(text.toString('utf8'), id, this.jobsDir);
        } catch (err) {
          throw new Error(`cannot import the Slurm job record ${dir}/${name}: ${(err as Error).message}`);
        }
        // Its logs are read (and checked) before its row is written: a refused one leaves no row without them.
        const kept: [number, Buffer][] = [];
        const logs = await openOwnFolder(folder, `${id}.logs`).catch((err: Error) => {
          throw new Error(`cannot import the Slurm job logs in ${dir}: ${err.message}`);
        });
        if (logs !== null) {
          try {
            for (const p of r.partitions) {
              const log = await readOwnFile(logs, `log-${p}.txt`, keptLogBytes(r.partitions.length), false).catch((err: Error) => {
                throw new Error(`cannot import the Slurm job logs in ${dir}/${id}.logs: ${err.message}`);
              });
              if (log !== null) kept.push([p, log]);
            }
          } finally {
            await logs.close();
          }
        }
        const inserted = await this.store.db
          .insertInto('slurm_jobs')
          .values({ id, live: r.final === null ? 1 : 0, record: JSON.stringify(r), updated_at: new Date().toISOString() })
          .onConflict((oc) => oc.column('id').doNothing())
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0) continue;
        imported += 1;
        for (const [p, log] of kept) await this.keepLog(id, p, log);
      }
    } finally {
      await folder.close();
    }
    try {
      renameSync(dir, `${dir}.imported`);
    } catch {
      renameSync(dir, `${dir}.imported-${Date.now()}`); // an earlier import's folder is there
    }
    return imported;
  }
}
