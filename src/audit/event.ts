// The audit event of DESIGN.md, as the rooms hand it over. The trail (hash chain, durability,
// query) is the audit issue; until then `record` is the one door every event goes through.

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

export interface AuditEvent extends Required<AuditInput> {
  id: string;
  time: string;
}

export interface AuditRecorder {
  /** Resolves once the event is recorded; a rejection means the decision must not be answered. */
  record(event: AuditInput): Promise<AuditEvent>;
}
