// What a refusal looks like wherever a decision is made (the authorization stage in stage.ts, a
// handler deciding by ownership or on the body, the job path): 403 with the rule that denied, or
// "no rule grants ...", and the policy version that decided.
import type { Decision } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';

/** The refusal every route gives: 403 forbidden, naming the rule or the missing grant. */
export function forbidden(decision: Decision): GatehouseError {
  return new GatehouseError('forbidden', decision.reason, { rule: decision.rule, line: decision.line, policy_version: decision.policyVersion });
}
