// The single writer of the trail: numbers events, chains them, and commits a whole batch in one
// transaction (one fsync). Runs inside the writer thread (writer-worker.ts); synchronous by design.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { canonicalJson } from './canonical.js';
import { afterPrev, beforeId, beforePrev, GENESIS_HASH, hashParts, hashRow, type RowContent } from './chain.js';
import type { AuditInput } from './event.js';
import { type ArchiveClaim, type Checkpoint, checkpointDigest, openCheckpoint, readCheckpoint, signCheckpoint } from './checkpoint.js';
import { INDEX_BATCH, INDEX_STEP, IndexPass, indexedUpTo, indexTail, noteTail, tailFrom } from './lookup-index.js';
import { type AuditRow, openAuditDb } from './schema.js';
import { legacyArchiveProblem } from './verify.js';
import type { AuditSigningKey } from './signing-key.js';
import { lastWitnessEntry, type WitnessEntry, WitnessWriter } from './witness.js';

/**
 * An event as the gateway hands it to the writer: the columns before id, prev_hash and hash, then
 * the three parts of its canonical encoding around id and prev_hash (chain.ts), made from the same
 * values: the writer thread stores the columns and hashes the parts.
 */
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
  beforeId: string,
  beforePrev: string,
  afterPrev: string,
];

/** The row the writer stores for `input` recorded at `time`: groups as JSON, details canonical. */
export function pendingRowOf(input: AuditInput, time: number): PendingRow {
  const c: RowContent = {
    time,
    user: wellFormed(input.actor.user),
    groups: JSON.stringify(input.actor.groups),
    auth_method: wellFormed(input.actor.auth_method),
    ip: wellFormed(input.actor.ip),
    action: wellFormed(input.action)!,
    object: wellFormed(input.object)!,
    decision: input.decision,
    reason: wellFormed(input.reason)!,
    policy_version: wellFormed(input.policy_version ?? null),
    request_id: wellFormed(input.request_id ?? null),
    details: canonicalJson(input.details ?? {}),
  };
  return [c.time, c.user, c.groups, c.auth_method, c.ip, c.action, c.object, c.decision, c.reason, c.policy_version, c.request_id, c.details, beforeId(c), beforePrev(c), afterPrev(c)];
}

/** String.prototype.isWellFormed and toWellFormed (ES2024, Node 20): not in this project's ES2022 lib. */
type WellFormedText = string & { isWellFormed(): boolean; toWellFormed(): string };

/**
 * SQLite stores text as UTF-8: a lone surrogate would come back as U+FFFD and no longer match its
 * hash, so it is replaced by U+FFFD here. Checked natively first: almost every text is well formed.
 */
