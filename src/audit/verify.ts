// Recomputes the chain and checks the signed checkpoints. Each problem is located by event id and
// named: edited, missing, inserted, reordered, a broken link, a truncated tail, a bad checkpoint or
// anchor. One tampered event is one problem: the scan goes on from the stored hash, and follows a
// renumbering (an insertion or deletion that shifted later ids) instead of flagging every event after it.
import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type Database from 'better-sqlite3';
import { GENESIS_HASH, hashEvent, hashRow } from './chain.js';
import { type Checkpoint, checkpointDigest, openCheckpoint, readCheckpoint, signatureProblem } from './checkpoint.js';
import type { AuditRow } from './schema.js';
import { readWitness } from './witness.js';

export type ProblemKind =
  | 'edited'
  | 'missing'
  | 'inserted'
  | 'reordered'
  | 'broken_link'
  | 'truncated'
  | 'bad_checkpoint'
  | 'missing_checkpoint'
  | 'bad_anchor'
  | 'missing_archive'
  | 'witness_mismatch'
  | 'lookup_mismatch';

export interface VerifyProblem {
  event_id: number | null;
  kind: ProblemKind;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  events: number;
  first_id: number | null;
  last_id: number | null;
  checkpoints: number;
  /** The newest signed checkpoint (seq: its number in the checkpoint chain). */
  last_checkpoint: { event_id: number; time: string; seq?: number } | null;
  /** Events after the last checkpoint: a truncation among them is caught only by the live head. */
  unsigned_tail: number;
  anchor: { event_id: number; file: string } | null;
  /** The witness the trail was checked against: its file and how many checkpoints it holds. */
  witness?: { file: string; checkpoints: number; last_seq: number | null };
  problems: VerifyProblem[];
  /** Problems beyond the first MAX_PROBLEMS are counted, not listed. */
  more_problems: number;
  elapsed_ms: number;
}

const MAX_PROBLEMS = 100;

/** A signed checkpoint, as stored (with the columns it is stored under) or as an archive line. */
interface SignedPoint {
  jws: string;
  event_id?: number;
  seq?: number | null;
}

export class ChainChecker {
  private problems: VerifyProblem[] = [];
  private more = 0;
  private expectedId: number;
  private prev: string;
  private prevPrev: string | null = null;
  private shift = 0;
  private events = 0;
  private firstId: number | null = null;
  private lastId: number | null = null;
  /** Signed hashes by event id, compared as the scan passes each event. */
  /** `jws` set: a checkpoint whose signature is checked only if the chain disagrees with it (the newest one is checked up front). */
  private signed = new Map<number, { hash: string; source: string; jws?: string }>();
  private lastCheckpoint: { event_id: number; time: string } | null = null;
  private checkpointCount = 0;
  private readonly started = performance.now();

  constructor(
    start: { id: number; hash: string },
    private readonly keys: ReadonlyMap<string, KeyObject>,
  ) {
    this.expectedId = start.id + 1;
    this.prev = start.hash;
  }

  problem(event_id: number | null, kind: ProblemKind, message: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push({ event_id, kind, message });
    else this.more++;
  }

