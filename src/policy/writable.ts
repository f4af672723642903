// Where a person may write datasets, for people to read (`gatehouse datasets`, GET /v1/datasets):
// the dataset patterns of the allow-write rules that reach them through their roles, `{user}` filled
// in with their name. A hint, not a decision: each write is still decided on its name and labels,
// and a pattern a deny closes for a sample name in it is left out.
import type { Subject } from '../identity/index.js';
import type { PolicySnapshot } from './snapshot.js';
import { expandUserPattern } from './user-pattern.js';

export function writablePatterns(policy: PolicySnapshot, subject: Subject): string[] {
  const { sub, obj, act, eft } = policy.model.fields;
  const mine = policy.subjectClosure(subject);
  const out = new Set<string>();
  for (const rule of policy.rules) {
    const f = rule.fields;
    if (f[act] !== 'write' || (eft !== null && f[eft] !== 'allow') || !mine.has(f[sub] ?? '')) continue;
    const object = f[obj] ?? '';
    if (!object.startsWith('dataset:')) continue;
    const pattern = expandUserPattern(object, `user:${subject.user}`);
    if (pattern === null) continue;
    // A sample name inside the pattern must be writable as it stands (no deny closes the pattern).
    const sample = pattern.replace(/\*/g, 'example');
    if (!policy.evaluate(subject, sample, 'write', []).allowed) continue;
    out.add(pattern.slice('dataset:'.length));
  }
  return [...out].sort();
}
