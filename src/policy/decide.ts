// One decision: may this person perform `action` on `object`? Decided as Casbin decides on the same
// files (the user is `user:<name>`, each directory group a role link `user:<name> → group:<g>`, each
// label of the dataset an object link `dataset:<name> → label:<l>`), through the snapshot's index,
// and remembered for the life of the policy version.
import { lineRef, lineText } from './lines.js';
import type { Authorizer, Decision, DecideOptions, Subject } from '../identity/index.js';
import type { PolicySnapshot } from './snapshot.js';
import { hasControl, objectProblem } from './vocabulary.js';

const CACHE_LIMIT = 100_000;

export function decide(policy: PolicySnapshot, subject: Subject, object: string, action: string, options: DecideOptions = {}): Decision {
  const labels = options.labels ?? [];
  const key = `${subject.user}\u0001${subject.groups.join('\u0002')}\u0001${object}\u0001${labels.join('\u0002')}\u0001${action}`;
  const cached = policy.decisions.get(key) as Decision | undefined;
  if (cached) return cached;
  const decision = decideUncached(policy, subject, object, action, labels);
  // Identities and the explain route never carry control characters (auth's cleanGroups, the route's
  // schema); checked here too, on a miss only, so such a name can never fill an entry another key shares.
  if (hasControl(subject.user, subject.groups, labels)) return decision;
  if (policy.decisions.size >= CACHE_LIMIT) policy.decisions.clear();
  policy.decisions.set(key, decision);
  return decision;
}

/** The same decision without the cache: what the benchmark and the differential test measure. */
export function decideUncached(policy: PolicySnapshot, subject: Subject, object: string, action: string, labels: readonly string[] = []): Decision {
  const version = policy.version;
  // Object names are checked before deciding: Casbin's patterns would happily match `dataset:a/../b`.
  if (hasControl(subject.user, subject.groups, labels)) return { allowed: false, rule: null, line: null, reason: 'invalid subject: a name contains control characters', policyVersion: version };
  const bad = objectProblem(object);
  if (bad) return { allowed: false, rule: null, line: null, reason: `invalid object: ${bad}`, policyVersion: version };
  const e = policy.evaluate(subject, object, action, labels);
  const rule = e.deciding === null ? null : policy.rules[e.deciding]!;
  if (e.allowed) {
    return rule
      ? { allowed: true, rule: lineText(rule), line: lineRef(rule), reason: `allowed by ${lineRef(rule)}: ${lineText(rule)}`, policyVersion: version }
      : { allowed: true, rule: null, line: null, reason: 'allowed: no rule denies it', policyVersion: version };
  }
  return rule
    ? { allowed: false, rule: lineText(rule), line: lineRef(rule), reason: `denied by ${lineRef(rule)}: ${lineText(rule)}`, policyVersion: version }
    : { allowed: false, rule: null, line: null, reason: `no rule grants ${action} on ${object} to user:${subject.user}`, policyVersion: version };
}

/** The Authorizer port on whichever version serves at the moment of each decision. */
export function policyAuthorizer(current: () => PolicySnapshot): Authorizer {
  return { decide: (subject, object, action, options) => decide(current(), subject, object, action, options), version: () => current().version };
}