  /**
   * Chained checkpoints vouch for each other: the newest one's signature is checked, and each one
   * below must be the checkpoint the one above names by digest (a hash, not a signature, per
   * checkpoint). A number missing from the chain is a deleted checkpoint (in the trail, where the
   * chain is kept whole; an archive holds only the checkpoints of its events). Below a hole, or a
   * replaced checkpoint, the next one is checked by its own signature.
   * Checkpoints from before the chain (no number): the newest one's signature is checked up front,
   * an older one's only where the chain of events disagrees with it (to tell a rewrite from a
   * forged checkpoint); a signature check costs more than hashing an event.
   */
  checkpoints(points: Iterable<SignedPoint>, options: { stored?: boolean; whole?: boolean } = {}): void {
    const numbered = new Map<number, Checkpoint[]>();
    const legacy: Checkpoint[] = [];
    for (const p of points) {
      const opened = readCheckpoint(p.jws);
      if ('problem' in opened) {
        this.problem(p.event_id ?? null, 'bad_checkpoint', `a checkpoint is ${opened.problem}`);
        continue;
      }
      const cp = opened.checkpoint;
      if (options.stored && (p.event_id !== cp.event_id || (p.seq ?? null) !== (cp.seq ?? null))) {
        this.problem(p.event_id ?? cp.event_id, 'bad_checkpoint', `the checkpoint stored for #${p.event_id}${p.seq ? ` as number ${p.seq}` : ''} signs a different event or number`);
        continue;
      }
      if (cp.seq === undefined) legacy.push(cp);
      else numbered.set(cp.seq, [...(numbered.get(cp.seq) ?? []), cp]);
    }
    const seqs = [...numbered.keys()].sort((a, b) => a - b);
    let above: Checkpoint | null = null;
    for (let i = seqs.length - 1; i >= 0; i--) {
      const seq = seqs[i]!;
      const candidates = numbered.get(seq)!;
      const upper = seqs[i + 1];
      if (options.whole && upper !== undefined && upper !== seq + 1) {
        const next = numbered.get(upper)![0]!;
        this.problem(next.event_id, 'missing_checkpoint', `checkpoint${upper - seq > 2 ? `s ${seq + 1}..${upper - 1} are` : ` ${seq + 1} is`} missing (deleted): the trail holds checkpoint ${seq}, then ${upper} (for #${next.event_id})`);
      }
      let chosen: Checkpoint | null = null;
      if (above && above.seq === seq + 1) {
        const prev: string | null | undefined = (above as Checkpoint).prev;
        chosen = candidates.find((c) => checkpointDigest(c.jws) === prev) ?? null;
        for (const c of candidates) {
          if (c === chosen) continue;
          const why = signatureProblem(c.jws, this.keys);
          this.problem(c.event_id, 'bad_checkpoint', `checkpoint ${seq} (for #${c.event_id}) is not the one checkpoint ${seq + 1} follows: ${why ?? 'replaced by another checkpoint signed with an audit key'}`);
        }
      } else {
        for (const c of candidates) {
          const why = signatureProblem(c.jws, this.keys);
          if (why === null && chosen === null) chosen = c;
          else this.problem(c.event_id, 'bad_checkpoint', `checkpoint ${seq} (for #${c.event_id}) is ${why ?? 'a second checkpoint with the same number'}`);
        }
      }
      above = chosen;
      if (chosen) {
        this.chain.set(seq, chosen);
        this.signed.set(chosen.event_id, { hash: chosen.hash, source: `checkpoint ${seq}, signed at ${chosen.time}` });
      }
    }
    const chainTop = Math.max(0, ...[...this.chain.values()].map((c) => c.event_id));
    legacy.sort((a, b) => a.event_id - b.event_id);
    while (legacy.length > 0 && legacy.at(-1)!.event_id > chainTop) {
      const newest = legacy.at(-1)!;
      const problem = signatureProblem(newest.jws, this.keys);
      if (problem === null) break;
      this.problem(newest.event_id, 'bad_checkpoint', `the checkpoint for #${newest.event_id} is ${problem}`);
      legacy.pop();
    }
    const newestLegacy = legacy.at(-1);
    for (const cp of legacy) {
      const known = this.signed.get(cp.event_id);
      const checked = cp === newestLegacy && cp.event_id > chainTop;
      if (!known) this.signed.set(cp.event_id, { hash: cp.hash, source: `the checkpoint signed at ${cp.time}`, ...(checked ? {} : { jws: cp.jws }) });
      else if (known.hash !== cp.hash) {
        this.problem(cp.event_id, 'bad_checkpoint', `the checkpoint for #${cp.event_id} disagrees with ${known.source}: ${signatureProblem(cp.jws, this.keys) ?? 'both are signed with an audit key'}`);
        continue;
      }
      this.checkpointCount++;
    }
    this.checkpointCount += this.chain.size;
    const tops = [...this.chain.values(), ...(newestLegacy && newestLegacy.event_id > chainTop ? [newestLegacy] : [])];
    const top = tops.sort((a, b) => b.event_id - a.event_id || (b.seq ?? 0) - (a.seq ?? 0))[0];
    if (top) this.lastCheckpoint = { event_id: top.event_id, time: top.time, ...(top.seq !== undefined ? { seq: top.seq } : {}) };
  }

  /** The checkpoint chain as verified: by number. */
  readonly chain = new Map<number, Checkpoint>();

