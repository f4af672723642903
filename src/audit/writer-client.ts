// The gateway's side of the writer thread (writer-worker.ts): starts it, hands it events and reads
// its answers. Events appended in the same turn of the event loop travel as one message; the writer
// commits whatever has arrived as one transaction, and each append resolves only when the writer
// reports it committed (fsync'd). Archive and close are requests of their own. What the thread
// cannot commit (a failed transaction, a stalled disk, the thread gone) is refused, never left
// hanging, and reported to `broken`: availability.ts decides what that means for the trail.
import { Worker } from 'node:worker_threads';
import { AuditUnavailableError } from './availability.js';
import { isoTime } from './chain.js';
import type { Checkpoint } from './checkpoint.js';
import type { AuditEvent, AuditInput } from './event.js';
import type { ArchiveResult } from './retention.js';
import { workerFile } from './worker-file.js';
import { type Head, type PendingRow, pendingRowOf } from './writer.js';
import type { FromWriter, ToWriter, WriterData } from './writer-protocol.js';

/** What the writer tells its owner. */
export interface WriterListener {
  /** The thread opened the trail (at open, and again after a restart); `notices` are the writer's words for the operator. */
  opened(notices: string[]): void;
  /** Events cannot be committed: a failed commit, a stalled disk, the thread stopped (not said once closed). */
  broken(reason: string): void;
  /** A checkpoint was signed. */
  checkpoint(checkpoint: Checkpoint): void;
  /** A batch of this many events was committed. */
  committed(events: number): void;
}

/** A commit slower than this marks the trail unavailable (a healthy fsync takes milliseconds). */
const COMMIT_DEADLINE_MS = 10_000;

/**
 * Events one message carries at most. The events of one turn of the event loop go together, but
 * when a turn makes many (a commit's acknowledgement wakes hundreds of requests at once, and each
 * records its next event), they leave in messages of this size as they are made: the writer thread
 * starts hashing and inserting the first while this thread makes the rest, where one message at
 * the end of the turn left the two threads taking turns (each idle while the other worked). The
 * writer still commits whatever has arrived as one transaction, so a busy trail's commits stay large.
 */
export const MESSAGE_EVENTS = 256;

interface Waiting {
  rows: PendingRow[];
  inputs: AuditInput[];
  times: number[];
  settle: { resolve: (e: AuditEvent) => void; reject: (e: Error) => void }[];
  /** When the batch went to the writer: a commit slower than COMMIT_DEADLINE_MS means a stalled disk. */
  sentAt?: number;
}

export class WriterClient {
  private worker: Worker | null;
  private outbox: Waiting | null = null;
  /** A flush at the end of this turn is queued. */
  private flushQueued = false;
  private inFlight = new Map<number, Waiting>();
  private nextBatch = 1;
  private headNow: Head = { id: 0, hash: '' };
  private archiveWaiter: ((r: { result: ArchiveResult | null; error?: string }) => void) | null = null;
  private closed: Promise<void> | null = null;
  private closeWaiter: (() => void) | null = null;
  /** True until open() has resolved: a writer that fails then is not reported broken. */
  private opening = true;
  private watchdog: NodeJS.Timeout;

