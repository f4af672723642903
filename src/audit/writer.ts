// The single writer of the trail: numbers events, chains them, and commits a whole batch in one
// transaction (one fsync). Runs inside the writer thread (writer-worker.ts); synchronous by design.
import type Database from 'better-sqlite3';
import { canonicalJson } from './canonical.js';
import { hashRow, GENESIS_HASH } from './chain.js';
import type { AuditInput } from './event.js';
import { type Checkpoint, signCheckpoint } from './checkpoint.js';
import { openAuditDb } from './schema.js';
import type { AuditSigningKey } from './signing-key.js';

/** An event as the gateway hands it to the writer: the columns before id, prev_hash and hash. */
export type PendingRow = [
  time: number,
  user: string | null,
  groups: string,
  auth_method: string | null,
  ip: string | null,
  action: string,
  object: string,
  decision: string,
  reason: string,
  policy_version: string | null,
  request_id: string | null,
  details: string,
];

/** The row the writer stores for `input` recorded at `time`: groups as JSON, details canonical. */
export function pendingRowOf(input: AuditInput, time: number): PendingRow {
  return [
    time,
    wellFormed(input.actor.user),
    JSON.stringify(input.actor.groups),
    wellFormed(input.actor.auth_method),
    wellFormed(input.actor.ip),
    wellFormed(input.action)!,
    wellFormed(input.object)!,
    input.decision,
    wellFormed(input.reason)!,
    wellFormed(input.policy_version ?? null),
    wellFormed(input.request_id ?? null),
    canonicalJson(input.details ?? {}),
  ];
}

/** SQLite stores text as UTF-8: a lone surrogate would come back as U+FFFD and no longer match its hash. */
function wellFormed(s: string | null): string | null {
  return s === null ? null : s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

export interface Head {
  id: number;
  hash: string;
}

export interface Appended {
  firstId: number;
  prevHash: string;
  hashes: string[];
}

export class TrailWriter {
  private insert: Database.Statement;
  private insertCheckpoint: Database.Statement;
  head: Head;
  lastCheckpoint: { event_id: number; at: number };

  private constructor(
    readonly db: Database.Database,
    private readonly key: AuditSigningKey,
  ) {
    this.insert = db.prepare(
      'insert into audit_events (id, time, user, groups, auth_method, ip, action, object, decision, reason, policy_version, request_id, details, prev_hash, hash) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)',
    );
    this.insertCheckpoint = db.prepare('insert or replace into audit_checkpoints (event_id, hash, time, kid, jws) values (?,?,?,?,?)');
    this.head = readHead(db);
    const cp = db.prepare('select event_id, time from audit_checkpoints order by event_id desc limit 1').get() as { event_id: number; time: number } | undefined;
    this.lastCheckpoint = { event_id: cp?.event_id ?? 0, at: cp?.time ?? 0 };
  }

  static open(dir: string, key: AuditSigningKey): TrailWriter {
    return new TrailWriter(openAuditDb(dir), key);
  }

  /** Appends the rows in one transaction; on any error nothing is kept and the head stays. */
  append(rows: readonly PendingRow[]): Appended {
    const firstId = this.head.id + 1;
    const prevHash = this.head.hash;
    const hashes: string[] = new Array(rows.length);
    let id = this.head.id;
    let prev = prevHash;
    this.db.exec('begin immediate');
    try {
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        id++;
        const hash = hashRow({ id, time: r[0], user: r[1], groups: r[2], auth_method: r[3], ip: r[4], action: r[5], object: r[6], decision: r[7], reason: r[8], policy_version: r[9], request_id: r[10], details: r[11], prev_hash: prev });
        this.insert.run(id, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], prev, hash);
        hashes[i] = hash;
        prev = hash;
      }
      this.db.exec('commit');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('rollback');
      throw err;
    }
    this.head = { id, hash: prev };
    return { firstId, prevHash, hashes };
  }

  /** Signs the head when it moved since the last checkpoint. */
  checkpoint(now = new Date()): Checkpoint | null {
    if (this.head.id === 0 || this.head.id === this.lastCheckpoint.event_id) return null;
    return this.signAt(this.head.id, this.head.hash, now);
  }

  /** Signs and stores a checkpoint for a given event (the head, or an archive's last event). */
  signAt(eventId: number, hash: string, now = new Date()): Checkpoint {
    const cp = signCheckpoint(this.key, eventId, hash, now);
    this.insertCheckpoint.run(cp.event_id, cp.hash, now.getTime(), cp.kid, cp.jws);
    if (eventId >= this.lastCheckpoint.event_id) this.lastCheckpoint = { event_id: eventId, at: now.getTime() };
    return cp;
  }

  get publicJwk(): AuditSigningKey['jwk'] {
    return this.key.jwk;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** The last event's id and hash, or the archived anchor's, or the genesis. */
export function readHead(db: Database.Database): Head {
  const last = db.prepare('select id, hash from audit_events order by id desc limit 1').get() as Head | undefined;
  if (last) return last;
  const anchor = db.prepare('select event_id as id, hash from audit_anchor').get() as Head | undefined;
  return anchor ?? { id: 0, hash: GENESIS_HASH };
}
