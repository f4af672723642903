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
 * query whose range reaches the tail's time: query.ts). On a copy of the 1M trail in 1 024-event
 * commits, disk written per event: 12.8 KB at 8 192, 8.4 KB at 32 768, 5.2 KB at 65 536 (23.1 KB
 * with the indexes on the table); a scan of 32 768 tail rows took 17 ms at load 10 (BENCHMARKS.md).
 */
export const INDEX_BATCH = 32_768;

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
