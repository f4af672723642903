// Events about something that already happened (a job seen starting, a job ended): when the trail
// cannot take one, it is not lost but kept in memory, stamped with the time it was seen, and
// recorded in order once the trail is back. Beyond a bound the oldest news is the operator's log.
// Decisions never go through here: a decision the trail cannot record is refused (recordOrFail).
import type { AuditInput, AuditRecorder } from './event.js';

export interface OutboxLog {
  error(o: object, m: string): void;
}

export interface OutboxOptions {
  /** Events kept while the trail is down; beyond this many, new ones are logged and dropped. */
  max?: number;
  /** Between attempts to record what is kept. */
  retryMs?: number;
}

const MAX_KEPT = 10_000;
const RETRY_MS = 1000;

export class AuditOutbox {
  private readonly kept: AuditInput[] = [];
  private timer: NodeJS.Timeout | null = null;
  private draining = false;

  constructor(
    private readonly audit: AuditRecorder,
    private readonly log: OutboxLog,
    private readonly o: OutboxOptions = {},
  ) {}

  /** Events waiting for the trail. */
  get waiting(): number {
    return this.kept.length;
  }

  /**
   * Records the event now, or keeps it (with `details.observed_at`) to record once the trail is back.
   * Never rejects; true when it is durable now, false when it was kept (in memory only).
   */
  async record(input: AuditInput): Promise<boolean> {
    try {
      await this.audit.record(input);
      return true;
    } catch (err) {
      this.log.error({ object: input.object, action: input.action, err: (err as Error).message }, 'audit event not recorded yet; kept to retry');
      this.keep({ ...input, details: { ...input.details, observed_at: new Date().toISOString() } });
      return false;
    }
  }

  /** Stops retrying; what is still kept is logged as lost. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const e of this.kept.splice(0)) this.log.error({ object: e.object, action: e.action }, 'audit event dropped: the gateway stopped before the trail took it');
  }

  private keep(input: AuditInput): void {
    if (this.kept.length >= (this.o.max ?? MAX_KEPT)) {
      this.log.error({ object: input.object, action: input.action }, 'audit event dropped: too many waiting for the trail');
      return;
    }
    this.kept.push(input);
    this.timer ??= setInterval(() => void this.drain(), this.o.retryMs ?? RETRY_MS);
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    if (this.draining) return; // one drain at a time: a slow one must not record an event twice
    this.draining = true;
    try {
      while (this.kept.length > 0) {
        const next = this.kept[0]!;
        try {
          await this.audit.record(next);
        } catch (err) {
          if (this.audit.available?.() !== false) {
            // The trail is up and still refuses it: a malformed event, which would block all behind it.
            this.log.error({ object: next.object, action: next.action, err: (err as Error).message }, 'audit event dropped: the trail refuses it');
            this.kept.shift();
            continue;
          }
          return; // still down: the next tick tries again, in the same order
        }
        this.kept.shift();
      }
    } finally {
      this.draining = false;
    }
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
