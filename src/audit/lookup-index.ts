// The user and object lookup tables (schema.ts, migration 4), filled by the writer thread in large
// sorted batches instead of on every commit: a batch of thousands of events touches each user's and
// object's leaf page once, where a per-commit index entry dirtied one leaf page per event.
// `audit_indexed.upto` is the watermark: every event up to it is in the tables; events after it (the
// tail, at most INDEX_BATCH plus one group commit) are found by the queries' scan of the tail.
// The tables are derived data: a crash before a batch is indexed loses nothing (the next run
// catches up from the watermark), and queries re-check each hit against the event's own columns.
import type Database from 'better-sqlite3';

/**
 * Events the tail may hold before the writer indexes it: the most a query's tail scan reads (only a
 * query whose range reaches the tail's time: query.ts). A pass rewrites most leaves of the object
 * table whatever its size (its keys are spread over all of it), so a longer batch shares those
 * writes among more events. On a copy of the 1M trail in 1 024-event commits, per event: 3.64 KB
 * written and 14.4 µs of CPU at 32 768, 2.62 KB and 12.4 µs at 65 536 (1.35 KB and 8.1 µs with no
 * pass at all); a user's query reaching the tail took 9-17 ms at 32 768 and 15-16 ms at 65 536 at
 * load 6 (BENCHMARKS.md, audit-append-1m, session 35).
 */
export const INDEX_BATCH = 65_536;

/** Lookup rows one step of an index pass copies (IndexPass): about 10-20 ms of the writer thread. */
export const INDEX_STEP = 4_096;

const statements = new WeakMap<Database.Database, { upto: Database.Statement; byUser: Database.Statement; byObject: Database.Statement; mark: Database.Statement }>();

function prepared(db: Database.Database) {
  let s = statements.get(db);
  if (!s) {
    s = {
      upto: db.prepare('select upto from audit_indexed where one = 1').pluck(),
      // Sorted by the key, so the inserts walk each table's B-tree once, left to right.
      byUser: db.prepare('insert or ignore into audit_by_user (user, time, id) select user, time, id from audit_events where id > ? and id <= ? and user is not null order by user, time, id'),
      byObject: db.prepare('insert or ignore into audit_by_object (object, time, id) select object, time, id from audit_events where id > ? and id <= ? order by object, time, id'),
      // The tail left after `head` (none when it is the head, as the writer indexes).
      mark: db.prepare('update audit_indexed set upto = @head, tail_from = (select min(time) from audit_events where id > @head) where one = 1'),
    };
    statements.set(db, s);
  }
  return s;
}

/** The earliest time among the events after the watermark (null: none); see noteTail. */
export function tailFrom(db: Database.Database): number | null {
  return db.prepare('select tail_from from audit_indexed where one = 1').pluck().get() as number | null;
}

/**
 * Lowers the tail's earliest time to `time` (the least time of events just appended after the
 * watermark), inside the append's own transaction: a query ending before it need not scan the tail.
 * Writes only when it lowers it (the first commit after an index pass, or a clock stepping back).
 */
export function noteTail(db: Database.Database, time: number): void {
  db.prepare('update audit_indexed set tail_from = @time where one = 1 and (tail_from is null or tail_from > @time)').run({ time });
}

/** The watermark: every event with an id up to it is in the lookup tables. */
export function indexedUpTo(db: Database.Database): number {
  return prepared(db).upto.get() as number;
}

/**
 * Puts the events after the watermark, up to `head`, into the lookup tables in one transaction
 * (committed like any other: synchronous FULL), and moves the watermark. Returns how many ids it covered.
 */
export function indexTail(db: Database.Database, head: number): number {
  const s = prepared(db);
  const from = s.upto.get() as number;
  if (head <= from) return 0;
  db.transaction(() => {
    s.byUser.run(from, head);
    s.byObject.run(from, head);
    s.mark.run({ head });
  }).immediate();
  return head - from;
}

