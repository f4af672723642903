// `{user}` in a rule's object pattern: `p, role:analysts, dataset:scratch-{user}/*, write, allow`
// grants each person their own namespace without a line per person. The model's matcher calls
// userKeyMatch(r.obj, p.obj, r.sub): Casbin's keyMatch after `{user}` is replaced by the name after
// `user:` in r.sub. The name is used literally or not at all: a name that holds anything a pattern
// or a path could read (`*`, `/`, `{`, `..`, spaces, ...) makes every `{user}` line fail to match,
// so no name can widen a grant. Stock Casbin decides the same files when this same function is
// registered with enforcer.addFunction('userKeyMatch', userKeyMatch).
import { casbin } from './casbin.js';

export const USER_PLACEHOLDER = '{user}';
export const USER_MATCH_FUNCTION = 'userKeyMatch';

/** The names a `{user}` may stand for: a user name as lint knows it, nothing a pattern reads. */
const SAFE_USER = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,255}$/;

/** The user name in `user:<name>` when it can stand in for `{user}`, else null. */
export function placeholderUser(sub: unknown): string | null {
  const s = String(sub ?? '');
  if (!s.startsWith('user:')) return null;
  const name = s.slice('user:'.length);
  return SAFE_USER.test(name) && !name.includes('..') ? name : null;
}

/** The pattern with `{user}` replaced by the request's user name; null when the name cannot stand in. */
export function expandUserPattern(pattern: string, sub: unknown): string | null {
  if (!pattern.includes(USER_PLACEHOLDER)) return pattern;
  const name = placeholderUser(sub);
  return name === null ? null : pattern.split(USER_PLACEHOLDER).join(name);
}

/** keyMatch(obj, pattern) with `{user}` in the pattern standing for r.sub's user name. */
export function userKeyMatch(...args: unknown[]): boolean {
  const [obj, pattern, sub] = args;
  const key = String(obj || '');
  const p = String(pattern || '');
  // The pattern itself, as `policy diff` asks about it: no request names an object with a brace.
  if (key === p) return true;
  const expanded = expandUserPattern(p, sub);
  return expanded !== null && (casbin.Util.keyMatchFunc(key, expanded) as boolean);
}
