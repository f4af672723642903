// The gateway's job records (the store's `jobs` table): owner, spec and its hash, granted
// resources, backend and backend id, state, timings, core-seconds and the backend's last status.
// They are the durable half of the usage ledger and the pending queue.
import { sql } from 'kysely';
import { type Store, sectionDb, type Tables } from '../store/index.js';
import type { JobSpec, JobStatus } from '../wire/index.js';

/** `dispatching`: admitted and being handed to the backend (quota held; not yet acknowledged by it). */
export type RecordState = 'pending' | 'dispatching' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const LIVE_STATES: readonly RecordState[] = ['pending', 'dispatching', 'queued', 'running'];
export const ENDED_STATES: readonly RecordState[] = ['succeeded', 'failed', 'cancelled'];

type Row = Tables['jobs'];

/** A row of the store's `jobs` table, with its JSON columns parsed and its flags typed. */
export type JobRecord = Omit<Row, 'groups' | 'spec' | 'held' | 'status' | 'state' | 'end_owed'> & {
  /** The owner's groups at submission: the limits (and the recheck) of a pending job. */
  groups: string[];
  spec: JobSpec;
  state: RecordState;
  /** True while the job holds quota: admitted and not yet released. */
  held: boolean;
  /** The backend's last status (kept once the job ends, so it outlives the backend's memory). */
  status: JobStatus | null;
};

const toRow = (r: JobRecord): Row => ({ ...r, groups: JSON.stringify(r.groups), spec: JSON.stringify(r.spec), held: r.held ? 1 : 0, status: r.status === null ? null : JSON.stringify(r.status), end_owed: null });
const fromRow = ({ end_owed: _owed, ...r }: Row): JobRecord => ({
  ...r,
  groups: JSON.parse(r.groups) as string[],
  spec: JSON.parse(r.spec) as JobSpec,
  held: r.held === 1,
  status: r.status === null ? null : (JSON.parse(r.status) as JobStatus),
  state: r.state as RecordState,
});

/** Writes made inside a user's section go through its locking transaction (see store/exclusive.ts). */
export class JobRecords {
  private seq = 0;

  private constructor(private readonly store: Store) {}

  static async open(store: Store): Promise<JobRecords> {
    const records = new JobRecords(store);
    const row = await store.db.selectFrom('jobs').select(sql<number>`coalesce(max(seq), 0)`.as('seq')).executeTakeFirstOrThrow();
    records.seq = Number(row.seq);
    return records;
  }

  /**
   * The next submission number (the pending queues' order survives restarts through it). Drawn
   * under the user's lock, so one user's numbers rise in the order their jobs were admitted, on
   * whichever gateway; PostgreSQL's sequence keeps them unique across gateways.
   */
  async nextSeq(): Promise<number> {
    if (this.store.dialect === 'postgres') {
      const { rows } = await sql<{ seq: string }>`select nextval('jobs_seq') as seq`.execute(this.store.db);
      return Number(rows[0]!.seq);
    }
    this.seq += 1;
    return this.seq;
  }