/**
 * One index pass (indexTail's work) cut into steps, so that commits go on between them: a pass of
 * INDEX_BATCH events held every commit for about 0.2 s on the 1M trail (the p99 of a busy trail).
 * The tail's lookup rows are sorted once into temporary tables (this connection's only, in memory),
 * then copied into the lookup tables a key range at a time, each range in a transaction of its own;
 * the last step moves the watermark to the pass's end. Rows copied before the watermark moves are
 * beyond it, where no query reads the tables (query.ts, verify.ts), and a pass that stops halfway
 * (a crash, a reopened writer) is done again from the watermark: `insert or ignore` takes the same
 * rows twice without harm.
 */
export class IndexPass {
  /** Rows sorted into each pass table (null: not sorted yet), and how many were copied. */
  private rows: { user: number | null; object: number | null } = { user: null, object: null };
  private done = { user: 0, object: 0 };

  private constructor(
    private readonly db: Database.Database,
    /** The first event after the watermark. */
    private readonly from: number,
    /** The last event this pass indexes. */
    readonly head: number,
  ) {}

  /** A pass over the tail after the watermark, up to `head`; null when there is none. */
  static start(db: Database.Database, head: number): IndexPass | null {
    const from = prepared(db).upto.get() as number;
    if (head <= from) return null;
    db.pragma('temp_store = memory');
    return new IndexPass(db, from, head);
  }

  /**
   * Sorts the pass's rows for one lookup table into a temporary table (this connection's only, in
   * memory), the user table's at the first step and the object table's when the user rows are
   * copied, so no step sorts both. Inserted in key order: the rowids are that order, so a range of
   * rowids is a range of keys.
   */
  private sort(which: 'user' | 'object'): number {
    const where = which === 'user' ? ' and user is not null' : '';
    this.db.exec(`drop table if exists temp.audit_pass_${which}; create temp table audit_pass_${which} (${which} text not null, time integer not null, id integer not null)`);
    return this.db.prepare(`insert into temp.audit_pass_${which} (${which}, time, id) select ${which}, time, id from audit_events where id > ? and id <= ?${where} order by ${which}, time, id`).run(this.from, this.head).changes;
  }

  /**
   * Copies the next `size` rows of the user table, or else of the object table, into its lookup
   * table (one transaction, committed like any other); the last step also moves the watermark.
   * Returns true once the pass is complete.
   */
  step(size: number): boolean {
    if (this.rows.user === null) {
      this.rows.user = this.sort('user');
      return false;
    }
    const which = this.done.user < this.rows.user ? 'user' : 'object';
    if (which === 'object' && this.rows.object === null) {
      this.db.exec('drop table if exists temp.audit_pass_user');
      this.rows.object = this.sort('object');
      return false;
    }
    const total = this.rows[which]!;
    const from = this.done[which];
    const to = Math.min(from + size, total);
    const last = which === 'object' && to >= total;
    withoutSync(this.db, () =>
      this.db.transaction(() => {
        if (to > from) this.db.prepare(`insert or ignore into audit_by_${which} (${which}, time, id) select ${which}, time, id from temp.audit_pass_${which} where rowid > ? and rowid <= ? order by rowid`).run(from, to);
        if (last) prepared(this.db).mark.run({ head: this.head });
      }).immediate(),
    );
    this.done[which] = to;
    if (last) this.db.exec('drop table if exists temp.audit_pass_object');
    return last;
  }
}

/**
 * Runs a step's transaction with `synchronous = NORMAL`: its commit goes to the WAL without an fsync
 * of its own, and the next group commit's fsync (synchronous FULL, restored here even when the step
 * throws) puts it on disk with that commit's events. The lookup rows are derived data: the WAL keeps
 * commits in order and recovery keeps a whole prefix of them, so a crash can lose only steps after
 * the last fsync'd commit, never an acknowledged event, and a lost step is done again from the
 * watermark, which only the pass's last step moves. 32 steps a pass each paid an fsync of their own.
 */
function withoutSync<T>(db: Database.Database, step: () => T): T {
  db.pragma('synchronous = NORMAL');
  try {
    return step();
  } finally {
    db.pragma('synchronous = FULL');
  }
}