  private constructor(
    /** The thread's start data, made anew for each start (a restart reads the head back from the file). */
    private readonly dataOf: () => WriterData,
    private readonly listener: WriterListener,
    ready: (err?: Error) => void,
  ) {
    this.worker = this.start(ready);
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
        this.broken(stalled.message);
      }
    }, 1000);
    this.watchdog.unref();
  }

  /** Starts the writer thread; rejects when it cannot open the trail in `dir`. */
  static open(_dir: string, dataOf: () => WriterData, listener: WriterListener): Promise<WriterClient> {
    return new Promise((resolve, reject) => {
      const client: WriterClient = new WriterClient(dataOf, listener, (err) => {
        if (err) {
          clearInterval(client.watchdog);
          void client.worker?.terminate();
          reject(err);
        } else {
          client.opening = false;
          resolve(client);
        }
      });
    });
  }

  /** The newest committed event. */
  get head(): Head {
    return this.headNow;
  }

  /** True once close() was called. */
  get isClosed(): boolean {
    return this.closed !== null;
  }

  /** A writer thread; `ready` hears once whether it opened the trail. */
  private start(ready: (err?: Error) => void): Worker {
    const data = this.dataOf();
    const worker = new Worker(workerFile('writer-worker'), { workerData: data, name: 'audit-writer' });
    let started = false;
    worker.on('message', (m: FromWriter) => {
      if (m.type === 'ready') {
        started = true;
        this.headNow = m.head;
        this.listener.opened(m.notices ?? []);
        ready();
      } else if (m.type === 'open_failed') {
        started = true;
        ready(new Error(`cannot open the audit trail in ${data.dir} (audit.dir): ${m.error}`));
      } else this.onMessage(m);
    });
    worker.on('error', (err) => {
      if (!started) {
        ready(err);
        if (this.opening) return; // open() failed: nobody holds this trail
      }
      this.broken(`the audit writer stopped: ${err.message}`);
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
      this.broken('the audit writer exited');
      this.closeWaiter?.();
    });
    return worker;
  }

  /** A new thread when the last one died (it reads the head back from the file); rejects when it cannot open. */
  async restart(): Promise<void> {
    if (this.worker) return;
    const started = await new Promise<Error | undefined>((resolve) => {
      this.worker = this.start(resolve);
    });
    if (this.closed) await (this.worker as Worker | null)?.terminate(); // closed while it started
    if (started) throw started;
  }

  /** Resolves with the event once the writer has committed it; rejects when it cannot. */
  append(input: AuditInput): Promise<AuditEvent> {
    const time = Date.now();
    const row = pendingRowOf(input, time);
    if (!this.outbox) {
      this.outbox = { rows: [], inputs: [], times: [], settle: [] };
      if (!this.flushQueued) {
        this.flushQueued = true;
        setImmediate(() => {
          this.flushQueued = false;
          this.flush();
        });
      }
    }
    const box = this.outbox;
    box.rows.push(row);
    box.inputs.push(input);
    box.times.push(time);
    const settled = new Promise<AuditEvent>((resolve, reject) => box.settle.push({ resolve, reject }));
    if (box.rows.length >= MESSAGE_EVENTS) this.flush();
    return settled;
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
          time: isoTime(box.times[i]!),
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
      this.listener.committed(m.hashes.length);
    } else if (m.type === 'fail') {
      const box = this.inFlight.get(m.batch);
      this.inFlight.delete(m.batch);
      this.broken(m.error);
      const err = new AuditUnavailableError(`the audit trail cannot be written: ${m.error}`);
      for (const s of box?.settle ?? []) s.reject(err);
    } else if (m.type === 'broken') {
      this.broken(m.error); // found while idle (a checkpoint could not be written): not ready before a request finds out
    } else if (m.type === 'checkpoint') {
      this.listener.checkpoint(m.checkpoint);
    } else if (m.type === 'archived') {
      this.archiveWaiter?.({ result: m.result, error: m.error });
      this.archiveWaiter = null;
    } else if (m.type === 'closed') {
      this.closeWaiter?.();
    }
  }

  /** Refuses every batch the writer has not acknowledged: never left hanging, the callers answer 503. */
  private rejectInFlight(err: Error): void {
    for (const box of this.inFlight.values()) for (const s of box.settle) s.reject(err);
    this.inFlight.clear();
  }

  /** Reports a failure to the owner; once closed, only refuses what is still waiting. */
  private broken(reason: string): void {
    if (this.closed) {
      this.rejectInFlight(new AuditUnavailableError('the audit trail is closed'));
      return;
    }
    this.listener.broken(reason);
  }

  /** Archives (and then deletes) up to `maxEvents` events recorded before `before`. */
  archive(before: Date, archiveDir: string, maxEvents: number): Promise<ArchiveResult | null> {
    if (this.closed) return Promise.reject(new Error('the audit trail is closed'));
    if (this.archiveWaiter) return Promise.reject(new Error('an archive run is already in progress'));
    return new Promise((resolve, reject) => {
      this.archiveWaiter = ({ result, error }) => (error ? reject(new Error(error)) : resolve(result));
      this.flush();
      this.post({ type: 'archive', before: before.getTime(), archiveDir, maxEvents });
    });
  }

  /** Commits what is waiting, signs the tail, and stops the thread; `beforeStop` runs once the writer is done, before the thread ends. */
  close(beforeStop: () => void = () => {}): Promise<void> {
    if (this.closed) return this.closed;
    this.flush();
    clearInterval(this.watchdog);
    this.closed = new Promise<void>((resolve) => {
      this.closeWaiter = resolve;
      this.post({ type: 'close' });
    }).then(async () => {
      beforeStop();
      await this.worker?.terminate();
    });
    return this.closed;
  }
}
