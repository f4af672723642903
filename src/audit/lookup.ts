// Two questions an auditor asks of one thing rather than of a filter: one event with its place in
// the chain (which chain, its neighbours' link, the signed checkpoint that covers it), and every
// event of one job (its own, and its datasets' decisions, reads and writes, which name it in
// details.job). Both read this gateway's own trail, in short statements like query.ts.
import type Database from 'better-sqlite3';
import { eventOf } from './chain.js';
import type { AuditEvent } from './event.js';
import type { AuditRow } from './schema.js';

export interface ChainPosition {
  /** The chain's identity (audit.db's, as the store's chain registry names it). */
  chain_id: string;
  /** The event's number in its chain. */
  sequence: number;
  prev_hash: string;
  hash: string;
  /** The first signed checkpoint at or after the event: it vouches for the event through the chain. Null: not signed yet. */
  checkpoint: { seq: number | null; event_id: number; hash: string; time: string; kid: string; jws: string } | null;
  /** Where the chain starts now (retention archives its beginning), or null when it is whole. */
  anchor: { event_id: number; file: string } | null;
}

/** One event by its number, with its chain position; null when this trail does not hold it (never written, or archived). */
export function eventWithPosition(db: Database.Database, id: number): { event: AuditEvent; position: ChainPosition } | null {
  const row = db.prepare('select * from audit_events where id = ?').get(id) as AuditRow | undefined;
  if (!row) return null;
  const chain = db.prepare('select id from audit_chain where one = 1').get() as { id: string } | undefined;
  const cp = db.prepare('select seq, event_id, hash, time, kid, jws from audit_checkpoints where event_id >= ? order by event_id, row limit 1').get(id) as
    | { seq: number | null; event_id: number; hash: string; time: number; kid: string; jws: string }
    | undefined;
  const anchor = db.prepare('select event_id, file from audit_anchor').get() as { event_id: number; file: string } | undefined;
  return {
    event: eventOf(row),
    position: {
      chain_id: chain?.id ?? '',
      sequence: row.id,
      prev_hash: row.prev_hash,
      hash: row.hash,
      checkpoint: cp ? { ...cp, time: new Date(cp.time).toISOString() } : null,
      anchor: anchor ?? null,
    },
  };
}

/** The newest signed checkpoint (for the console's verification badge), or null before the first. */
export function lastCheckpoint(db: Database.Database): { seq: number | null; event_id: number; time: string; kid: string } | null {
  const cp = db.prepare('select seq, event_id, time, kid from audit_checkpoints order by event_id desc, row desc limit 1').get() as { seq: number | null; event_id: number; time: number; kid: string } | undefined;
  return cp ? { ...cp, time: new Date(cp.time).toISOString() } : null;
}

/** How far around a job's own events its datasets' events are looked for (they are recorded just before submit, and with its end). */
const SLACK_MS = 10 * 60 * 1000;
/** A job's events are few; this bounds an answer for a trail that somehow holds more. */
const JOB_EVENTS_MAX = 2000;

/**
 * Every event of job `id` in chain order: those whose object is `job:<id>` (through the object
 * lookup table), then the dataset events naming it in details.job, looked for only in the time span of the
 * former (through the time index). Empty when the trail holds nothing of the job.
 */
export function jobEvents(db: Database.Database, id: string): AuditEvent[] {
  // The object lookup table up to its watermark, and the un-indexed tail after it (lookup-index.ts).
  const own = db
    .prepare(
      'select * from audit_events where id in (select id from audit_by_object where object = ?) and +object = ? and id <= (select upto from audit_indexed) ' +
        'union all select * from audit_events not indexed where id > (select upto from audit_indexed) and +object = ? order by id limit ?',
    )
    .all(`job:${id}`, `job:${id}`, `job:${id}`, JOB_EVENTS_MAX) as AuditRow[];
  if (own.length === 0) return [];
  const from = Math.min(...own.map((r) => r.time)) - SLACK_MS;
  const to = Math.max(...own.map((r) => r.time)) + SLACK_MS;
  const datasets = db
    .prepare("select * from audit_events indexed by audit_events_time where time between ? and ? and object like 'dataset:%' and json_extract(details, '$.job') = ? order by id limit ?")
    .all(from, to, id, JOB_EVENTS_MAX) as AuditRow[];
  return [...own, ...datasets].sort((a, b) => a.id - b.id).map(eventOf);
}
