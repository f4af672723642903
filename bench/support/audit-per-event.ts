// The baseline for durable appends: the same trail file (openAuditDb: WAL, synchronous = FULL, the
// same schema and indexes) and the same TrailWriter on a thread of its own, but one transaction and
// one fsync per event, which is what a store without group commit does. The caller's side does
// what AuditTrail.record does (the secrets check, pendingRowOf) and waits for its event's commit.
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { AuditInput } from '../../src/audit/event.js';
import { redactSecrets } from '../../src/audit/secrets.js';
import type { AuditSigningKey } from '../../src/audit/signing-key.js';
import { pendingRowOf } from '../../src/audit/writer.js';

type Reply = { ready: true } | { closed: true } | { n: number; id: number } | { n: number; error: string };

export class PerEventStore {
  private next = 1;
  private waiting = new Map<number, { resolve: (id: number) => void; reject: (err: Error) => void }>();
  private closing: (() => void) | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: Reply) => {
      if ('closed' in m) this.closing?.();
      else if ('n' in m) {
        const w = this.waiting.get(m.n);
        this.waiting.delete(m.n);
        if ('error' in m) w?.reject(new Error(m.error));
        else w?.resolve(m.id);
      }
    });
  }

  static open(dir: string, key: AuditSigningKey): Promise<PerEventStore> {
    const worker = new Worker(fileURLToPath(new URL('./audit-per-event-worker.js', import.meta.url)), { workerData: { dir, keyPem: key.pem }, name: 'audit-per-event' });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', () => resolve(new PerEventStore(worker)));
    });
  }

  /** Resolves with the event's id once its own transaction is committed (fsync'd). */
  record(input: AuditInput): Promise<number> {
    input = redactSecrets(input).value;
    const n = this.next++;
    const row = pendingRowOf(input, Date.now());
    return new Promise((resolve, reject) => {
      this.waiting.set(n, { resolve, reject });
      this.worker.postMessage({ n, row });
    });
  }

  private closed: Promise<void> | null = null;

  /** Indexes the tail and closes the trail, as the trail's own close does; once, however often called. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await new Promise<void>((resolve) => {
        this.closing = resolve;
        this.worker.postMessage({ close: true });
      });
      await this.worker.terminate();
    })();
    return this.closed;
  }
}