  /**
   * The trail against a witness: every checkpoint the witness holds must be in the trail (the same
   * JWS under its number) and its event must still have that hash; a witness ahead of the trail
   * means checkpoints (and maybe events) were deleted. A witness line that is not signed by an
   * audit key is reported, never believed.
   */
  witness(entries: readonly Checkpoint[], file: string, anchorId: number, holds: (eventId: number, hash: string) => boolean = () => false): void {
    const seqs = [...this.chain.keys()];
    const high = seqs.length > 0 ? Math.max(...seqs) : 0;
    const low = seqs.length > 0 ? Math.min(...seqs) : 0;
    let beyond: Checkpoint[] = [];
    const signedOk = new Map<string, string | null>();
    const signature = (c: Checkpoint) => {
      if (!signedOk.has(c.jws)) signedOk.set(c.jws, signatureProblem(c.jws, this.keys));
      return signedOk.get(c.jws)!;
    };
    for (const e of entries) {
      if (e.seq !== undefined) {
        const mine = this.chain.get(e.seq);
        if (mine?.jws === e.jws) continue; // the trail vouches for it, and compares its event
        const why = signature(e);
        if (why !== null) {
          this.problem(e.event_id, 'witness_mismatch', `the witness ${file} holds a checkpoint ${e.seq} that is ${why}: the witness was tampered with`);
          continue;
        }
        if (mine) this.problem(e.event_id, 'witness_mismatch', `checkpoint ${e.seq} in the trail (for #${mine.event_id}) is not the one the witness holds (for #${e.event_id}, signed at ${e.time}): the trail's checkpoints were replaced`);
        else if (e.seq > high) beyond.push(e);
        else if (e.seq < low && e.event_id > anchorId) this.problem(e.event_id, 'missing_checkpoint', `checkpoint ${e.seq} (for #${e.event_id}), which the witness holds, is not in the trail`);
      } else {
        const why = signature(e);
        if (why !== null) {
          this.problem(e.event_id, 'witness_mismatch', `the witness ${file} holds a checkpoint for #${e.event_id} that is ${why}: the witness was tampered with`);
          continue;
        }
      }
      if (e.event_id > anchorId) {
        const had = this.witnessed.get(e.event_id);
        if (!had) this.witnessed.set(e.event_id, { hash: e.hash, source: `the witness's checkpoint${e.seq !== undefined ? ` ${e.seq}` : ''} signed at ${e.time}` });
      }
    }
    // The writer appends a checkpoint to the witness before the trail's row (writer.ts, signAt): a
    // verify between the two writes, or after a stop between them, meets the witness exactly one
    // ahead, its line following the trail's newest checkpoint and signing an event the trail holds
    // with that hash, which the next start takes in (adoptAhead). That is not a deletion.
    const follows = (e: Checkpoint) => (e.prev ?? null) === (high === 0 ? null : checkpointDigest(this.chain.get(high)!.jws));
    if (beyond.length === 1 && beyond[0]!.seq === high + 1 && follows(beyond[0]!) && holds(beyond[0]!.event_id, beyond[0]!.hash)) beyond = [];
    if (beyond.length > 0) {
      beyond = beyond.sort((a, b) => a.seq! - b.seq!);
      const first = beyond[0]!;
      const last = beyond.at(-1)!;
      this.problem(first.event_id, 'missing_checkpoint', `the witness ${file} holds checkpoint${beyond.length > 1 ? `s ${first.seq}..${last.seq}` : ` ${first.seq}`} (up to #${last.event_id}, signed at ${last.time}) but the trail's checkpoints end at ${high}: checkpoints were deleted from the trail`);
    }
  }

  /** Hashes the witness holds, by event id, compared as the scan passes each event. */
  private witnessed = new Map<number, { hash: string; source: string }>();

  expect(eventId: number, hash: string, source: string): void {
    if (!this.signed.has(eventId)) this.signed.set(eventId, { hash, source });
  }

  push(row: AuditRow): void {
    const suspect = this.suspect;
    if (suspect) {
      this.suspect = null;
      // The held event hashed right one id higher. If this one hashes right one id lower and links
      // to the event before the held one, the two were swapped; otherwise later ids were shifted.
      if (row.id === suspect.row.id + 1 && row.prev_hash === suspect.prev && this.intactAt(row, suspect.row.id)) {
        this.count(row);
        this.problem(suspect.row.id, 'reordered', `events #${suspect.row.id} and #${row.id} are in each other's place (reordered)`);
        this.prevPrev = row.hash;
        this.prev = suspect.row.hash;
        this.expectedId = row.id + 1;
        return;
      }
      this.shift = suspect.shift;
      this.problem(suspect.row.id, 'missing', `from #${suspect.row.id} on, events carry ids ${-this.shift} lower than when written: an event was deleted before #${suspect.row.id} and the rest renumbered`);
      this.after(suspect.row);
    }
    this.count(row);
    const id = row.id;
    if (id > this.expectedId) {
      const gap = id - this.expectedId;
      this.problem(this.expectedId, 'missing', gap === 1 ? `event #${this.expectedId} is missing (deleted)` : `events #${this.expectedId}..#${id - 1} are missing (deleted)`);
    }
    const linked = row.prev_hash === this.prev;
    let intact = this.intactAt(row, id - this.shift);
    if (!intact && this.intactAt(row, id - this.shift + 1)) {
      this.suspect = { row, shift: this.shift - 1, prev: this.prev }; // a deletion, or the first of a swapped pair
      return;
    }
    if (!intact && this.intactAt(row, id - this.shift - 1)) {
      this.shift += 1;
      intact = true;
      this.problem(id, 'inserted', `from #${id} on, events carry ids ${this.shift} higher than when written: an event was inserted before #${id}`);
    }
    if (!intact) {
      this.problem(id, 'edited', `event #${id} was edited: its content no longer matches its hash`);
    } else if (!linked && id === this.expectedId && this.shift === 0) {
      if (this.prevPrev !== null && row.prev_hash === this.prevPrev) this.problem(id - 1, 'inserted', `event #${id - 1} was inserted: #${id} follows #${id - 2} in the chain`);
      else this.problem(id, 'broken_link', `event #${id} does not follow #${id - 1} in the chain: an event before it was moved, inserted, deleted or rewritten`);
    }
    this.after(row);
  }

