// How an authorization decision is recorded, wherever it is made: by the authorization stage before
// a handler (src/policy/stage.ts), by a handler that decides by ownership or per item (certificate
// revocation, the dataset listing, the policy explainer) and by the job path (a job's datasets at
// submit and again as it leaves the queue). One shape for all of them: the decision, the reason, the
// policy version that decided, and in details the action asked for and the rule's line.
import type { Decision } from '../identity/index.js';
import type { AuditInput, AuditRecorder } from './event.js';
import { actorOf, recordOrFail } from './record.js';

/** Where a decision was asked: a request (its address, id and log), or null for none (a job leaving the queue, on its owner's behalf). */
export interface DecisionOrigin {
  ip: string | null;
  id: string | null;
  log?: { error(o: object, m: string): void };
}

/** Who asked: a person (an Identity, or a job's owner as recorded). */
export interface DecisionActor {
  user: string;
  groups: readonly string[];
  auth_method: string;
}

/**
 * What was decided. A policy Decision fits as it is; a decision by ownership has no policy version
 * or rule (`{ allowed: true, reason: 'owner', policyVersion: null }`).
 */
export type RecordedDecision = Pick<Decision, 'allowed' | 'reason'> & { policyVersion: string | null; line?: string | null };

export interface DecisionEntry {
  /** The audit action: dataset.authorize, audit.query, cert.revoke, ... */
  action: AuditInput['action'];
  /** The policy object decided on: dataset:customers, audit:events, cert:<serial>. */
  object: string;
  /** The policy action asked for (read, write, admin, overwrite), recorded as details.requested. */
  requested?: string;
  decision: RecordedDecision;
  /** More details: the job, the filter, the owner. */
  details?: Record<string, unknown>;
}

/**
 * Records one decision, allow or deny, before anything acts on it; fails closed (503
 * audit_unavailable) when the trail cannot take it. The event's details carry `requested` and, when
 * a rule decided, `rule_line` (policy.csv:12), then the entry's own details.
 */
export function recordDecision(audit: AuditRecorder, origin: DecisionOrigin | null, actor: DecisionActor, entry: DecisionEntry): Promise<void> {
  const { decision } = entry;
  return recordOrFail(
    audit,
    {
      actor: actorOf(actor, origin?.ip ?? null),
      action: entry.action,
      object: entry.object,
      decision: decision.allowed ? 'allow' : 'deny',
      reason: decision.reason,
      policy_version: decision.policyVersion,
      request_id: origin?.id ?? null,
      details: { ...(entry.requested === undefined ? {} : { requested: entry.requested }), ...(decision.line ? { rule_line: decision.line } : {}), ...entry.details },
    },
    origin?.log,
  );
}
