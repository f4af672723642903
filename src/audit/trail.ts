// The gateway's side of the trail. `record` hands an event to the writer thread and resolves only
// when the writer reports it committed (fsync'd). Events recorded in the same turn of the event
// loop travel as one message; the writer commits whatever has arrived as one transaction.
// Fail closed: when a commit fails, every waiting and new record is refused (the caller answers
// 503 audit_unavailable) until a probe event, `audit.recovered`, is itself written.
import { Worker } from 'node:worker_threads';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Checkpoint } from './checkpoint.js';
import type { AuditEvent, AuditInput, AuditRecorder } from './event.js';
import type { ArchiveResult } from './retention.js';
import { AUDIT_FILE } from './schema.js';
import { redactSecrets } from './secrets.js';
import type { AuditSigningKey } from './signing-key.js';
import { dirname, join } from 'node:path';
import { verifyInWorker } from './verify-thread.js';
import type { VerifyReport } from './verify.js';
import { type Head, type PendingRow, pendingRowOf } from './writer.js';
import type { FromWriter, ToWriter, WriterData } from './writer-protocol.js';

export interface TrailLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface TrailOptions {
  dir: string;
  key: AuditSigningKey;
  /** How often the head is signed when it moved. */
  checkpointMs: number;
  /** The operator's log (checkpoints, outages); attachLog() can set it later. */
  log?: TrailLog;
  /** How often a refused trail is tried again. */
  probeMs?: number;
  /** audit.witness_file: every checkpoint is appended there too, and the trail must agree with it to open. */
  witnessFile?: string;
  /** audit.archive_dir: where verify finds the anchor's archive. */
  archiveDir?: string;
  /** Start the witness again from the trail's newest checkpoint, this number (default: GATEHOUSE_AUDIT_WITNESS_RESET). */
  witnessReset?: number;
}

export interface TrailHealth {
  available: boolean;
  head: Head;
  /** While unavailable: since when and why. */
  since?: string;
  reason?: string;
  refused: number;
  last_checkpoint: Checkpoint | null;
  /** Said at start-up and in /readyz: e.g. the witness on the same device as audit.dir. */
  warning?: string;
}

/** A commit slower than this marks the trail unavailable (a healthy fsync takes milliseconds). */
const COMMIT_DEADLINE_MS = 10_000;

export class AuditUnavailableError extends Error {
  override readonly name = 'AuditUnavailableError';
}

interface Waiting {
  rows: PendingRow[];
  inputs: AuditInput[];
  times: number[];
  settle: { resolve: (e: AuditEvent) => void; reject: (e: Error) => void }[];
  /** When the batch went to the writer: a commit slower than COMMIT_DEADLINE_MS means a stalled disk. */
  sentAt?: number;
}

/** One malformed event must not fail the group commit it would share with others. */
function assertShape(e: AuditInput): void {
  const text = (v: unknown) => typeof v === 'string';
  const maybe = (v: unknown) => v === null || v === undefined || typeof v === 'string';
  const actor = e.actor as Partial<AuditInput['actor']> | undefined;
  if (!actor || !maybe(actor.user) || !maybe(actor.auth_method) || !maybe(actor.ip) || !Array.isArray(actor.groups) || !actor.groups.every(text)) throw new TypeError('audit event: malformed actor');
  if (!text(e.action) || !text(e.object) || !text(e.reason) || !['allow', 'deny', 'error'].includes(e.decision)) throw new TypeError(`audit event ${String(e.action)}: action, object, decision and reason are required`);
  if (!maybe(e.policy_version) || !maybe(e.request_id)) throw new TypeError(`audit event ${e.action}: policy_version and request_id are strings`);
  if (e.details !== undefined && (typeof e.details !== 'object' || e.details === null || Array.isArray(e.details))) throw new TypeError(`audit event ${e.action}: details is an object`);
}