  /**
   * A new job's record, resolved once it is on disk. On the embedded store it is committed at once with
   * its fsync on the thread pool (store/sqlite.ts), so the event loop goes on (a handover's request
   * leaves) while the disk works; inside a transaction, and on PostgreSQL, an ordinary insert. A failed
   * fsync takes the row back before it throws (it may not be on disk, and a `dispatching` row left
   * behind would be handed over again by the reconciler after a restart, though the submission was
   * answered 503 and its end recorded).
   */
  async insert(record: JobRecord): Promise<void> {
    const query = sectionDb(this.store).insertInto('jobs').values(toRow(record));
    const synced = this.store.commitSyncingOffLoop?.(query.compile()) ?? null;
    if (synced === null) {
      await query.execute();
      return;
    }
    try {
      await synced;
    } catch (err) {
      await this.remove(record.id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes every field that changes over a job's life (the spec too: a pending job's output labels
   * are decided again as it leaves the queue), while the job is live: an ended record is final, so a
   * gateway holding an older copy of a job another ended cannot bring it back. False: it had ended.
   */
  save(r: JobRecord): Promise<boolean> {
    return this.transition(r, LIVE_STATES);
  }

  /**
   * Moves a job from one of `from` to `to`'s state with its fields; false when the record was no
   * longer in one of them (another gateway ended it, or admitted it from the queue, first). This is
   * what makes an end, and so the release of its quota, happen once across all gateways. `endOwed`:
   * an end, written with the chain id of the trail that owes it its job.finish (endsOwed).
   */
  async transition(to: JobRecord, from: readonly RecordState[], endOwed?: string): Promise<boolean> {
    const { state, held, reason, error, status, core_seconds, backend_id, admitted_at, finished_at, policy_version, spec, spec_hash } = toRow(to);
    const result = await sectionDb(this.store)
      .updateTable('jobs')
      .set({ state, held, reason, error, status, core_seconds, backend_id, admitted_at, finished_at, policy_version, spec, spec_hash, ...(endOwed !== undefined ? { end_owed: endOwed } : {}) })
      .where('id', '=', to.id)
      .where('state', 'in', [...from])
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Ended jobs whose job.finish the trail of chain `chain` owes (its gateway stopped before it was durable, or not yet cleared). */
  async endsOwed(chain: string): Promise<JobRecord[]> {
    const rows = await this.store.db.selectFrom('jobs').selectAll().where('end_owed', '=', chain).orderBy('seq', 'asc').execute();
    return rows.map(fromRow);
  }

  /** Those jobs' ends are durable on the trail that owed them. */
  async endsRecorded(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.store.db.updateTable('jobs').set({ end_owed: null }).where('id', 'in', [...ids]).execute();
  }

  /** Who cancelled it; written apart from transition(), so no other save can clear it. Only while the job is live. */
  async setCancelledBy(id: string, user: string): Promise<void> {
    await sectionDb(this.store).updateTable('jobs').set({ cancelled_by: user }).where('id', '=', id).where('state', 'in', [...LIVE_STATES]).execute();
  }

  async remove(id: string): Promise<void> {
    await sectionDb(this.store).deleteFrom('jobs').where('id', '=', id).execute();
  }

  /**
   * Removes the record of a submission its backend never took, while it is still that: not yet sent
   * by anyone and not ended (the leader may have resent it meanwhile, or another gateway ended it,
   * and then the record and its charge stay).
   */
  async removeUnsent(id: string): Promise<boolean> {
    const result = await sectionDb(this.store).deleteFrom('jobs').where('id', '=', id).where('state', '=', 'dispatching').where('backend_id', 'is', null).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = await this.store.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : fromRow(row);
  }

  /** Newest first; one user's, or everyone's. */
  async list(options: { user?: string; state?: string; limit: number }): Promise<JobRecord[]> {
    let q = this.store.db.selectFrom('jobs').selectAll();
    if (options.user !== undefined) q = q.where('user', '=', options.user);
    // Clients see `dispatching` as queued (src/proxy/job-view.ts), so they filter it as queued too.
    if (options.state !== undefined) q = q.where('state', 'in', options.state === 'queued' ? ['queued', 'dispatching'] : [options.state]);
    const rows = await q.orderBy('seq', 'desc').limit(options.limit).execute();
    return rows.map(fromRow);
  }

  /** Every job not ended, in submission order: the ledger's holds and the pending queues. */
  async live(): Promise<JobRecord[]> {
    const rows = await this.store.db.selectFrom('jobs').selectAll().where('state', 'in', [...LIVE_STATES]).orderBy('seq', 'asc').execute();
    return rows.map(fromRow);
  }

  /** One user's live jobs in submission order, and their charges since `since` (ISO). */
  async ofUser(user: string, since: string): Promise<{ live: JobRecord[]; charges: { core_seconds: number; finished_at: string }[] }> {
    const [live, charges] = await Promise.all([
      this.store.db.selectFrom('jobs').selectAll().where('user', '=', user).where('state', 'in', [...LIVE_STATES]).orderBy('seq', 'asc').execute(),
      this.store.db
        .selectFrom('jobs')
        .select(['core_seconds', 'finished_at'])
        .where('user', '=', user)
        .where('finished_at', '>', since)
        .where('state', 'in', [...ENDED_STATES])
        .where('core_seconds', '>', 0)
        .execute() as Promise<{ core_seconds: number; finished_at: string }[]>,
    ]);
    return { live: live.map(fromRow), charges };
  }

  /** Users with jobs waiting in a pending queue. */
  async pendingUsers(): Promise<string[]> {
    const rows = await this.store.db.selectFrom('jobs').select('user').distinct().where('state', '=', 'pending').execute();
    return rows.map((r) => r.user);
  }

  /** Core-seconds of jobs that ended since `since` (ISO): the rolling day's charges. */
  async chargesSince(since: string): Promise<{ user: string; core_seconds: number; finished_at: string }[]> {
    return this.store.db
      .selectFrom('jobs')
      .select(['user', 'core_seconds', 'finished_at'])
      .where('state', 'in', [...ENDED_STATES])
      .where('finished_at', '>', since)
      .where('core_seconds', '>', 0)
      .execute() as Promise<{ user: string; core_seconds: number; finished_at: string }[]>;
  }
}

/** Jobs not yet ended, by state and backend, as the store has them (every gateway's, on a shared store): /metrics. */
export async function countLiveJobs(store: Store): Promise<{ state: RecordState; backend: string; n: number }[]> {
  const rows = await store.db
    .selectFrom('jobs')
    .select(['state', 'backend', sql<number>`count(*)`.as('n')])
    .where('state', 'in', [...LIVE_STATES])
    .groupBy(['state', 'backend'])
    .execute();
  return rows.map((r) => ({ state: r.state as RecordState, backend: r.backend, n: Number(r.n) }));
}
