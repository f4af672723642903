// Fail closed: once an event cannot be committed, the trail is unavailable and every record is
// refused (the caller answers 503 audit_unavailable), counted, until a probe event,
// `audit.recovered` (how long, why, how many refused), is itself committed. Probed every
// `probeMs` while down; the probe's commit is what ends the outage.
import type { AuditInput } from './event.js';

export class AuditUnavailableError extends Error {
  override readonly name = 'AuditUnavailableError';
}

export interface AvailabilityLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** An outage: since when (ms since the epoch), why, and how many records it refused. */
export interface Outage {
  since: number;
  reason: string;
  refused: number;
}

export interface AvailabilityOptions {
  /** How often a refused trail is tried again. */
  probeMs: number;
  /** The operator's log as it is now (the trail's log may be attached after open). */
  log: () => AvailabilityLog;
  /** Commits the probe event, made once the writer runs again (started anew when it died); rejects while still down. */
  recover: (probe: () => AuditInput) => Promise<void>;
}

export class Availability {
  private down: Outage | null = null;
  private probing = false;
  private probeTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: AvailabilityOptions) {}

  /** The outage going on, or null. */
  get outage(): Readonly<Outage> | null {
    return this.down;
  }

  /** Marks the trail unavailable (once per outage) and starts probing for its return. */
  fail(reason: string): void {
    if (this.down) return;
    this.down = { since: Date.now(), reason, refused: 0 };
    this.options.log().error({ reason }, 'audit trail unavailable: refusing every decision that needs it (503 audit_unavailable)');
    this.probeTimer = setInterval(() => void this.probe(), this.options.probeMs);
    this.probeTimer.unref();
  }

  /** Counts one refused record; the error its caller gets. */
  refuse(): AuditUnavailableError {
    if (!this.down) return new AuditUnavailableError('the audit trail is closed');
    this.down.refused++;
    return new AuditUnavailableError(`the audit trail is unavailable: ${this.down.reason}`);
  }

  /** No more probes (the trail is closing). */
  stop(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
  }

  /** Writes `audit.recovered`; its commit ends the outage. */
  private async probe(): Promise<void> {
    const down = this.down;
    if (!down || this.probing) return;
    this.probing = true;
    try {
      await this.options.recover(() => recoveredEvent(down, Date.now()));
      this.down = null;
      if (this.probeTimer) clearInterval(this.probeTimer);
      this.probeTimer = null;
      this.options.log().warn({ refused: down.refused }, 'audit trail available again');
    } catch {
      // still down; the next probe tries again
    } finally {
      this.probing = false;
    }
  }
}

/** The event that ends an outage: how long it lasted, why, and how many decisions it refused. */
function recoveredEvent(down: Outage, now: number): AuditInput {
  return {
    actor: { user: null, groups: [], auth_method: 'system', ip: null },
    action: 'audit.recovered',
    object: 'audit:events',
    decision: 'allow',
    reason: `the audit trail could not be written for ${Math.round((now - down.since) / 1000)} s; ${down.refused} decision(s) were refused meanwhile`,
    details: { unavailable_since: new Date(down.since).toISOString(), cause: down.reason, refused: down.refused },
  };
}
