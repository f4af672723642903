// The trail as the gateway holds it: `record` checks an event's shape (input.ts), redacts what looks
// like a secret (secrets.ts), and hands it to the writer thread (writer-client.ts), resolving once it
// is committed (fsync'd). Fail closed: while the trail is unavailable (availability.ts) every record
// is refused and the caller answers 503 audit_unavailable. Besides: health for /readyz, the keys for
// the JWKS, a read-only connection for queries, verify, archive and close.
import type { KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { Availability, AuditUnavailableError } from './availability.js';
import type { Checkpoint } from './checkpoint.js';
import type { AuditEvent, AuditInput, AuditRecorder } from './event.js';
import { assertAuditInput } from './input.js';
import type { ArchiveResult } from './retention.js';
import { AUDIT_FILE } from './schema.js';
import { redactSecrets } from './secrets.js';
import type { AuditSigningKey } from './signing-key.js';
import { verifyInWorker } from './verify-thread.js';
import type { VerifyReport } from './verify.js';
import { workerFile } from './worker-file.js';
import type { Head } from './writer.js';
import { WriterClient } from './writer-client.js';
import type { WriterData } from './writer-protocol.js';

export { AuditUnavailableError };

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

export class AuditTrail implements AuditRecorder {
  private writer!: WriterClient;
  private readonly availability: Availability;
  private lastCheckpoint: Checkpoint | null = null;
  private readConnection: Database.Database | null = null;
  private closing: Promise<void> | null = null;
  /** What the writer said at open (a witness reset, a witness checkpoint taken in): for the operator's log. */
  private notices: string[] = [];
  private log: TrailLog;
  /** Called with each committed batch size, for metrics. */
  onCommit: (events: number) => void = () => {};
  onRefused: () => void = () => {};
  /** Called with each event once it is committed and how long record() waited for that, for metrics. */
  onRecorded: (event: AuditInput, seconds: number) => void = () => {};

  private constructor(private readonly options: TrailOptions) {
    this.log = options.log ?? { info() {}, warn() {}, error() {} };
    this.availability = new Availability({
      probeMs: options.probeMs ?? 1000,
      log: () => this.log,
      recover: async (probe) => {
        await this.writer.restart();
        await this.writer.append(probe());
      },
    });
  }

  /** Opens the trail; refuses to start when it cannot be written at all. */
  static async open(options: TrailOptions): Promise<AuditTrail> {
    const trail = new AuditTrail(options);
    trail.writer = await WriterClient.open(options.dir, () => writerDataOf(options), {
      opened: (notices) => {
        trail.notices = notices;
        for (const n of notices) trail.log.warn({ witness_file: options.witnessFile }, n);
      },
      broken: (reason) => trail.availability.fail(reason),
      checkpoint: (checkpoint) => {
        trail.lastCheckpoint = checkpoint;
        // Also in the operator's log: shipped off the host, it outlives a rewrite of the database.
        trail.log.info({ audit_checkpoint: checkpoint }, `audit checkpoint at #${checkpoint.event_id}`);
      },
      committed: (events) => trail.onCommit(events),
    });
    return trail;
  }

  get file(): string {
    return join(this.options.dir, AUDIT_FILE);
  }

  record(given: AuditInput): Promise<AuditEvent> {
    let input: AuditInput;
    try {
      // One malformed event must not fail the group commit it would share with others.
      assertAuditInput(given);
      // A secret-looking value is replaced, never a reason to refuse: the event is still recorded.
      const { value, redacted } = redactSecrets(given);
      input = redacted.length === 0 ? given : { ...value, details: { ...value.details, redacted } };
      if (redacted.length > 0) this.log.warn({ action: input.action, redacted }, 'audit event: secret-looking values redacted');
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.availability.outage || this.writer.isClosed) {
      const refused = this.availability.refuse();
      this.onRefused();
      return Promise.reject(refused);
    }
    const started = performance.now();
    return this.writer.append(input).then((event) => {
      try {
        this.onRecorded(input, (performance.now() - started) / 1000);
      } catch (err) {
        // Counting is never a reason to fail a decision that is already on record.
        this.log.error({ err: (err as Error).message, action: input.action }, 'audit metrics: counting an event failed');
      }
      return event;
    });
  }

  health(): TrailHealth {
    const down = this.availability.outage;
    const base = { head: this.writer.head, last_checkpoint: this.lastCheckpoint, refused: down?.refused ?? 0, ...(this.warning ? { warning: this.warning } : {}) };
    return down ? { available: false, since: new Date(down.since).toISOString(), reason: down.reason, ...base } : { available: true, ...base };
  }

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
    return this.availability.outage === null && !this.writer.isClosed;
  }

  head(): Head {
    return this.writer.head;
  }

  /** A read-only connection for queries and exports (WAL: readers never wait for the writer). */
  /** This trail's chain identity (audit_chain, drawn when the file was made). */
  chainId(): string {
    return this.reader().prepare('select id from audit_chain').pluck().get() as string;
  }

  reader(): Database.Database {
    if (!this.readConnection || !this.readConnection.open) {
      this.readConnection = new Database(this.file, { readonly: true, fileMustExist: true });
      this.readConnection.pragma('busy_timeout = 5000');
    }
    return this.readConnection;
  }

  /** Verifies the whole trail on a thread of its own, against the live head, the witness and the anchor's archive. */
  verify(keys: ReadonlyMap<string, KeyObject> = this.options.key.known): Promise<VerifyReport> {
    return verifyInWorker(workerFile('verify-worker'), this.options.dir, keys, this.writer.head, { archiveDir: this.options.archiveDir, witnessFile: this.options.witnessFile });
  }

  /** Archives (and then deletes) up to `maxEvents` events recorded before `before`. */
  archive(before: Date, archiveDir: string, maxEvents = 10_000): Promise<ArchiveResult | null> {
    return this.writer.archive(before, archiveDir, maxEvents);
  }

  /** Commits what is waiting, signs the tail, and stops the writer. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.availability.stop();
    this.closing = this.writer.close(() => this.readConnection?.close());
    return this.closing;
  }
}

/** What the writer thread starts with; read anew for each start, as the reset may come from the environment. */
function writerDataOf(options: TrailOptions): WriterData {
  const witnessReset = witnessResetOf(options);
  return {
    dir: options.dir,
    keyPem: options.key.pem,
    knownKeys: [...options.key.known].map(([kid, key]) => [kid, key.export({ format: 'pem', type: 'spki' }).toString()]),
    checkpointMs: options.checkpointMs,
    ...(options.witnessFile ? { witnessFile: options.witnessFile } : {}),
    ...(options.archiveDir ? { archiveDir: options.archiveDir } : {}),
    ...(witnessReset !== undefined ? { witnessReset } : {}),
  };
}

/** The admin's one-time witness reset: the option, or GATEHOUSE_AUDIT_WITNESS_RESET (a checkpoint number). */
function witnessResetOf(options: TrailOptions): number | undefined {
  if (options.witnessReset !== undefined) return options.witnessReset;
  const env = process.env.GATEHOUSE_AUDIT_WITNESS_RESET;
  if (env === undefined || env === '') return undefined;
  if (!/^[1-9][0-9]{0,15}$/.test(env)) throw new Error(`GATEHOUSE_AUDIT_WITNESS_RESET must be the number of the trail's newest checkpoint, not ${JSON.stringify(env)}`);
  return Number(env);
}
