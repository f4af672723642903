// Admitted submissions the trail never ends: a job.submit (allow) with no later job.finish of its
// job. Normally an admitted job's record holds it until its end is recorded; a gateway that stopped
// in the few milliseconds between a durable job.submit and its record's (a power loss) leaves one
// that nothing else will ever end. The job path asks this once at start-up (proxy/lost-submissions.ts).
import type Database from 'better-sqlite3';
import { eventOf } from './chain.js';
import type { AuditEvent } from './event.js';
import { jobEvents } from './lookup.js';
import type { AuditRow } from './schema.js';

/**
 * How far before the newest job.submit on the trail to look. The submissions a stop can leave without
 * a record are the last ones it made, milliseconds before it: measured from the trail's newest
 * submission, not from now, so a gateway restarted days after a power loss still finds them.
 */
export const UNENDED_WINDOW_MS = 10 * 60 * 1000;
/** A bound on one start-up's answer (a trail cannot hold more than a handful of these). */
const UNENDED_MAX = 1000;

/**
 * job.submit events (decision allow) in the window before the newest one whose job has no later
 * job.finish: through the object lookup table up to its watermark, and the un-indexed tail after it
 * (lookup-index.ts), each lookup row checked against its event as queries check them (verify does
 * not refuse a forged extra row: it finds nothing there). Oldest first. Jobs still live (holding their record) are among them: the caller
 * asks the records and the backend before saying anything.
 */
export function unendedSubmissions(db: Database.Database, windowMs = UNENDED_WINDOW_MS): AuditEvent[] {
  const newest = db.prepare("select max(time) from audit_events indexed by audit_events_action_time where action = 'job.submit'").pluck().get() as number | null;
  if (newest === null) return [];
  const rows = db
    .prepare(
      "select * from audit_events e indexed by audit_events_action_time where e.action = 'job.submit' and e.time >= ? and e.decision = 'allow' " +
        "and not exists (select 1 from audit_by_object o join audit_events f on f.id = o.id where o.object = e.object and o.id > e.id and o.id <= (select upto from audit_indexed) and f.object = o.object and f.action = 'job.finish') " +
        "and not exists (select 1 from audit_events t where t.id > max(e.id, (select upto from audit_indexed)) and t.object = e.object and t.action = 'job.finish') " +
        'order by e.id limit ?',
    )
    .all(newest - windowMs, UNENDED_MAX) as AuditRow[];
  return rows.map(eventOf);
}

/**
 * How far apart a record's clock and the trail's may be: the writer stamps an event a little after
 * the record that asked for it was made (the same process clock, unless it was stepped).
 */
const CLOCK_SLACK_MS = 10 * 60 * 1000;

/**
 * What the trail says of job `id`'s admission, for a record of `user`'s made at `since` (ms) and never
 * sent: `admitted` (its job.submit or job.admit, allowed, made by `user`), `ended` (its job.finish is on
 * the trail: the gateway ended it, e.g. answered 503 when its record could not be written, so it must
 * not run whatever its row says), `absent`, or `unknown` when retention has archived events from about
 * then (an admission recorded and archived is no longer here to find). The row is vouched for as it
 * stands, not by its id alone: an admission by another user does not vouch for a row naming this one.
 */
export type TrailAdmission = 'admitted' | 'ended' | 'absent' | 'unknown';

export function admissionOnTrail(db: Database.Database, id: string, since: number, user: string): TrailAdmission {
  const events = jobEvents(db, id).filter((e) => e.object === `job:${id}`);
  if (events.some((e) => e.action === 'job.finish')) return 'ended';
  if (events.some((e) => (e.action === 'job.submit' || e.action === 'job.admit') && e.decision === 'allow' && e.actor.user === user)) return 'admitted';
  if (db.prepare('select event_id from audit_anchor').pluck().get() === undefined) return 'absent'; // nothing ever archived
  const oldest = db.prepare('select time from audit_events order by id limit 1').pluck().get() as number | undefined;
  return oldest !== undefined && oldest < since - CLOCK_SLACK_MS ? 'absent' : 'unknown';
}
