// Recomputes the chain and checks the signed checkpoints. Each problem is located by event id and
// named: edited, missing, inserted, reordered, a broken link, a truncated tail, a bad checkpoint or
// anchor. One tampered event is one problem: the scan goes on from the stored hash, and follows a
// renumbering (an insertion or deletion that shifted later ids) instead of flagging every event after it.
import type { KeyObject } from 'node:crypto';
import type Database from 'better-sqlite3';
import { GENESIS_HASH, hashRow } from './chain.js';
import { type Checkpoint, openCheckpoint, readCheckpoint, signatureProblem } from './checkpoint.js';
import type { AuditRow } from './schema.js';

export type ProblemKind = 'edited' | 'missing' | 'inserted' | 'reordered' | 'broken_link' | 'truncated' | 'bad_checkpoint' | 'bad_anchor';

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
  last_checkpoint: { event_id: number; time: string } | null;
  /** Events after the last checkpoint: a truncation among them is caught only by the live head. */
  unsigned_tail: number;
  anchor: { event_id: number; file: string } | null;
  problems: VerifyProblem[];
  /** Problems beyond the first MAX_PROBLEMS are counted, not listed. */
  more_problems: number;
  elapsed_ms: number;
}

const MAX_PROBLEMS = 100;

/** A signed checkpoint, as stored or as an archive line. */
interface SignedPoint {
  jws: string;
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
   * The newest checkpoint whose signature holds vouches, through the chain, for every event before
   * it; so only its signature is checked up front, and an older one's only where the chain
   * disagrees with it (to tell a rewrite from a forged checkpoint). A signature check costs more
   * than hashing an event, and a trail keeps one checkpoint every few seconds.
   */
  checkpoints(points: Iterable<SignedPoint>, storedEventId?: (cp: Checkpoint) => boolean): void {
    const read: Checkpoint[] = [];
    for (const p of points) {
      const opened = readCheckpoint(p.jws);
      if ('problem' in opened) {
        this.problem(null, 'bad_checkpoint', `a checkpoint is ${opened.problem}`);
        continue;
      }
      const cp = opened.checkpoint;
      if (storedEventId && !storedEventId(cp)) {
        this.problem(cp.event_id, 'bad_checkpoint', `the checkpoint stored for #${cp.event_id} signs a different event`);
        continue;
      }
      read.push(cp);
    }
    read.sort((a, b) => a.event_id - b.event_id);
    while (read.length > 0) {
      const newest = read.at(-1)!;
      const problem = signatureProblem(newest.jws, this.keys);
      if (problem === null) break;
      this.problem(newest.event_id, 'bad_checkpoint', `the checkpoint for #${newest.event_id} is ${problem}`);
      read.pop();
    }
    for (const cp of read) {
      this.checkpointCount++;
      this.signed.set(cp.event_id, { hash: cp.hash, source: `the checkpoint signed at ${cp.time}`, jws: cp.jws });
    }
    const newest = read.at(-1);
    if (newest) {
      this.signed.get(newest.event_id)!.jws = undefined; // checked
      this.lastCheckpoint = { event_id: newest.event_id, time: newest.time };
    }
  }

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

/** Verifies a trail database (a read-only connection is enough). */
export function verifyTrail(db: Database.Database, keys: ReadonlyMap<string, KeyObject>, options: { liveHead?: { id: number; hash: string } | null; onProgress?: (done: number) => void } = {}): VerifyReport {
  // One read transaction: retention may move the anchor meanwhile, and the three reads must agree.
  db.exec('begin');
  try {
    return verifySnapshot(db, keys, options);
  } finally {
    db.exec('commit');
  }
}

function verifySnapshot(db: Database.Database, keys: ReadonlyMap<string, KeyObject>, options: { liveHead?: { id: number; hash: string } | null; onProgress?: (done: number) => void }): VerifyReport {
  const anchorRow = db.prepare('select event_id, hash, file, jws from audit_anchor').get() as { event_id: number; hash: string; file: string; jws: string } | undefined;
  const start = anchorRow ? { id: anchorRow.event_id, hash: anchorRow.hash } : { id: 0, hash: GENESIS_HASH };
  const checker = new ChainChecker(start, keys);
  if (anchorRow) {
    const opened = openCheckpoint(anchorRow.jws, keys);
    if ('problem' in opened) checker.problem(anchorRow.event_id, 'bad_anchor', `the archive anchor's checkpoint is ${opened.problem}`);
    else if (opened.checkpoint.event_id !== anchorRow.event_id || opened.checkpoint.hash !== anchorRow.hash) checker.problem(anchorRow.event_id, 'bad_anchor', `the archive anchor does not match its signed checkpoint (#${opened.checkpoint.event_id})`);
  }
  const stored = db.prepare('select event_id, hash, jws from audit_checkpoints order by event_id').all() as { event_id: number; hash: string; jws: string }[];
  const byJws = new Map(stored.map((s) => [s.jws, s]));
  checker.checkpoints(stored, (cp) => byJws.get(cp.jws)?.event_id === cp.event_id);
  // The live head is as good as a checkpoint: the event there must still have the hash it was written with.
  if (options.liveHead && options.liveHead.id > 0) checker.expect(options.liveHead.id, options.liveHead.hash, 'the hash the gateway wrote there');
  let n = 0;
  for (const row of db.prepare(`select ${COLUMNS} from audit_events order by id`).iterate() as Iterable<AuditRow>) {
    checker.push(row);
    if (++n % 100_000 === 0) options.onProgress?.(n);
  }
  return checker.finish({ anchor: anchorRow ? { event_id: anchorRow.event_id, file: anchorRow.file } : null, liveHead: options.liveHead ?? null });
}