  private suspect: { row: AuditRow; shift: number; prev: string } | null = null;

  private count(row: AuditRow): void {
    if (this.firstId === null) this.firstId = row.id;
    this.lastId = row.id;
    this.events++;
  }

  private intactAt(row: AuditRow, id: number): boolean {
    const { hash, ...content } = row;
    return hashRow({ ...content, id }) === hash;
  }

  private after(row: AuditRow): void {
    const witnessed = this.witnessed.get(row.id);
    if (witnessed && witnessed.hash !== row.hash) this.problem(row.id, 'witness_mismatch', `event #${row.id} differs from ${witnessed.source}: the chain was rewritten at or before #${row.id}`);
    const signed = this.signed.get(row.id);
    if (signed && signed.hash !== row.hash) {
      const forged = signed.jws === undefined ? null : signatureProblem(signed.jws, this.keys);
      if (forged !== null) this.problem(row.id, 'bad_checkpoint', `the checkpoint for #${row.id} is ${forged}`);
      else this.problem(row.id, 'edited', `event #${row.id} differs from ${signed.source}: the chain was rewritten at or before #${row.id}`);
    }
    this.prevPrev = this.prev;
    this.prev = row.hash;
    this.expectedId = row.id + 1;
  }

  /** Events the scan met out of their chain position are called reordered, not just broken. */
  finish(extra: { anchor: { event_id: number; file: string } | null; liveHead?: { id: number; hash: string } | null }): VerifyReport {
    if (this.suspect) {
      const held = this.suspect;
      this.suspect = null;
      this.shift = held.shift;
      this.problem(held.row.id, 'missing', `event #${held.row.id} carries an id ${-this.shift} lower than when written: an event before it was deleted and the rest renumbered`);
      this.after(held.row);
    }
    const last = this.lastId ?? (extra.anchor?.event_id ?? 0);
    const lastSigned = this.lastCheckpoint;
    if (lastSigned && lastSigned.event_id > last) {
      this.problem(last + 1, 'truncated', `the trail ends at #${last}, but a checkpoint signed at ${lastSigned.time} covers #${lastSigned.event_id}: events #${last + 1}..#${lastSigned.event_id} were removed`);
    }
    const witnessTop = Math.max(0, ...this.witnessed.keys());
    if (witnessTop > last && (!lastSigned || witnessTop > lastSigned.event_id)) {
      this.problem(last + 1, 'truncated', `the trail ends at #${last}, but the witness holds a checkpoint for #${witnessTop}: events #${last + 1}..#${witnessTop} were removed`);
    }
    const head = extra.liveHead;
    if (head && head.id > last && (!lastSigned || head.id > lastSigned.event_id)) {
      this.problem(last + 1, 'truncated', `the trail ends at #${last}, but the gateway wrote up to #${head.id}: the tail was removed`);
    }
    markReorders(this.problems);
    return {
      ok: this.problems.length === 0,
      events: this.events,
      first_id: this.firstId,
      last_id: this.lastId,
      checkpoints: this.checkpointCount,
      last_checkpoint: lastSigned,
      unsigned_tail: Math.max(0, last - (lastSigned?.event_id ?? 0)),
      anchor: extra.anchor,
      problems: this.problems,
      more_problems: this.more,
      elapsed_ms: Math.round(performance.now() - this.started),
    };
  }
}

