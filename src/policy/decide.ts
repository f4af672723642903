// One decision: may this person perform `action` on `object`? The user and each of their groups are
// asked of Casbin as subjects (groups are role links in the files); an explicit deny for any of them
// wins, as the model says. The governance issue deepens this (explain chains, quotas); the face stays.
import type { PolicySnapshot } from './load.js';

export interface Subject {
  user: string;
  groups: string[];
}

export interface Decision {
  allowed: boolean;
  /** The policy line that decided, or null when no rule grants the action. */
  rule: string | null;
  reason: string;
  policyVersion: string;
}

export async function decide(policy: PolicySnapshot, subject: Subject, object: string, action: string): Promise<Decision> {
  const subjects = [`user:${subject.user}`, ...subject.groups.map((g) => `group:${g}`)];
  let allow: string[] | undefined;
  for (const sub of subjects) {
    const [allowed, rule] = await policy.enforcer.enforceEx(sub, object, action);
    if (rule.length > 0 && rule[rule.length - 1] === 'deny') {
      return { allowed: false, rule: `p, ${rule.join(', ')}`, reason: `denied by p, ${rule.join(', ')} (via ${sub})`, policyVersion: policy.version };
    }
    if (allowed && !allow) allow = [...rule, sub];
  }
  if (allow) {
    const via = allow.pop();
    return { allowed: true, rule: `p, ${allow.join(', ')}`, reason: `allowed by p, ${allow.join(', ')} (via ${via})`, policyVersion: policy.version };
  }
  return { allowed: false, rule: null, reason: `no rule grants ${action} on ${object} to user:${subject.user}`, policyVersion: policy.version };
}