/** The compiled writer thread, whether the gateway runs from dist/ or from sources under test. */
function workerFile(name: string): string {
  const beside = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (existsSync(beside)) return beside;
  const built = fileURLToPath(new URL(`../../dist/src/audit/${name}.js`, import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`the audit ${name} thread is missing (looked in ${beside} and ${built}); run npm run build`);
}

export class AuditTrail implements AuditRecorder {
  private worker: Worker | null;
  private outbox: Waiting | null = null;
  private inFlight = new Map<number, Waiting>();
  private nextBatch = 1;
  private down: { since: number; reason: string; refused: number } | null = null;
  private probing = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private headNow: Head = { id: 0, hash: '' };
  private lastCheckpoint: Checkpoint | null = null;
  private readConnection: Database.Database | null = null;
  private archiveWaiter: ((r: { result: ArchiveResult | null; error?: string }) => void) | null = null;
  private closed: Promise<void> | null = null;
  private closeWaiter: (() => void) | null = null;
  /** Called with each committed batch size, for metrics. */
  onCommit: (events: number) => void = () => {};
  onRefused: () => void = () => {};
  private log: TrailLog;
  /** True until open() has resolved: a writer that fails then is not probed for. */
  private opening = true;
  private watchdog: NodeJS.Timeout;

  private constructor(
    private readonly options: TrailOptions,
    ready: (err?: Error) => void,
  ) {
    this.log = options.log ?? { info() {}, warn() {}, error() {} };
    this.worker = this.startWorker(ready);
    // A disk that stalls (a hung NFS mount, a dying device) must not hold decisions forever.
    let lastTick = Date.now();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      const late = now - lastTick > 2000; // our own loop was blocked: the writer's answers may be waiting unread
      lastTick = now;
      const oldest = this.inFlight.values().next().value?.sentAt; // a Map keeps insertion order: the first is the oldest
      if (!late && oldest !== undefined && now - oldest > COMMIT_DEADLINE_MS) {
        const stalled = new AuditUnavailableError(`a commit has not finished in ${COMMIT_DEADLINE_MS / 1000} s (is the disk stalled?)`);
        this.rejectInFlight(stalled);
        this.fail(stalled.message);
      }
    }, 1000);
    this.watchdog.unref();
  }

  /** A writer thread; `ready` hears once whether it opened the trail. */
  private startWorker(ready: (err?: Error) => void): Worker {
    const data: WriterData = {
      dir: this.options.dir,
      keyPem: this.options.key.pem,
      knownKeys: [...this.options.key.known].map(([kid, key]) => [kid, key.export({ format: 'pem', type: 'spki' }).toString()]),
      checkpointMs: this.options.checkpointMs,
      ...(this.options.witnessFile ? { witnessFile: this.options.witnessFile } : {}),
      ...(this.options.archiveDir ? { archiveDir: this.options.archiveDir } : {}),
      ...(witnessResetOf(this.options) !== undefined ? { witnessReset: witnessResetOf(this.options)! } : {}),
    };
    const worker = new Worker(workerFile('writer-worker'), { workerData: data, name: 'audit-writer' });
    let started = false;
    worker.on('message', (m: FromWriter) => {
      if (m.type === 'ready') {
        started = true;
        this.headNow = m.head;
        this.notices = m.notices ?? [];
        for (const n of this.notices) this.log.warn({ witness_file: this.options.witnessFile }, n);
        ready();
      } else if (m.type === 'open_failed') {
        started = true;
        ready(new Error(`cannot open the audit trail in ${this.options.dir} (audit.dir): ${m.error}`));
      } else this.onMessage(m);
    });
    worker.on('error', (err) => {
      if (!started) {
        ready(err);
        if (this.opening) return; // open() failed: nobody holds this trail
      }
      this.fail(`the audit writer stopped: ${err.message}`);
    });
    worker.on('exit', () => {
      if (!started) {
        ready(new Error('the audit writer exited before it started'));
        if (this.opening) return; // open() failed: nobody holds this trail, nothing to recover
      }
      this.archiveWaiter?.({ result: null, error: 'the audit writer stopped during the archive run' });
      this.archiveWaiter = null;
      if (this.worker === worker) this.worker = null;
      // Whatever it had not acknowledged is refused, never left hanging: the callers answer 503.
      const lost = new AuditUnavailableError('the audit writer stopped before the event was committed');
      this.rejectInFlight(lost);
      this.fail('the audit writer exited');
      this.closeWaiter?.();
    });
    return worker;
  }

  /** Opens the trail; refuses to start when it cannot be written at all. */
  static open(options: TrailOptions): Promise<AuditTrail> {
    return new Promise((resolve, reject) => {
      const trail: AuditTrail = new AuditTrail(options, (err) => {
        if (err) {
          clearInterval(trail.watchdog);
          void trail.worker?.terminate();
          reject(err);
        } else {
          trail.opening = false;
          resolve(trail);
        }
      });
    });
  }

  get file(): string {
    return join(this.options.dir, AUDIT_FILE);
  }

  record(given: AuditInput): Promise<AuditEvent> {
    let input: AuditInput;
    try {
      assertShape(given);
      // A secret-looking value is replaced, never a reason to refuse: the event is still recorded.
      const { value, redacted } = redactSecrets(given);
      input = redacted.length === 0 ? given : { ...value, details: { ...value.details, redacted } };
      if (redacted.length > 0) this.log.warn({ action: input.action, redacted }, 'audit event: secret-looking values redacted');
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.down || this.closed) {
      if (this.down) this.down.refused++;
      this.onRefused();
      return Promise.reject(new AuditUnavailableError(this.down ? `the audit trail is unavailable: ${this.down.reason}` : 'the audit trail is closed'));
    }
    return this.enqueue(input);
  }

  private enqueue(input: AuditInput): Promise<AuditEvent> {
    const time = Date.now();
    const row = pendingRowOf(input, time);
    if (!this.outbox) {
      this.outbox = { rows: [], inputs: [], times: [], settle: [] };
      setImmediate(() => this.flush());
    }
    const box = this.outbox;
    box.rows.push(row);
    box.inputs.push(input);
    box.times.push(time);
    return new Promise((resolve, reject) => box.settle.push({ resolve, reject }));
  }

  private flush(): void {
    const box = this.outbox;
    this.outbox = null;
    if (!box) return;
    const batch = this.nextBatch++;
    box.sentAt = Date.now();
    this.inFlight.set(batch, box);
    this.post({ type: 'append', batch, rows: box.rows });
  }

  private post(m: ToWriter): void {
    if (this.worker) this.worker.postMessage(m);
    else if (m.type === 'append') this.onMessage({ type: 'fail', batch: m.batch, error: 'the audit writer is not running' });
    else if (m.type === 'archive') this.onMessage({ type: 'archived', result: null, error: 'the audit writer is not running' });
    else this.closeWaiter?.();
  }

  private onMessage(m: FromWriter): void {
    if (m.type === 'ack') {
      const box = this.inFlight.get(m.batch);
      if (!box) return;
      this.inFlight.delete(m.batch);
      let prev = m.prevHash;
      box.settle.forEach((s, i) => {
        const input = box.inputs[i]!;
        const hash = m.hashes[i]!;
        s.resolve({
          id: m.firstId + i,
          time: new Date(box.times[i]!).toISOString(),
          actor: input.actor,
          action: input.action,
          object: input.object,
          decision: input.decision,
          reason: input.reason,
          policy_version: input.policy_version ?? null,
          request_id: input.request_id ?? null,
          details: input.details ?? {},
          prev_hash: prev,
          hash,
        });
        prev = hash;
      });
      const last = m.firstId + m.hashes.length - 1;
      if (last > this.headNow.id) this.headNow = { id: last, hash: m.hashes[m.hashes.length - 1]! };
      this.onCommit(m.hashes.length);
    } else if (m.type === 'fail') {
      const box = this.inFlight.get(m.batch);
      this.inFlight.delete(m.batch);
      this.fail(m.error);
      const err = new AuditUnavailableError(`the audit trail cannot be written: ${m.error}`);
      box?.settle.forEach((s) => s.reject(err));
    } else if (m.type === 'broken') {
      this.fail(m.error); // found while idle (a checkpoint could not be written): not ready before a request finds out
    } else if (m.type === 'checkpoint') {
      this.lastCheckpoint = m.checkpoint;
      // Also in the operator's log: shipped off the host, it outlives a rewrite of the database.
      this.log.info({ audit_checkpoint: m.checkpoint }, `audit checkpoint at #${m.checkpoint.event_id}`);
    } else if (m.type === 'archived') {
      this.archiveWaiter?.({ result: m.result, error: m.error });
      this.archiveWaiter = null;
    } else if (m.type === 'closed') {
      this.closeWaiter?.();
    }
  }

  /** Refuses every batch the writer has not acknowledged: never left hanging, the callers answer 503. */
  private rejectInFlight(err: Error): void {
    for (const box of this.inFlight.values()) box.settle.forEach((s) => s.reject(err));
    this.inFlight.clear();
  }

  /** Marks the trail unavailable and starts probing for its return. */
  private fail(reason: string): void {
    if (this.closed) {
      this.rejectInFlight(new AuditUnavailableError('the audit trail is closed'));
      return;
    }
    if (!this.down) {
      this.down = { since: Date.now(), reason, refused: 0 };
      this.log.error({ reason }, 'audit trail unavailable: refusing every decision that needs it (503 audit_unavailable)');
      this.probeTimer = setInterval(() => void this.probe(), this.options.probeMs ?? 1000);
      this.probeTimer.unref();
    }
  }

  /** Writes `audit.recovered` (how long, why, how many refused); its commit ends the outage. */
  private async probe(): Promise<void> {
    const down = this.down;
    if (!down || this.probing) return;
    this.probing = true;
    try {
      if (!this.worker) {
        // The thread itself died: a new one, which reads the head back from the file.
        const started = await new Promise<Error | undefined>((resolve) => {
          this.worker = this.startWorker(resolve);
        });
        if (this.closed) await (this.worker as Worker | null)?.terminate(); // closed while it started
        if (started) throw started;
      }
      await this.enqueue({
        actor: { user: null, groups: [], auth_method: 'system', ip: null },
        action: 'audit.recovered',
        object: 'audit:events',
        decision: 'allow',
        reason: `the audit trail could not be written for ${Math.round((Date.now() - down.since) / 1000)} s; ${down.refused} decision(s) were refused meanwhile`,
        details: { unavailable_since: new Date(down.since).toISOString(), cause: down.reason, refused: down.refused },
      });
      this.down = null;
      if (this.probeTimer) clearInterval(this.probeTimer);
      this.probeTimer = null;
      this.log.warn({ refused: down.refused }, 'audit trail available again');
    } catch {
      // still down; the next probe tries again
    } finally {
      this.probing = false;
    }
  }

  health(): TrailHealth {
    const base = { head: this.headNow, last_checkpoint: this.lastCheckpoint, refused: this.down?.refused ?? 0, ...(this.warning ? { warning: this.warning } : {}) };
    return this.down ? { available: false, since: new Date(this.down.since).toISOString(), reason: this.down.reason, ...base } : { available: true, ...base };
  }

  /** What the writer said at open (a witness reset, a witness checkpoint taken in): for the operator's log. */
  private notices: string[] = [];

  attachLog(log: TrailLog): void {
    this.log = log;
    for (const n of this.notices) log.warn({ witness_file: this.options.witnessFile }, n);
    if (this.warning) log.warn({ witness_file: this.options.witnessFile, audit_dir: this.options.dir }, `audit: ${this.warning}`);
  }

  /**
   * A witness on the same device as audit.dir (the default, state.dir/audit-witness.jsonl) guards
   * only against an edit of the database alone: whoever can rewrite the trail's files can cut the
   * witness back with them.
   */
  private get warning(): string | null {
    const file = this.options.witnessFile;
    if (!file) return null;
    try {
      if (statSync(dirname(file)).dev !== statSync(this.options.dir).dev) return null;
    } catch {
      return null;
    }
    return `the witness ${file} (audit.witness_file) is on the same device as audit.dir: it protects only against edits of the database alone; put it on another volume or host (an append-only mount, a log shipper's spool)`;
  }

  /** The checkpoint key's public half, for the JWKS. */
  get publicJwk(): AuditSigningKey['jwk'] {
    return this.options.key.jwk;
  }

  /** Every audit key's public half, current first, then the retired ones: all go in the JWKS. */
  get publicJwks(): AuditSigningKey['jwks'] {
    return this.options.key.jwks;
  }

  available(): boolean {
    return this.down === null && this.closed === null;
  }

  head(): Head {
    return this.headNow;
  }

  /** A read-only connection for queries and exports (WAL: readers never wait for the writer). */
  reader(): Database.Database {
    if (!this.readConnection || !this.readConnection.open) {
      this.readConnection = new Database(this.file, { readonly: true, fileMustExist: true });
      this.readConnection.pragma('busy_timeout = 5000');
    }
    return this.readConnection;
  }

  /** Verifies the whole trail on a thread of its own, against the live head, the witness and the anchor's archive. */
  verify(keys: ReadonlyMap<string, KeyObject> = this.options.key.known): Promise<VerifyReport> {
    return verifyInWorker(workerFile('verify-worker'), this.options.dir, keys, this.headNow, { archiveDir: this.options.archiveDir, witnessFile: this.options.witnessFile });
  }

  /** Archives (and then deletes) up to `maxEvents` events recorded before `before`. */
  archive(before: Date, archiveDir: string, maxEvents = 10_000): Promise<ArchiveResult | null> {
    if (this.closed) return Promise.reject(new Error('the audit trail is closed'));
    if (this.archiveWaiter) return Promise.reject(new Error('an archive run is already in progress'));
    return new Promise((resolve, reject) => {
      this.archiveWaiter = ({ result, error }) => (error ? reject(new Error(error)) : resolve(result));
      this.flush();
      this.post({ type: 'archive', before: before.getTime(), archiveDir, maxEvents });
    });
  }

  /** Commits what is waiting, signs the tail, and stops the writer. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.flush();
    if (this.probeTimer) clearInterval(this.probeTimer);
    clearInterval(this.watchdog);
    this.closed = new Promise<void>((resolve) => {
      this.closeWaiter = resolve;
      this.post({ type: 'close' });
    }).then(async () => {
      this.readConnection?.close();
      await this.worker?.terminate();
    });
    return this.closed;
  }
}

/** The admin's one-time witness reset: the option, or GATEHOUSE_AUDIT_WITNESS_RESET (a checkpoint number). */
function witnessResetOf(options: TrailOptions): number | undefined {
  if (options.witnessReset !== undefined) return options.witnessReset;
  const env = process.env.GATEHOUSE_AUDIT_WITNESS_RESET;
  if (env === undefined || env === '') return undefined;
  if (!/^[1-9][0-9]{0,15}$/.test(env)) throw new Error(`GATEHOUSE_AUDIT_WITNESS_RESET must be the number of the trail's newest checkpoint, not ${JSON.stringify(env)}`);
  return Number(env);
}