/** Two edited neighbours within a few ids of each other, each out of link: the signature of a swap. */
function markReorders(problems: VerifyProblem[]): void {
  const edited = problems.filter((p) => p.kind === 'edited' && p.event_id !== null && p.message.includes('no longer matches'));
  for (let i = 0; i + 1 < edited.length; i++) {
    const a = edited[i]!;
    const b = edited[i + 1]!;
    if (a.kind === 'edited' && b.kind === 'edited' && b.event_id! - a.event_id! <= 16) {
      a.kind = 'reordered';
      b.kind = 'reordered';
      a.message = `events #${a.event_id} and #${b.event_id} are out of place (reordered or both edited)`;
      b.message = a.message;
      i++;
    }
  }
}

const COLUMNS = 'id, time, user, groups, auth_method, ip, action, object, decision, reason, policy_version, request_id, details, prev_hash, hash';

export interface VerifyOptions {
  /** The gateway's head as it wrote it: a cut tail is found even with its checkpoints deleted. */
  liveHead?: { id: number; hash: string } | null;
  /** audit.archive_dir: the anchor's archive must be there, unchanged. Without it the file is not checked. */
  archiveDir?: string;
  /** A witness file (audit.witness_file, or a copy of the gateway log) the trail must agree with. */
  witnessFile?: string;
  onProgress?: (done: number) => void;
}

/** Verifies a trail database (a read-only connection is enough). */
export function verifyTrail(db: Database.Database, keys: ReadonlyMap<string, KeyObject>, options: VerifyOptions = {}): VerifyReport {
  // Read before the snapshot: a checkpoint witnessed meanwhile is then in the snapshot too.
  const witness = options.witnessFile !== undefined ? readWitnessFor(options.witnessFile) : undefined;
  // One read transaction: retention may move the anchor meanwhile, and the three reads must agree.
  db.exec('begin');
  try {
    return verifySnapshot(db, keys, options, witness);
  } finally {
    db.exec('commit');
  }
}

function readWitnessFor(file: string): { file: string; entries: Checkpoint[]; problem?: string; unreadable: { line: number; problem: string }[] } {
  if (!existsSync(file)) return { file, entries: [], unreadable: [], problem: `the witness ${file} does not exist` };
  const read = readWitness(file);
  return { file, entries: read.entries, unreadable: read.unreadable };
}

