// The trail's own SQLite file (audit.dir/audit.db): one writer thread owns it, so group commits
// never wait on the job store's locks, and IT can put it on a volume of its own.
// Columns, not a JSON blob, so filtered queries use indexes; verify rebuilds each event from these
// columns, so an edit to any of them breaks the chain.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const AUDIT_FILE = 'audit.db';

/** The trail's schema, one step a version (user_version); exported so tests can make a trail as older code made it. */
export const MIGRATIONS: readonly string[] = [
  `create table audit_events (
     id integer primary key,          -- the event's position in the chain, from 1, never reused
     time integer not null,           -- ms since the epoch (the event carries it as ISO 8601)
     user text,
     groups text not null,            -- JSON array, in the order the identity had them
     auth_method text,
     ip text,
     action text not null,
     object text not null,
     decision text not null,
     reason text not null,
     policy_version text,
     request_id text,
     details text not null,           -- canonical JSON (RFC 8785 key order)
     prev_hash text not null,
     hash text not null
   );
   create index audit_events_time on audit_events(time);
   create index audit_events_user_time on audit_events(user, time);
   create index audit_events_action_time on audit_events(action, time);
   create index audit_events_object_time on audit_events(object, time);
   create index audit_events_request on audit_events(request_id) where request_id is not null;
   -- Signed statements "event N had hash H at time T": a truncated tail is found by them.
   create table audit_checkpoints (
     event_id integer primary key,
     hash text not null,
     time integer not null,
     kid text not null,
     jws text not null                -- compact JWS (EdDSA) over {event_id, hash, time}
   );
   -- Where the chain starts once retention has archived its beginning (one row, or none).
   create table audit_anchor (
     one integer primary key check (one = 1),
     event_id integer not null,       -- the last archived event
     hash text not null,              -- its hash: the first remaining event's prev_hash
     file text not null,              -- the archive holding it
     jws text not null                -- the checkpoint that signs event_id and hash
   );`,
  // Checkpoints chain (each signs its number and the previous one's digest), and an archive run
  // signs a second checkpoint at the same event naming its file: keyed by row, not by event.
  `alter table audit_checkpoints rename to audit_checkpoints_v1;
   create table audit_checkpoints (
     row integer primary key,
     seq integer unique,              -- its number in the checkpoint chain, as signed (null: signed before checkpoints chained)
     event_id integer not null,
     hash text not null,
     time integer not null,
     kid text not null,
     prev text,                       -- the previous checkpoint's digest, as signed
     jws text not null                -- compact JWS (EdDSA) over {seq, prev, event_id, hash, time[, archive]}
   );
   insert into audit_checkpoints (event_id, hash, time, kid, jws) select event_id, hash, time, kid, jws from audit_checkpoints_v1 order by event_id;
   drop table audit_checkpoints_v1;
   create index audit_checkpoints_event on audit_checkpoints(event_id);`,
  // The chain's identity, drawn once when its file is made: gateways over a shared store register
  // their chain by it, so a new gateway at an old one's address is not taken for that chain.
  `create table audit_chain (
     one integer primary key check (one = 1),
     id text not null
   );
   insert into audit_chain (one, id) values (1, lower(hex(randomblob(16))));`,
  // Issue 21: the (user, time) and (object, time) indexes on the hot table put each event's entry
  // on its own user's and object's leaf page, a page no other event of a group commit touches: 8.5
  // of the 9.8 KB an event wrote on a 1M trail. They become lookup tables that the writer fills in
  // large sorted batches between commits (lookup-index.ts); queries read them up to the watermark
  // and scan the short tail after it, so no answer misses an event (query.ts).
  `drop index audit_events_user_time;
   drop index audit_events_object_time;
   create table audit_by_user (
     user text not null,
     time integer not null,
     id integer not null,
     primary key (user, time, id)
   ) without rowid;
   create table audit_by_object (
     object text not null,
     time integer not null,
     id integer not null,
     primary key (object, time, id)
   ) without rowid;
   -- Every event with id <= upto is in both lookup tables (user: when it has one).
   create table audit_indexed (
     one integer primary key check (one = 1),
     upto integer not null
   );
   insert into audit_by_user (user, time, id) select user, time, id from audit_events where user is not null order by user, time, id;
   insert into audit_by_object (object, time, id) select object, time, id from audit_events order by object, time, id;
   insert into audit_indexed (one, upto) values (1, coalesce((select max(id) from audit_events), (select event_id from audit_anchor), 0));`,
  // The earliest time in the un-indexed tail (null: the tail is empty), kept by the writer in each
  // append's transaction: a query whose range ends before it skips the tail scan (query.ts).
  `alter table audit_indexed add column tail_from integer;
   update audit_indexed set tail_from = (select min(time) from audit_events where id > audit_indexed.upto);`,
];

export interface AuditDbOptions {
  readonly?: boolean;
}

/** Opens (and, for the writer, creates and migrates) the trail's database in `dir`. */
export function openAuditDb(dir: string, options: AuditDbOptions = {}): Database.Database {
  const file = join(dir, AUDIT_FILE);
  if (options.readonly) {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return db;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    // FULL: a commit returns once it is on disk; an event is acknowledged only after that.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    // Checkpoint the WAL into the database every ~160 MB (40 000 pages) rather than 4 MB: on a
    // trail of a million events each event dirties a leaf of the user and of the object index far
    // from the last one, so a checkpoint writes back nearly every page its commits touched; a
    // longer WAL writes a page touched by many commits back once. Disk writes per event on the 1M
    // trail, 256-event commits: 57 KB at 10 000 pages, 29 KB at 40 000 (BENCHMARKS.md,
    // audit-append-1m). Commits stay durable either way: each is fsync'd in the WAL.
    db.pragma('wal_autocheckpoint = 40000');
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** A stored row, in the column order of `audit_events`. */
export interface AuditRow {
  id: number;
  time: number;
  user: string | null;
  groups: string;
  auth_method: string | null;
  ip: string | null;
  action: string;
  object: string;
  decision: string;
  reason: string;
  policy_version: string | null;
  request_id: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}
