// Stage 2 of the pipeline for a route: decide on the serving policy version, record the decision,
// and only then answer. A refusal is 403 with the rule that denied, or "no rule grants ...".
import type { FastifyRequest } from 'fastify';
import { actorOf, type AuditAction, type AuditRecorder, recordOrFail } from '../audit/index.js';
import type { Decision, DecideOptions, Identity } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';
import { decide } from './decide.js';
import type { PolicySnapshot } from './snapshot.js';

export interface AuthorizeContext {
  policy: () => PolicySnapshot;
  audit: AuditRecorder;
}

/** The refusal every route gives: 403 forbidden, naming the rule or the missing grant. */
export function forbidden(decision: Decision): GatehouseError {
  return new GatehouseError('forbidden', decision.reason, { rule: decision.rule, line: decision.line, policy_version: decision.policyVersion });
}

/**
 * Decides `action` on `object` for the caller and audits it as `auditAction`. Resolves with the
 * decision when allowed; throws 403 when not (after the denial is recorded) and 503 when the trail
 * cannot take the event.
 */
export async function authorize(ctx: AuthorizeContext, request: FastifyRequest, identity: Identity, object: string, action: string, auditAction: AuditAction, options: DecideOptions & { details?: Record<string, unknown> } = {}): Promise<Decision> {
  const decision = decide(ctx.policy(), identity, object, action, options);
  await recordOrFail(
    ctx.audit,
    {
      actor: actorOf(identity, request.ip),
      action: auditAction,
      object,
      decision: decision.allowed ? 'allow' : 'deny',
      reason: decision.reason,
      policy_version: decision.policyVersion,
      request_id: request.id,
      details: { requested: action, ...(decision.line ? { rule_line: decision.line } : {}), ...options.details },
    },
    request.log,
  );
  if (!decision.allowed) throw forbidden(decision);
  return decision;
}