function verifySnapshot(db: Database.Database, keys: ReadonlyMap<string, KeyObject>, options: VerifyOptions, witness: ReturnType<typeof readWitnessFor> | undefined): VerifyReport {
  const anchorRow = db.prepare('select event_id, hash, file, jws from audit_anchor').get() as { event_id: number; hash: string; file: string; jws: string } | undefined;
  const start = anchorRow ? { id: anchorRow.event_id, hash: anchorRow.hash } : { id: 0, hash: GENESIS_HASH };
  const checker = new ChainChecker(start, keys);
  const stored = db.prepare('select seq, event_id, jws from audit_checkpoints order by row').all() as { seq: number | null; event_id: number; jws: string }[];
  checker.checkpoints(stored, { stored: true, whole: true });
  const chained = stored.some((c) => c.seq !== null);
  const anchorCp = anchorRow ? checkAnchor(checker, anchorRow, keys, options.archiveDir, chained) : null;
  // The chain left in the trail reaches back to its first checkpoint, or to the anchor's.
  const seqs = [...checker.chain.keys()];
  if (seqs.length > 0) {
    const low = Math.min(...seqs);
    const floor = anchorCp?.seq ?? 1;
    if (low > floor) {
      const first = checker.chain.get(low)!;
      checker.problem(first.event_id, 'missing_checkpoint', `checkpoint${low - floor > 1 ? `s ${floor}..${low - 1} are` : ` ${floor} is`} missing (deleted): the trail's checkpoints start at ${low}${anchorCp ? `, after the anchor's checkpoint ${floor}` : ''}`);
    }
    if (anchorCp?.seq !== undefined && low <= anchorCp.seq && checker.chain.get(anchorCp.seq)?.jws !== anchorRow!.jws) {
      checker.problem(anchorRow!.event_id, 'bad_anchor', `the anchor's checkpoint ${anchorCp.seq} is not the one in the trail's checkpoint chain`);
    }
  }
  if (witness) {
    if (witness.problem) checker.problem(null, 'witness_mismatch', witness.problem);
    for (const u of witness.unreadable) checker.problem(null, 'witness_mismatch', `line ${u.line} of the witness ${witness.file} is ${u.problem}`);
    const eventHash = db.prepare('select hash from audit_events where id = ?').pluck();
    checker.witness(witness.entries, basename(witness.file), anchorRow?.event_id ?? 0, (id, hash) => eventHash.get(id) === hash);
  }
  // The live head is as good as a checkpoint: the event there must still have the hash it was written with.
  if (options.liveHead && options.liveHead.id > 0) checker.expect(options.liveHead.id, options.liveHead.hash, 'the hash the gateway wrote there');
  const upto = lookupWatermark(db, checker);
  let users = 0;
  let objects = 0;
  let n = 0;
  for (const row of db.prepare(`select ${COLUMNS} from audit_events order by id`).iterate() as Iterable<AuditRow>) {
    checker.push(row);
    if (row.id <= upto) {
      objects++;
      if (row.user !== null) users++;
    }
    if (++n % 100_000 === 0) options.onProgress?.(n);
  }
  if (upto >= 0) {
    checkLookups(db, checker, upto, users, objects);
    checkTailFrom(db, checker);
  }
  const report = checker.finish({ anchor: anchorRow ? { event_id: anchorRow.event_id, file: anchorRow.file } : null, liveHead: options.liveHead ?? null });
  if (witness) {
    const numbered = witness.entries.filter((e) => e.seq !== undefined).map((e) => e.seq!);
    report.witness = { file: witness.file, checkpoints: witness.entries.length, last_seq: numbered.length > 0 ? Math.max(...numbered) : null };
  }
  return report;
}

/**
 * The user and object lookup tables' watermark (lookup-index.ts); -1 for a trail from before them
 * (opened read-only, not migrated). Queries compare ids with it in SQL: with its row gone (NULL) they
 * find nothing at all, and with a text in it (SQLite orders every number before any text) they skip
 * the tail after it; either is a problem, and the counts below then take 0 (nothing covered).
 */
function lookupWatermark(db: Database.Database, checker: ChainChecker): number {
  const has = db.prepare("select 1 from sqlite_master where type = 'table' and name = 'audit_indexed'").get();
  if (!has) return -1;
  const row = db.prepare("select upto, typeof(upto) as type from audit_indexed where one = 1").get() as { upto: unknown; type: string } | undefined;
  if (row === undefined) {
    checker.problem(null, 'lookup_mismatch', 'the lookup tables\' watermark row (audit_indexed) is missing: queries by user or object find no event at all');
    return 0;
  }
  // Negative too: -1 is this function's "no lookup tables", which checks nothing below, and with
  // every event in the tail a raised tail_from would hide them all from queries with an until.
  if (row.type !== 'integer' || (row.upto as number) < 0) {
    checker.problem(null, 'lookup_mismatch', `the lookup tables' watermark (audit_indexed.upto) is ${row.type} ${JSON.stringify(String(row.upto))}, not an event id: queries by user or object may skip events`);
    return 0;
  }
  return row.upto as number;
}

/**
 * Queries by user and object read the lookup tables up to their watermark: a lookup row deleted
 * there would hide its event from them while the chain still verifies. Each table must hold one row
 * per event up to the watermark (the user table: per event with a user) that matches it exactly (key,
 * time, id): only such rows are counted, one seek by the event's id each, so a row deleted and made up
 * for by a junk one, or one whose key or time was edited (the query drops it on its re-check), leaves
 * the count short. A forged extra row finds nothing (queries check each row against its event). Each
 * event is counted once (distinct): the tables' primary key is no guarantee in a file someone could
 * write, and a table recreated without it could double one event's row in place of another's.
 */
function checkLookups(db: Database.Database, checker: ChainChecker, upto: number, users: number, objects: number): void {
  const count = (table: string, key: string) =>
    db.prepare(`select count(distinct l.id) from ${table} l join audit_events e on e.id = l.id where l.id <= ? and e.${key} = l.${key} and e.time = l.time`).pluck().get(upto) as number;
  for (const [table, key, expected] of [['audit_by_user', 'user', users], ['audit_by_object', 'object', objects]] as const) {
    const held = count(table, key);
    // More rows than events is what deleting events leaves (reported above as missing); the extra rows find nothing.
    if (held < expected) {
      checker.problem(null, 'lookup_mismatch', `the ${key} lookup table (${table}) holds ${held} entries for the ${expected} events up to #${upto} it must cover: queries by ${key} may miss events (the events themselves are checked above)`);
    }
  }
}

/**
 * A query with an `until` skips the un-indexed tail unless audit_indexed.tail_from is before it
 * (query.ts): a tail_from raised above the tail's earliest event, or nulled, would hide the tail from
 * such queries while the chain verifies. Lower than the tail's earliest is only a slower query.
 * Watermark, tail_from and the tail read in one statement (one snapshot): a live writer may move
 * the watermark while verify runs, and then rewrites tail_from with it.
 */
function checkTailFrom(db: Database.Database, checker: ChainChecker): void {
  const has = (db.prepare("select 1 from pragma_table_info('audit_indexed') where name = 'tail_from'").get() as unknown) !== undefined;
  if (!has) return; // a trail from before tail_from (opened read-only, not migrated): queries do not read it
  const row = db.prepare("select upto, tail_from, typeof(tail_from) as type, (select min(time) from audit_events where id > audit_indexed.upto) as earliest from audit_indexed where one = 1 and typeof(upto) = 'integer' and upto >= 0").get() as
    | { upto: number; tail_from: unknown; type: string; earliest: number | null }
    | undefined;
  if (row === undefined || row.earliest === null) return; // no watermark is lookupWatermark's problem
  // A text sorts after every number in SQLite (and NULL compares to nothing), so either skips the tail too.
  const numeric = row.type === 'integer' || row.type === 'real';
  if (!numeric || (row.tail_from as number) > row.earliest) {
    const stored = numeric ? new Date(row.tail_from as number).toISOString() : `${row.type} ${JSON.stringify(String(row.tail_from))}`;
    checker.problem(null, 'lookup_mismatch', `the lookup tables' tail_from (${stored}) is after the earliest event after #${row.upto} (${new Date(row.earliest).toISOString()}): queries with an until would skip the events after #${row.upto}`);
  }
}

/**
 * The anchor stands only on a checkpoint an archive run signed: it names the archive file and the
 * file's SHA-256, and that file must be in audit.archive_dir, unchanged, and verify in full (its
 * events chain from the header's prev_hash to the anchor's event, its checkpoints are signed). A
 * checkpoint copied into the anchor (to make the trail start later than it does) signs no archive.
 * An anchor from before checkpoints chained names no digest: it is refused in a trail that has
 * chained checkpoints (the writer re-signs a legacy anchor as checkpoint 1 before it signs any
 * other), and in a legacy trail its archive must verify in full back to the first event (each
 * archive's prev_hash the last hash of the archive before it), since anyone could write a file.
 */
function checkAnchor(checker: ChainChecker, anchor: { event_id: number; hash: string; file: string; jws: string }, keys: ReadonlyMap<string, KeyObject>, archiveDir: string | undefined, chained: boolean): Checkpoint | null {
  const bad = (message: string) => checker.problem(anchor.event_id, 'bad_anchor', message);
  const opened = openCheckpoint(anchor.jws, keys);
  if ('problem' in opened) {
    bad(`the archive anchor's checkpoint is ${opened.problem}`);
    return null;
  }
  const cp = opened.checkpoint;
  if (cp.event_id !== anchor.event_id || cp.hash !== anchor.hash) {
    bad(`the archive anchor (#${anchor.event_id}) does not match its signed checkpoint (#${cp.event_id})`);
    return null;
  }
  if (cp.seq === undefined && chained) {
    bad(`the anchor stands on a checkpoint from before checkpoints chained, in a trail with chained checkpoints: it signs no archive (a copied checkpoint); events up to #${anchor.event_id} were removed without an archive`);
    return null;
  }
  if (cp.seq !== undefined && !cp.archive) {
    bad(`the anchor's checkpoint ${cp.seq} signs no archive: it is a checkpoint copied into the anchor, not one an archive run signed; events up to #${anchor.event_id} were removed without an archive`);
    return null;
  }
  if (cp.archive && (cp.archive.file !== anchor.file || cp.archive.to_id !== anchor.event_id)) {
    bad(`the anchor names the archive ${anchor.file}, its signed checkpoint names ${cp.archive.file} (to #${cp.archive.to_id})`);
    return cp;
  }
  if (archiveDir === undefined) return cp;
  if (basename(anchor.file) !== anchor.file) {
    bad(`the anchor's archive name ${JSON.stringify(anchor.file)} is not a file name`);
    return cp;
  }
  const file = join(archiveDir, anchor.file);
  if (!existsSync(file)) {
    checker.problem(anchor.event_id, 'missing_archive', `the archive ${anchor.file}, which holds the events up to #${anchor.event_id}, is not in ${archiveDir} (audit.archive_dir)`);
    return cp;
  }
  const bytes = readFileSync(file);
  if (cp.archive) {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (sha256 !== cp.archive.sha256) {
      bad(`the archive ${anchor.file} was changed after it was written (its SHA-256 is not the one the anchor's checkpoint signed)`);
      return cp;
    }
    const read = checkArchiveBytes(bytes, { from_id: cp.archive.from_id, to_id: anchor.event_id, hash: anchor.hash }, keys);
    if ('problem' in read) bad(`the archive ${anchor.file} ${read.problem}`);
    return cp;
  }
  const problem = legacyArchiveProblem(archiveDir, anchor, keys);
  if (problem) checker.problem(anchor.event_id, problem.kind, problem.message);
  return cp;
}

/**
 * An archive read in full: its header, its events chained from the header's prev_hash (ids one by
 * one from from_id, every hash recomputed) to the event `expect` names, its checkpoints signed.
 */
export function checkArchiveBytes(bytes: Buffer | string, expect: { from_id?: number; to_id: number; hash: string }, keys: ReadonlyMap<string, KeyObject>): { from_id: number; prev_hash: string } | { problem: string } {
  const lines = bytes.toString().split('\n');
  type Header = { from_id?: unknown; to_id?: unknown; prev_hash?: unknown };
  let header: Header | null = null;
  try {
    header = (JSON.parse(lines[0] ?? '') as { archive?: Header } | null)?.archive ?? null;
  } catch {
    header = null;
  }
  if (!header || typeof header.from_id !== 'number' || typeof header.to_id !== 'number' || typeof header.prev_hash !== 'string') return { problem: 'has no archive header (from_id, to_id, prev_hash)' };
  if (header.to_id !== expect.to_id || (expect.from_id !== undefined && header.from_id !== expect.from_id)) return { problem: `holds #${header.from_id}..#${header.to_id}, not the events up to #${expect.to_id} the anchor names` };
  let id = header.from_id - 1;
  let prev = header.prev_hash;
  for (let n = 1; n < lines.length; n++) {
    const line = lines[n]!;
    if (line.trim() === '') continue;
    let value: { checkpoint?: unknown; id?: unknown; prev_hash?: unknown; hash?: unknown };
    try {
      value = JSON.parse(line);
    } catch {
      return { problem: `line ${n + 1} is not JSON` };
    }
    if (value && typeof value === 'object' && 'checkpoint' in value) {
      const why = signatureProblem(String(value.checkpoint), keys);
      if (why !== null) return { problem: `holds a checkpoint (line ${n + 1}) that is ${why}` };
      continue;
    }
    if (!value || value.id !== id + 1 || value.prev_hash !== prev || typeof value.hash !== 'string') return { problem: `does not chain at line ${n + 1}: expected event #${id + 1} following the one before it` };
    let recomputed: string;
    try {
      recomputed = hashEvent(value as Parameters<typeof hashEvent>[0]);
    } catch {
      recomputed = '';
    }
    if (recomputed !== value.hash) return { problem: `holds event #${value.id} (line ${n + 1}) whose content no longer matches its hash` };
    id++;
    prev = value.hash;
  }
  if (id !== expect.to_id || prev !== expect.hash) return { problem: `does not end at the anchor's event #${expect.to_id} with its hash (its events end at #${id})` };
  return { from_id: header.from_id, prev_hash: header.prev_hash };
}

/** A legacy anchor's archive, and the archives before it, back to the first event of the trail. */
export function legacyArchiveProblem(archiveDir: string, anchor: { event_id: number; hash: string; file: string }, keys: ReadonlyMap<string, KeyObject>): { kind: ProblemKind; message: string } | null {
  let want: { to_id: number; hash: string; file: string } = { to_id: anchor.event_id, hash: anchor.hash, file: anchor.file };
  for (let guard = 0; guard < 1_000_000; guard++) {
    const path = join(archiveDir, want.file);
    if (!existsSync(path)) return { kind: 'missing_archive', message: `the archive ${want.file}, which holds the events up to #${want.to_id}, is not in ${archiveDir} (audit.archive_dir)` };
    const read = checkArchiveBytes(readFileSync(path), want, keys);
    if ('problem' in read) return { kind: 'bad_anchor', message: `the archive ${want.file} ${read.problem}` };
    if (read.from_id === 1) return read.prev_hash === GENESIS_HASH ? null : { kind: 'bad_anchor', message: `the archive ${want.file} starts at #1 but not from the chain's first hash` };
    const before = `-${String(read.from_id - 1).padStart(12, '0')}.jsonl`;
    const name = readdirSync(archiveDir).find((f) => f.startsWith('audit-') && f.endsWith(before));
    if (!name) return { kind: 'missing_archive', message: `the archive ${want.file} starts at #${read.from_id}, and no archive in ${archiveDir} (audit.archive_dir) holds the events before it: an anchor from before checkpoints chained is believed only with its archives back to #1` };
    want = { to_id: read.from_id - 1, hash: read.prev_hash, file: name };
  }
  return { kind: 'bad_anchor', message: 'the archives do not lead back to #1' };
}
