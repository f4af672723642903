// Why a decision came out as it did: the rule that decided, every rule that matched (an allow that
// a deny overrode is shown, not hidden), the chain of links from the user to each rule's subject
// and from the object to a label, and the quota that applies to the user.
import type { Decision, Subject } from '../identity/index.js';
import { decideUncached } from './decide.js';
import { lineRef, lineText } from './lines.js';
import { limitsOf, type Limits, type ResolvedQuota } from './quotas.js';
import type { PolicySnapshot } from './snapshot.js';
import { expandUserPattern, USER_PLACEHOLDER } from './user-pattern.js';

export interface MatchedRule {
  line: string;
  rule: string;
  effect: 'allow' | 'deny' | 'none';
  /** From the user to the rule's subject: `user:alice → group:data-science → role:analysts`. */
  subject_chain: string[];
  /** From the object to the rule's object: `dataset:customers → label:pii`, or the pattern that matched. */
  object_chain: string[];
}

export interface Explanation {
  user: string;
  groups: string[];
  object: string;
  action: string;
  labels: string[];
  decision: Decision;
  /** The rule that decided, first of `matched` to look at; null when none did. */
  deciding: MatchedRule | null;
  matched: MatchedRule[];
  /** One sentence: what was decided and how the effect combined the matches. */
  summary: string;
  quota: { limits: Limits; detail: ResolvedQuota };
}

export function resolveQuota(policy: PolicySnapshot, subject: Subject): { readonly limits: Readonly<Limits>; readonly detail: Readonly<ResolvedQuota> } {
  // Asked by every admission (and every job leaving a queue): the same for a user and groups until the
  // policy changes, so made once per version (the snapshot keeps it; a reload starts afresh).
  return policy.perSubject(subject, () => resolveQuotaOnce(policy, subject));
}

function resolveQuotaOnce(policy: PolicySnapshot, subject: Subject): { limits: Limits; detail: ResolvedQuota } {
  const user = `user:${subject.user}`;
  const closure = policy.subjectClosure(subject);
  const graph = policy.model.subjectRoles ? policy.graphs.get(policy.model.subjectRoles) : undefined;
  const extra = subject.groups.map((g) => `group:${g}`);
  const detail = policy.quotas.resolve(user, closure, (to) => graph?.chain(user, to, extra) ?? [user, to]);
  return { limits: limitsOf(detail), detail };
}

export function explain(policy: PolicySnapshot, subject: Subject, object: string, action: string, labels: readonly string[] = []): Explanation {
  const decision = decideUncached(policy, subject, object, action, labels);
  const base = { user: subject.user, groups: [...subject.groups], object, action, labels: [...labels], decision, quota: resolveQuota(policy, subject) };
  if (decision.reason.startsWith('invalid ')) return { ...base, deciding: null, matched: [], summary: decision.reason };

  const e = policy.evaluate(subject, object, action, labels, true);
  const user = `user:${subject.user}`;
  const { model } = policy;
  const subjects = model.subjectRoles ? policy.graphs.get(model.subjectRoles) : undefined;
  const objects = model.objectRoles ? policy.graphs.get(model.objectRoles) : undefined;
  const groups = subject.groups.map((g) => `group:${g}`);
  const labelNames = labels.map((l) => `label:${l}`);
  const describe = (id: number, effect: MatchedRule['effect']): MatchedRule => {
    const rule = policy.rules[id]!;
    const sub = rule.fields[model.fields.sub]!;
    const obj = rule.fields[model.fields.obj]!;
    return {
      line: lineRef(rule),
      rule: lineText(rule),
      effect,
      subject_chain: subjects?.chain(user, sub, groups) ?? [user, sub],
      object_chain: (objects && obj !== object && objects.chain(object, obj, labelNames)) || (obj === object ? [object] : [object, `matches ${obj}${obj.includes(USER_PLACEHOLDER) ? ` (as ${expandUserPattern(obj, user) ?? 'nothing: the user name cannot fill {user}'})` : ''}`]),
    };
  };
  const matched = (e.matched ?? []).map((m) => describe(m.id, m.effect));
  const deciding = e.deciding === null ? null : (matched.find((m) => m.line === lineRef(policy.rules[e.deciding!]!)) ?? null);
  const allows = matched.filter((m) => m.effect === 'allow').length;
  const denies = matched.filter((m) => m.effect === 'deny').length;
  let summary: string;
  if (decision.allowed) summary = deciding ? `allowed: ${deciding.line} grants it${allows > 1 ? ` (and ${allows - 1} more allow)` : ''}, and no deny applies` : 'allowed: the effect allows what no rule denies';
  else if (denies > 0) summary = `denied: ${deciding!.line} denies it${allows > 0 ? `, overriding ${allows} allow${allows > 1 ? 's' : ''} (a deny beats any allow)` : ''}`;
  else summary = `denied: ${decision.reason}`;
  return { ...base, deciding, matched, summary };
}
