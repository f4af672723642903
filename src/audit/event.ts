// The audit event of the public contract, as the rooms hand it over (AuditInput) and as the trail keeps it
// (AuditEvent: numbered, timed and chained).

export type AuditDecision = 'allow' | 'deny' | 'error';

export interface AuditActor {
  user: string | null;
  groups: string[];
  auth_method: string | null;
  ip: string | null;
}

export interface AuditInput {
  actor: AuditActor;
  /** A dotted name: auth.login, auth.login_failed, token.refresh, cert.issue, ... */
  action: string;
  object: string;
  decision: AuditDecision;
  reason: string;
  policy_version?: string | null;
  request_id?: string | null;
  /** Never a secret: no passwords, tokens, keys or cookies, not even hashed. */
  details?: Record<string, unknown>;
}

export interface AuditEvent {
  /** The event's position in the chain: 1, 2, 3, ... never reused, also after retention. */
  id: number;
  /** When the decision was made (ISO 8601, UTC, milliseconds). */
  time: string;
  actor: AuditActor;
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
