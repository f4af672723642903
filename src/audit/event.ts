// The audit event of the public contract, as the trail keeps it (AuditEvent: numbered, timed and
// chained). What the rooms hand over (AuditInput) is the schema's type, in input.ts.
import type { AuditActor, AuditDecision, AuditInput } from './input.js';

export type { AuditActor, AuditDecision, AuditInput } from './input.js';

export interface AuditEvent {
  /** The event's position in the chain: 1, 2, 3, ... never reused, also after retention. */
  id: number;
  /** When the decision was made (ISO 8601, UTC, milliseconds). */
  time: string;
  actor: AuditActor;
  /** One of AUDIT_ACTIONS when this version recorded it; a trail may hold names older versions used. */
  action: string;
  object: string;
  decision: AuditDecision;
  reason: string;
  policy_version: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
  /** The previous event's hash (64 zeros before the first event). */
  prev_hash: string;
  /** SHA-256 (hex) of the RFC 8785 canonical JSON of this event without `hash`. */
  hash: string;
}

export interface AuditRecorder {
  /** Resolves once the event is durable (fsync'd); a rejection means the decision must not be answered. */
  record(event: AuditInput): Promise<AuditEvent>;
  /** False while the trail refuses events: nothing the gateway decides by itself should be decided then. */
  available?(): boolean;
}
