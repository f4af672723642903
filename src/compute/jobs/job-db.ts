// The engine's own state: jobs, their partitions and spent admission tickets, in SQLite beside
// the logs. Every change is written before the engine acts on it, so a kill -9 loses at most the
// partitions that were running, and those are redone. The two writes every partition makes (it
// started, it is kept) are the exception: they wait up to BATCH_MS and go in one transaction with
// their neighbours (as one update when both wait there), and any other read or write, a status
// included, writes them first (see defer).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { JobSpec, JobState, Resources } from '../../wire/index.js';

export type PartitionState = 'todo' | 'running' | 'done' | 'failed';

export interface JobRow {
  id: string;
  /** Order of submission. */
  seq: number;
  user: string;
  spec: JobSpec;
  granted: Resources;
  state: JobState;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  uid: number | null;
  core_seconds: number;
  /**
   * The admission ticket's claim that an admin may replace a dataset of this owner (null owner:
   * one nobody owns); null when the ticket had none. Kept so the commit, even after a restart,
   * replaces only what the gateway authorized.
   */
  replaces: { owner: string | null } | null;
}

export interface PartitionRow {
  job_id: string;
  /** Position in the job's work list: the output's partition number. */
  idx: number;
  /** The input partition it reads. */
  input_idx: number;
  state: PartitionState;
  attempts: number;
  rows_in: number;
  bytes_in: number;
  rows_out: number;
  bytes_out: number;
  seconds: number;
  error: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, user TEXT NOT NULL, spec TEXT NOT NULL, granted TEXT NOT NULL,
  state TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, error TEXT,
  uid INTEGER, core_seconds REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS partitions (
  job_id TEXT NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, input_idx INTEGER NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, rows_in INTEGER NOT NULL, bytes_in INTEGER NOT NULL,
  rows_out INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0, seconds REAL NOT NULL DEFAULT 0, error TEXT,
  PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS tickets (jti TEXT PRIMARY KEY, exp INTEGER NOT NULL);
`;

interface RawJob extends Omit<JobRow, 'spec' | 'granted' | 'replaces'> {
  spec: string;
  granted: string;
  replaces: string | null;
}

/**
 * How long a partition's bookkeeping may wait for company. A kill -9 in that window redoes the
 * partitions it held (as it redoes running ones); nothing anyone has been shown is lost, since a
 * status writes them first.
 */
const BATCH_MS = 25;
/** A batch this big is written at once. */
const BATCH_MAX = 64;

export class JobDb {
  private readonly db: Database.Database;
  private readonly statements;
  /** Partition updates not yet written, in order (see defer). */
  private pending: (() => void)[] = [];
  /**
   * Where in `pending` each partition's "running" write waits (key: job id, NUL, index): its "done"
   * then takes that place as one update instead of two. Nothing else is written for a partition
   * between the two (a failure or an interruption writes at once, after a flush).
   */
  private runningAt = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly writeBatch: (work: (() => void)[]) => void;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // WAL with NORMAL survives a killed process (only an OS crash could lose the last commits).
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    // Databases of engines before the replaces claim: the column is added, null (no claim) for old jobs.
    if (!(this.db.prepare(`SELECT name FROM pragma_table_info('jobs')`).all() as { name: string }[]).some((c) => c.name === 'replaces')) {
      this.db.exec(`ALTER TABLE jobs ADD COLUMN replaces TEXT`);
    }
    const db = this.db;
    this.statements = {
      insertJob: db.prepare(
        `INSERT INTO jobs (id, seq, user, spec, granted, state, created_at, replaces) VALUES (@id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), @user, @spec, @granted, 'queued', @created_at, @replaces)`,
      ),
      insertPartition: db.prepare(`INSERT INTO partitions (job_id, idx, input_idx, state, rows_in, bytes_in) VALUES (?, ?, ?, 'todo', ?, ?)`),
      job: db.prepare(`SELECT * FROM jobs WHERE id = ?`),
      counts: db.prepare(`SELECT state, COUNT(*) AS n FROM jobs GROUP BY state`),
      jobs: db.prepare(`SELECT * FROM jobs ORDER BY seq DESC LIMIT ?`),
      jobsOf: db.prepare(`SELECT * FROM jobs WHERE user = ? ORDER BY seq DESC LIMIT ?`),
      unfinished: db.prepare(`SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq`),
      partitions: db.prepare(`SELECT * FROM partitions WHERE job_id = ? ORDER BY idx`),
      setState: db.prepare(`UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?`),
      started: db.prepare(`UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?) WHERE id = ?`),
      setUid: db.prepare(`UPDATE jobs SET uid = ? WHERE id = ?`),
      coreSeconds: db.prepare(`UPDATE jobs SET core_seconds = core_seconds + ? WHERE id = ?`),
      partitionRunning: db.prepare(`UPDATE partitions SET state = 'running', attempts = attempts + 1 WHERE job_id = ? AND idx = ?`),
      partitionDone: db.prepare(`UPDATE partitions SET state = 'done', rows_out = ?, bytes_out = ?, seconds = ?, error = NULL WHERE job_id = ? AND idx = ?`),
      partitionRanDone: db.prepare(`UPDATE partitions SET state = 'done', attempts = attempts + 1, rows_out = ?, bytes_out = ?, seconds = ?, error = NULL WHERE job_id = ? AND idx = ?`),
      partitionFailed: db.prepare(`UPDATE partitions SET state = ?, error = ? WHERE job_id = ? AND idx = ?`),
      partitionTodo: db.prepare(`UPDATE partitions SET state = 'todo' WHERE job_id = ? AND idx = ?`),
      partitionInterrupted: db.prepare(`UPDATE partitions SET state = 'todo', attempts = MAX(0, attempts - 1) WHERE job_id = ? AND idx = ?`),
      ticketSpent: db.prepare(`SELECT 1 FROM tickets WHERE jti = ?`),
      spendTicket: db.prepare(`INSERT OR IGNORE INTO tickets (jti, exp) VALUES (?, ?)`),
      forgetTickets: db.prepare(`DELETE FROM tickets WHERE exp < ?`),
    };
    this.writeBatch = db.transaction((work: (() => void)[]) => {
      for (const write of work) write();
    });
  }

  /**
   * Writes the partition updates waiting for their batch, in one transaction. Every other method
   * calls it first, so reads see them and writes keep their order; the engine calls it before a
   * live job's status is shown, so a partition reported done is one a restart finds done.
   */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    const work = this.pending;
    this.pending = [];
    this.runningAt.clear();
    try {
      this.writeBatch(work);
    } catch (err) {
      // Rolled back whole: kept for the next flush, whose caller then sees the error (a full disk, say).
      this.pending = work.concat(this.pending);
      throw err;
    }
  }

  /** A partition's bookkeeping: written with its neighbours within BATCH_MS (see flush). */
  private defer(write: () => void): void {
    this.pending.push(write);
    if (this.pending.length >= BATCH_MAX) this.flush();
    else this.timer ??= setTimeout(() => this.flushLater(), BATCH_MS);
  }

  /** The timer's flush: an error there has no caller to go to, and must not end the engine. */
  private flushLater(): void {
    this.timer = null;
    try {
      this.flush();
    } catch {
      this.timer ??= setTimeout(() => this.flushLater(), BATCH_MS * 4);
    }
  }

  /**
   * The job and its partitions in one transaction: never a job without its work list. Returns the
   * partition rows as inserted (the schema's defaults), so a new job's run need not read them back.
   */
  insertJob(
    job: { id: string; user: string; spec: JobSpec; granted: Resources; created_at: string; replaces?: { owner: string | null } | undefined },
    partitions: { input_idx: number; rows: number; bytes: number }[],
  ): PartitionRow[] {
    this.flush();
    this.db.transaction(() => {
      this.statements.insertJob.run({
        id: job.id,
        user: job.user,
        created_at: job.created_at,
        spec: JSON.stringify(job.spec),
        granted: JSON.stringify(job.granted),
        replaces: job.replaces === undefined ? null : JSON.stringify({ owner: job.replaces.owner }),
      });
      for (const [idx, p] of partitions.entries()) this.statements.insertPartition.run(job.id, idx, p.input_idx, p.rows, p.bytes);
    })();
    return partitions.map((p, idx) => ({ job_id: job.id, idx, input_idx: p.input_idx, state: 'todo', attempts: 0, rows_in: p.rows, bytes_in: p.bytes, rows_out: 0, bytes_out: 0, seconds: 0, error: null }));
  }

  job(id: string): JobRow | undefined {
    this.flush();
    const raw = this.statements.job.get(id) as RawJob | undefined;
    return raw === undefined ? undefined : parse(raw);
  }

  jobs(user: string | undefined, limit: number): JobRow[] {
    this.flush();
    const raws = (user === undefined ? this.statements.jobs.all(limit) : this.statements.jobsOf.all(user, limit)) as RawJob[];
    return raws.map(parse);
  }

  countsByState(): Record<string, number> {
    this.flush();
    return Object.fromEntries((this.statements.counts.all() as { state: string; n: number }[]).map((r) => [r.state, r.n]));
  }

  unfinished(): JobRow[] {
    this.flush();
    return (this.statements.unfinished.all() as RawJob[]).map(parse);
  }

  partitions(jobId: string): PartitionRow[] {
    this.flush();
    return this.statements.partitions.all(jobId) as PartitionRow[];
  }

  started(id: string, at: string): void {
    this.flush();
    this.statements.started.run(at, id);
  }

  /** The uid a job's area belongs to, kept so a restarted engine gives it back the same one. */
  setUid(id: string, uid: number | null): void {
    this.flush();
    this.statements.setUid.run(uid, id);
  }

  finish(id: string, state: JobState, error: string | null, at: string): void {
    this.flush();
    this.statements.setState.run(state, error, at, id);
  }

  addCoreSeconds(id: string, seconds: number): void {
    this.flush();
    this.statements.coreSeconds.run(seconds, id);
  }

  partitionRunning(jobId: string, idx: number): void {
    this.runningAt.set(`${jobId}\0${idx}`, this.pending.length);
    this.defer(() => this.statements.partitionRunning.run(jobId, idx));
  }

  partitionDone(jobId: string, idx: number, result: { rows_out: number; bytes_out: number; seconds: number }): void {
    const { rows_out, bytes_out, seconds } = result;
    const key = `${jobId}\0${idx}`;
    const at = this.runningAt.get(key);
    if (at !== undefined) {
      // Its start is not written yet: one update says both (a partition's two writes, halved).
      this.runningAt.delete(key);
      this.pending[at] = () => this.statements.partitionRanDone.run(rows_out, bytes_out, seconds, jobId, idx);
      return;
    }
    this.defer(() => this.statements.partitionDone.run(rows_out, bytes_out, seconds, jobId, idx));
  }

  /** `todo` when it will be retried, `failed` when it will not. */
  partitionFailed(jobId: string, idx: number, state: 'todo' | 'failed', error: string): void {
    this.flush();
    this.statements.partitionFailed.run(state, error, jobId, idx);
  }

  partitionTodo(jobId: string, idx: number): void {
    this.flush();
    this.statements.partitionTodo.run(jobId, idx);
  }

  /** A running partition the engine's death interrupted: todo again, and the attempt not counted. */
  partitionInterrupted(jobId: string, idx: number): void {
    this.flush();
    this.statements.partitionInterrupted.run(jobId, idx);
  }

  ticketSpent(jti: string): boolean {
    this.flush();
    return this.statements.ticketSpent.get(jti) !== undefined;
  }

  /** False when this ticket id was spent before. Expired ids are forgotten: their tickets are refused anyway. */
  spendTicket(jti: string, exp: number): boolean {
    this.flush();
    this.statements.forgetTickets.run(Math.floor(Date.now() / 1000) - 60);
    return this.statements.spendTicket.run(jti, exp).changes === 1;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.db.close();
    }
  }
}

function parse(raw: RawJob): JobRow {
  return { ...raw, spec: JSON.parse(raw.spec) as JobSpec, granted: JSON.parse(raw.granted) as Resources, replaces: raw.replaces === null || raw.replaces === undefined ? null : (JSON.parse(raw.replaces) as { owner: string | null }) };
}