function wellFormed(s: string | null): string | null {
  return s === null || (s as WellFormedText).isWellFormed() ? s : (s as WellFormedText).toWellFormed();
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

/** The trail is not what its own signed checkpoints, or its witness, say it was: nothing is signed over it. */
export class TrailTamperedError extends Error {
  override readonly name = 'TrailTamperedError';
}

export interface WriterOptions {
  /** audit.witness_file: every checkpoint is appended there too; checked against the trail at open. */
  witnessFile?: string;
  /** audit.archive_dir: a legacy anchor's archive is checked there before it is re-signed as checkpoint 1. */
  archiveDir?: string;
  /**
   * The admin's one-time reset of a missing, empty or cut-back witness: the number of the trail's
   * newest checkpoint (GATEHOUSE_AUDIT_WITNESS_RESET). The witness then starts again from that
   * checkpoint and the trail records an `audit.witness_reset` event; any other number is ignored.
   */
  witnessReset?: number;
  /** Events the un-indexed tail may hold before it is indexed (INDEX_BATCH; the suites use fewer). */
  indexBatch?: number;
}

interface StoredCheckpoint {
  seq: number | null;
  event_id: number;
  hash: string;
  jws: string;
}

export class TrailWriter {
  private insert: Database.Statement;
  private insertCheckpoint: Database.Statement;
  head: Head;
  lastCheckpoint: { event_id: number; at: number };
  /** The newest checkpoint of the chain: the next one is numbered seq + 1 and names its digest. */
  private chain: { seq: number; digest: string } | null = null;
  private witness: WitnessWriter | null = null;

  private constructor(
    readonly db: Database.Database,
    private readonly key: AuditSigningKey,
    options: WriterOptions,
  ) {
    this.insert = db.prepare(
      'insert into audit_events (id, time, user, groups, auth_method, ip, action, object, decision, reason, policy_version, request_id, details, prev_hash, hash) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)',
    );
    this.insertCheckpoint = db.prepare('insert into audit_checkpoints (seq, event_id, hash, time, kid, prev, jws) values (?,?,?,?,?,?,?)');
    this.head = readHead(db);
    this.indexBatch = options.indexBatch ?? INDEX_BATCH;
    const cp = db.prepare('select event_id, time from audit_checkpoints order by event_id desc, row desc limit 1').get() as { event_id: number; time: number } | undefined;
    this.lastCheckpoint = { event_id: cp?.event_id ?? 0, at: cp?.time ?? 0 };
    this.checkSigned();
    if (options.witnessFile) this.openWitness(options.witnessFile, options.witnessReset);
    this.adoptLegacyAnchor(options.archiveDir);
    if (this.witnessResetBy) {
      const r = this.witnessResetBy;
      const input: AuditInput = {
        actor: { user: null, groups: [], auth_method: null, ip: null },
        action: 'audit.witness_reset',
        object: 'audit:witness',
        decision: 'allow',
        reason: `the witness was ${r.why === 'behind' ? `cut back to checkpoint ${r.had}` : r.why} and was started again from checkpoint ${this.chain!.seq} by GATEHOUSE_AUDIT_WITNESS_RESET`,
        details: { file: r.file, witness_had: r.had, restarted_at: this.chain!.seq },
      };
      this.append([pendingRowOf(input, Date.now())]);
      this.checkpoint();
    }
  }

  /** Set when this start reset the witness (recorded as an audit.witness_reset event). */
  witnessResetBy: { file: string; had: number | null; why: string; at: number } | null = null;

  /**
   * A trail archived before checkpoints chained has an anchor that names no digest. Before the
   * first chained checkpoint is signed, its archive is checked in full back to #1 and re-signed as
   * checkpoint 1, naming the file and its SHA-256: from then on the anchor stands on a signed
   * archive, and a legacy anchor in a chained trail is a copied checkpoint.
   */
  private adoptLegacyAnchor(archiveDir: string | undefined): void {
    if (this.chain) return;
    const anchor = this.db.prepare('select event_id, hash, file from audit_anchor').get() as { event_id: number; hash: string; file: string } | undefined;
    if (!anchor) return;
    if (archiveDir === undefined) throw new TrailTamperedError(`the archive anchor (#${anchor.event_id}) is from before checkpoints chained and no audit.archive_dir is given to check its archive ${anchor.file}`);
    const problem = legacyArchiveProblem(archiveDir, anchor, this.key.known);
    if (problem) throw new TrailTamperedError(`the archive anchor (#${anchor.event_id}) cannot be re-signed: ${problem.message}; run gatehouse audit verify`);
    const bytes = readFileSync(join(archiveDir, anchor.file));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const from = (JSON.parse(bytes.toString('utf8').split('\n', 1)[0]!) as { archive: { from_id: number } }).archive.from_id;
    const cp = this.signAt(anchor.event_id, anchor.hash, new Date(), { file: anchor.file, sha256, from_id: from, to_id: anchor.event_id });
    this.db.prepare('update audit_anchor set jws = ? where one = 1').run(cp.jws);
  }

  /** Opens the trail, after checking that its tail and its witness agree with its signed checkpoints. */
  static open(dir: string, key: AuditSigningKey, options: WriterOptions = {}): TrailWriter {
    const db = openAuditDb(dir);
    try {
      return new TrailWriter(db, key, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * Before anything is signed over the head: the newest checkpoint's signature holds (under the
   * current or a retired key), the event the newest signed checkpoint names still has its hash, and
   * every event after it chains from it. A rewrite that recomputed the hashes and deleted the later
   * checkpoints passes this; the witness (openWitness) does not let it.
   */
  private checkSigned(): void {
    const db = this.db;
    const top = db.prepare('select seq, event_id, hash, jws from audit_checkpoints where seq is not null order by seq desc limit 1').get() as StoredCheckpoint | undefined;
    if (top) {
      this.authentic(top, 'the newest checkpoint');
      this.chain = { seq: top.seq!, digest: checkpointDigest(top.jws) };
    }
    const anchor = db.prepare('select event_id, hash, file, jws from audit_anchor').get() as { event_id: number; hash: string; file: string; jws: string } | undefined;
    if (anchor) {
      const opened = openCheckpoint(anchor.jws, this.key.known);
      if ('problem' in opened) throw new TrailTamperedError(`the archive anchor's checkpoint (#${anchor.event_id}) is ${opened.problem}; run gatehouse audit verify`);
      const a = opened.checkpoint;
      if (a.event_id !== anchor.event_id || a.hash !== anchor.hash) throw new TrailTamperedError(`the archive anchor (#${anchor.event_id}) does not match its signed checkpoint (#${a.event_id}); run gatehouse audit verify`);
      if (a.seq === undefined && top) throw new TrailTamperedError(`the archive anchor (#${anchor.event_id}) stands on a checkpoint from before checkpoints chained, in a trail with chained checkpoints: a copied checkpoint, not an archive run's; events up to #${anchor.event_id} were removed without an archive; run gatehouse audit verify`);
      if (a.seq !== undefined && (!a.archive || a.archive.file !== anchor.file || a.archive.to_id !== anchor.event_id)) throw new TrailTamperedError(`the archive anchor's checkpoint ${a.seq} (#${anchor.event_id}) signs no archive named ${anchor.file}: events up to #${anchor.event_id} were removed without an archive; run gatehouse audit verify`);
    }
    const signed = db.prepare('select seq, event_id, hash, jws from audit_checkpoints order by event_id desc, row desc limit 1').get() as StoredCheckpoint | undefined;
    let from = anchor ? { id: anchor.event_id, hash: anchor.hash } : { id: 0, hash: GENESIS_HASH };
    if (signed && signed.event_id > from.id) {
      if (signed.jws !== top?.jws) this.authentic(signed, `the checkpoint for #${signed.event_id}`);
      const row = db.prepare('select hash from audit_events where id = ?').get(signed.event_id) as { hash: string } | undefined;
      if (row?.hash !== signed.hash) {
        const which = signed.seq === null ? 'a checkpoint' : `checkpoint ${signed.seq}`;
        throw new TrailTamperedError(`event #${signed.event_id} ${row ? 'is not the one' : 'is gone, though'} ${which} signed: the trail was rewritten or cut; run gatehouse audit verify`);
      }
      from = { id: signed.event_id, hash: signed.hash };
    }
    let expected = from.id + 1;
    let prev = from.hash;
    for (const r of db.prepare('select * from audit_events where id > ? order by id').iterate(from.id) as Iterable<AuditRow>) {
      const { hash, ...content } = r;
      if (r.id !== expected || r.prev_hash !== prev || hashRow(content) !== hash) {
        throw new TrailTamperedError(`event #${r.id}, after the last signed event #${from.id}, does not chain from it (edited, inserted or an event before it deleted); run gatehouse audit verify`);
      }
      prev = hash;
      expected++;
    }
  }

  private authentic(c: StoredCheckpoint, what: string): void {
    const opened = openCheckpoint(c.jws, this.key.known);
    if ('problem' in opened) throw new TrailTamperedError(`${what} (#${c.event_id}) is ${opened.problem}: not signed by this gateway's audit key, current or retired`);
    const cp = opened.checkpoint;
    if (cp.event_id !== c.event_id || cp.hash !== c.hash || (cp.seq ?? null) !== c.seq) throw new TrailTamperedError(`${what} is stored as #${c.event_id} but signs #${cp.event_id}`);
  }

  /**
   * The witness must hold nothing the trail lacks, and lack nothing the trail holds: its last
   * checkpoint is the trail's newest one (the same JWS, its event still with that hash). A missing,
   * empty or cut-back witness is refused while the trail has checkpoints (cut back together with a
   * rewritten trail it would vouch for the forgery), unless the admin resets it (witnessReset naming
   * the trail's newest checkpoint): it then starts again from that checkpoint, and the trail records
   * an `audit.witness_reset` event, signed at once.
   */
  private openWitness(file: string, reset: number | undefined): void {
    const exists = existsSync(file);
    const io = <T>(what: () => T): T => {
      try {
        return what();
      } catch (err) {
        throw new Error(`audit.witness_file ${file}: ${(err as Error).message}`);
      }
    };
    let last = exists ? io(() => lastWitnessEntry(file)) : null;
    const stored = (seq: number) => this.db.prepare('select seq, event_id, hash, jws from audit_checkpoints where seq = ?').get(seq) as StoredCheckpoint | undefined;
    const resetting = this.chain !== null && reset === this.chain.seq;
    const refuse = (why: string) => {
      if (resetting) return;
      throw new TrailTamperedError(
        `${why}: restore it from a copy; to start the witness again from the trail's newest checkpoint instead, start the gateway once with GATEHOUSE_AUDIT_WITNESS_RESET=${this.chain!.seq} (recorded in the trail as audit.witness_reset)`,
      );
    };
    let wasReset: { had: number | null; why: string } | null = null;
    if (this.chain && !exists) {
      refuse(`the witness file ${file} (audit.witness_file) is missing, but the trail has ${this.chain.seq} signed checkpoint(s)`);
      wasReset = { had: null, why: 'missing' };
    } else if (this.chain && !last) {
      refuse(`the witness file ${file} (audit.witness_file) holds no checkpoint, but the trail has ${this.chain.seq}`);
      wasReset = { had: null, why: 'empty' };
    }
    if (last) {
      const opened = openCheckpoint(last.jws, this.key.known);
      if ('problem' in opened) throw new TrailTamperedError(`the last checkpoint in the witness ${file} is ${opened.problem}`);
      let mine = stored(last.seq!);
      // A crash (or a failed insert) between the witness append and the checkpoint row leaves the
      // witness exactly one checkpoint ahead: that line is taken into the trail when it follows the
      // trail's newest checkpoint and signs an event the trail holds with that hash.
      if (!mine && last.seq === (this.chain?.seq ?? 0) + 1) mine = this.adoptAhead(last, file);
      if (!this.chain || this.chain.seq < last.seq! || !mine) {
        throw new TrailTamperedError(
          `the witness ${file} holds checkpoint ${last.seq} (event #${last.event_id}, signed at ${last.time}), but the trail's checkpoints end at ${this.chain?.seq ?? 0}: checkpoints were deleted from the trail; run gatehouse audit verify --witness ${file}`,
        );
      }
      if (mine.jws !== last.jws) throw new TrailTamperedError(`checkpoint ${last.seq} in the trail is not the one the witness ${file} holds (event #${last.event_id}, signed at ${last.time}): the trail's checkpoints were replaced`);
      const anchorId = (this.db.prepare('select event_id from audit_anchor').get() as { event_id: number } | undefined)?.event_id ?? 0;
      if (last.event_id > anchorId) {
        const row = this.db.prepare('select hash from audit_events where id = ?').get(last.event_id) as { hash: string } | undefined;
        if (row?.hash !== last.hash) throw new TrailTamperedError(`event #${last.event_id} ${row ? 'differs from' : 'is gone, though it is in'} the witness ${file}: the trail was rewritten or cut`);
      }
      if (last.seq! < this.chain.seq) {
        refuse(`the witness ${file} ends at checkpoint ${last.seq} (event #${last.event_id}), but the trail's checkpoints go on to ${this.chain.seq}: the witness was cut back (or lost its last lines)`);
        wasReset = { had: last.seq!, why: 'behind' };
        last = null;
      }
    }
    this.witnessResetBy = wasReset ? { file, had: wasReset.had, why: wasReset.why, at: this.chain!.seq } : null;
    let from = last ? last.seq! : 0;
    // Catch up (none when it ends at the newest); a new or reset witness starts at the newest checkpoint.
    const missed = (last ? this.db.prepare('select seq, event_id, hash, jws from audit_checkpoints where seq > ? order by seq').all(from) : this.chain ? [stored(this.chain.seq)!] : []) as StoredCheckpoint[];
    if (!last && this.chain) from = this.chain.seq - 1;
    const chained: Checkpoint[] = [];
    let digest = last ? checkpointDigest(last.jws) : null;
    let expectSeq = from + 1;
    for (const m of missed) {
      const read = readCheckpoint(m.jws);
      if ('problem' in read) throw new TrailTamperedError(`checkpoint ${m.seq} in the trail is ${read.problem}`);
      if (m.seq !== expectSeq || (digest !== null && read.checkpoint.prev !== digest)) throw new TrailTamperedError(`checkpoint ${m.seq} in the trail does not follow checkpoint ${expectSeq - 1}: the checkpoint chain was cut or rewritten; run gatehouse audit verify`);
      chained.push(read.checkpoint);
      digest = checkpointDigest(m.jws);
      expectSeq++;
    }
    this.witness = io(() => new WitnessWriter(file));
    io(() => this.witness!.append(chained));
  }

  /**
   * The witness's last line, one checkpoint ahead of the trail (opened and signed by a known key,
   * checked by the caller): stored as the trail's next checkpoint when it follows the newest one
   * (prev is its digest) and its event is in the trail with that hash; otherwise null (refused).
   */
  private adoptAhead(last: WitnessEntry, file: string): StoredCheckpoint | undefined {
    const opened = openCheckpoint(last.jws, this.key.known);
    if ('problem' in opened) return undefined;
    const cp = opened.checkpoint;
    if (cp.seq !== (this.chain?.seq ?? 0) + 1 || (cp.prev ?? null) !== (this.chain?.digest ?? null)) return undefined;
    const row = this.db.prepare('select hash from audit_events where id = ?').get(cp.event_id) as { hash: string } | undefined;
    const anchor = this.db.prepare('select event_id, hash from audit_anchor').get() as { event_id: number; hash: string } | undefined;
    const holds = row ? row.hash === cp.hash : anchor !== undefined && anchor.event_id === cp.event_id && anchor.hash === cp.hash;
    if (!holds) return undefined;
    const at = Date.parse(cp.time);
    this.insertCheckpoint.run(cp.seq, cp.event_id, cp.hash, at, cp.kid, cp.prev ?? null, cp.jws);
    this.chain = { seq: cp.seq, digest: checkpointDigest(cp.jws) };
    if (cp.event_id >= this.lastCheckpoint.event_id) this.lastCheckpoint = { event_id: cp.event_id, at };
    this.witnessAdopted = { file, seq: cp.seq, event_id: cp.event_id };
    return { seq: cp.seq, event_id: cp.event_id, hash: cp.hash, jws: cp.jws };
  }

  /** Set when this start took the witness's one-ahead checkpoint into the trail (after a crash between the two writes). */
  witnessAdopted: { file: string; seq: number; event_id: number } | null = null;

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
        const hash = hashParts(r[12], id, r[13], prev, r[14]);
        this.insert.run(id, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], prev, hash);
        hashes[i] = hash;
        prev = hash;
      }
      this.noteTail(rows);
      this.db.exec('commit');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('rollback');
      this.tailFrom = undefined; // read again: the rolled-back update may have lowered the cached one
      throw err;
    }
    this.head = { id, hash: prev };
    return { firstId, prevHash, hashes };
  }

  private readonly indexBatch: number;
  /** The lookup tables' watermark (lookup-index.ts), read at the first call. */
  private indexed: number | null = null;
  /** The tail's earliest time as stored (undefined: not read yet). */
  private tailFrom: number | null | undefined = undefined;

  /** Keeps audit_indexed.tail_from at the least time after the watermark (in the append's transaction). */
  private noteTail(rows: readonly PendingRow[]): void {
    let least = Number.POSITIVE_INFINITY;
    for (const r of rows) if (r[0] < least) least = r[0];
    if (rows.length === 0) return;
    if (this.tailFrom === undefined) this.tailFrom = tailFrom(this.db);
    if (this.tailFrom !== null && this.tailFrom <= least) return;
    noteTail(this.db, least);
    this.tailFrom = least;
  }

  /**
   * Fills the user and object lookup tables up to the head when the un-indexed tail reached
   * indexBatch (INDEX_BATCH) events, or whatever the tail holds when `all`. Called between commits (never inside
   * one), so a group commit writes only the hot table's pages. Returns the events indexed.
   */
  index(all = false): number {
    this.indexed ??= indexedUpTo(this.db);
    const tail = this.head.id - this.indexed;
    if (tail <= 0 || (!all && tail < this.indexBatch)) return 0;
    this.pass = null; // a pass under way is overtaken: this covers its rows too (insert or ignore)
    const n = indexTail(this.db, this.head.id);
    this.indexed = this.head.id;
    this.tailFrom = null;
    return n;
  }

  /** The index pass under way, done a step at a time between commits (indexStep). */
  private pass: IndexPass | null = null;

  /**
   * What the writer thread runs between commits: one step of the index pass (lookup-index.ts), a
   * pass starting when the un-indexed tail reached indexBatch events, or when `quiet` and it holds
   * any. Returns true while the pass has steps left.
   */
  indexStep(quiet = false, size = INDEX_STEP): boolean {
    if (!this.pass) {
      this.indexed ??= indexedUpTo(this.db);
      const tail = this.head.id - this.indexed;
      if (tail <= 0 || (!quiet && tail < this.indexBatch)) return false;
      this.pass = IndexPass.start(this.db, this.head.id);
      if (!this.pass) return false;
    }
    if (!this.pass.step(size)) return true;
    this.indexed = this.pass.head;
    this.pass = null;
    this.tailFrom = undefined; // read again: what came during the pass is the new tail
    return false;
  }

  /** Signs the head when it moved since the last checkpoint. */
  checkpoint(now = new Date()): Checkpoint | null {
    if (this.head.id === 0 || this.head.id === this.lastCheckpoint.event_id) return null;
    return this.signAt(this.head.id, this.head.hash, now);
  }

  /**
   * Signs and stores the next checkpoint of the chain for a given event (the head, or an archive's
   * last event, then naming the archive), and hands it to the witness.
   */
  signAt(eventId: number, hash: string, now = new Date(), archive?: ArchiveClaim): Checkpoint {
    const link = { seq: (this.chain?.seq ?? 0) + 1, prev: this.chain?.digest ?? null, ...(archive ? { archive } : {}) };
    if (this.broken) throw new Error(`the audit writer stopped after a failed checkpoint (${this.broken}); it must be opened again`);
    const cp = signCheckpoint(this.key, eventId, hash, now, link);
    try {
      // The witness first (written and fsynced), then the trail: a crash between the two leaves the
      // witness one ahead, which the next open takes in; never a checkpoint the witness lacks.
      this.witness?.append([cp]);
      this.insertCheckpoint.run(link.seq, cp.event_id, cp.hash, now.getTime(), cp.kid, link.prev, cp.jws);
    } catch (err) {
      // Fail closed: the caller marks the trail unavailable, and a reopen reconciles with the witness.
      this.broken = (err as Error).message;
      throw this.witness && !this.witnessedOk(link.seq) ? new Error(`audit.witness_file ${this.witness.file}: cannot append checkpoint ${link.seq}: ${(err as Error).message}`) : err;
    }
    this.chain = { seq: link.seq, digest: checkpointDigest(cp.jws) };
    if (eventId >= this.lastCheckpoint.event_id) this.lastCheckpoint = { event_id: eventId, at: now.getTime() };
    return cp;
  }

  /** Set after a checkpoint could not be written to the witness or the trail: this writer signs nothing more. */
  private broken: string | null = null;

  /** Whether the witness append of checkpoint `seq` is done (the failure was the trail's insert). */
  private witnessedOk(seq: number): boolean {
    return this.witness?.appended === seq;
  }

  get publicJwk(): AuditSigningKey['jwk'] {
    return this.key.jwk;
  }

  close(): void {
    this.witness?.close();
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
