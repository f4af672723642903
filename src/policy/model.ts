// model.conf, read by Casbin's own parser and then checked for what Gatehouse decides with: a
// request of (sub, obj, act), policy lines with sub, obj, act and an optional eft, two-place role
// definitions, one of Casbin's three allow/deny effects, and a matcher we can compile. A model
// outside that is refused by lint rather than decided differently from Casbin.
import { casbin } from './casbin.js';
import { compileMatcher, type CompiledMatcher, MatcherError } from './matcher.js';
import type { PolicyProblem } from './problems.js';

export const MODEL_FILE = 'model.conf';

/** Casbin's effect expressions (escaped), the three Gatehouse decides with. */
export const EFFECTS = {
  'some(where (p_eft == allow))': 'allow-override',
  '!some(where (p_eft == deny))': 'deny-unless-denied',
  'some(where (p_eft == allow)) && !some(where (p_eft == deny))': 'deny-override',
} as const;
export type Effect = (typeof EFFECTS)[keyof typeof EFFECTS];

export interface PolicyModel {
  /** Policy line types and their field names, e.g. p → [sub, obj, act, eft], p2 → [sub, quota, value]. */
  policyTypes: Map<string, string[]>;
  /** Role definitions: g, g2, ... (two places each). */
  roleTypes: string[];
  effect: Effect;
  matcher: CompiledMatcher;
  /** Field positions in p. */
  fields: { sub: number; obj: number; act: number; eft: number | null };
  /** The role definition the matcher applies to r.sub (directory groups join it), if any. */
  subjectRoles: string | null;
  /** The role definition the matcher applies to r.obj (dataset labels join it), if any. */
  objectRoles: string | null;
  /** The built-in function the matcher applies to r.obj and p.obj, if any (for pattern checks). */
  objectFunction: string | null;
}

const QUOTA_FIELDS = ['sub', 'quota', 'value'];

/** Parses model.conf; returns the model, or null with problems. */
export function readModel(text: string, problems: PolicyProblem[]): PolicyModel | null {
  const problem = (message: string, hint?: string, line: number | null = null) => problems.push({ severity: 'error', file: MODEL_FILE, line, message, ...(hint ? { hint } : {}) });
  const lineOf = (re: RegExp): number | null => {
    const i = text.split('\n').findIndex((l) => re.test(l));
    return i < 0 ? null : i + 1;
  };
  let model: ReturnType<typeof casbin.newModelFromString>;
  try {
    model = casbin.newModelFromString(text);
  } catch (err) {
    problem(`Casbin cannot read the model: ${(err as Error).message}`, 'sections are [request_definition], [policy_definition], [role_definition], [policy_effect], [matchers]');
    return null;
  }
  const section = (s: string) => model.model.get(s) ?? new Map();
  const r = section('r').get('r');
  if (section('r').size !== 1 || !r || r.tokens.join(',') !== 'r_sub,r_obj,r_act') {
    problem('the request definition must be exactly "r = sub, obj, act": the gateway asks who (sub) may do what (act) to which object (obj)', undefined, lineOf(/^\s*r\d*\s*=/));
    return null;
  }
  const policyTypes = new Map<string, string[]>();
  for (const [key, a] of section('p')) policyTypes.set(key as string, a.tokens.map((t: string) => t.slice(key.length + 1)));
  const p = policyTypes.get('p');
  if (!p || !['sub', 'obj', 'act'].every((f) => p.includes(f)) || p.some((f) => !['sub', 'obj', 'act', 'eft'].includes(f))) {
    problem('the policy definition must be "p = sub, obj, act, eft" (eft optional): the columns of the rule lines', undefined, lineOf(/^\s*p\s*=/));
    return null;
  }
  for (const [key, fields] of policyTypes) {
    if (key === 'p') continue;
    if (key !== 'p2' || fields.join(',') !== QUOTA_FIELDS.join(',')) {
      problem(`policy type ${key} = ${fields.join(', ')} is not one Gatehouse knows`, 'rules are p = sub, obj, act, eft; quota lines are p2 = sub, quota, value', lineOf(new RegExp(`^\\s*${key}\\s*=`)));
      return null;
    }
  }
  const roleTypes: string[] = [];
  for (const [key, a] of section('g')) {
    if (String(a.value).replace(/\s/g, '') !== '_,_') {
      problem(`role definition ${key} = ${a.value} is not supported: Gatehouse role links have two places (${key} = _, _), without domains`, undefined, lineOf(new RegExp(`^\\s*${key}\\s*=`)));
      return null;
    }
    roleTypes.push(key);
  }
  const effectText = section('e').get('e')?.value as string | undefined;
  const effect = effectText ? EFFECTS[effectText as keyof typeof EFFECTS] : undefined;
  if (!effect) {
    problem(`the policy effect "${effectText ?? ''}" is not one Gatehouse supports`, `use ${Object.keys(EFFECTS).map((e) => `"${e.replace(/p_eft/g, 'p.eft')}"`).join(' or ')}`, lineOf(/^\s*e\s*=/));
    return null;
  }
  const m = section('m').get('m');
  if (section('m').size !== 1 || !m) {
    problem('the model needs exactly one matcher, m = ...', undefined, lineOf(/^\s*\[matchers\]/));
    return null;
  }
  let matcher: CompiledMatcher;
  try {
    matcher = compileMatcher(m.value as string, { r: ['sub', 'obj', 'act'], p, roles: roleTypes });
  } catch (err) {
    if (!(err instanceof MatcherError)) throw err;
    problem(`the matcher cannot be compiled: ${err.message}`, undefined, lineOf(/^\s*m\s*=/));
    return null;
  }
  const fields = { sub: p.indexOf('sub'), obj: p.indexOf('obj'), act: p.indexOf('act'), eft: p.includes('eft') ? p.indexOf('eft') : null };
  // Which role definition the request's subject and object are asked of, wherever in the matcher:
  // the caller's directory groups join the first, a dataset's manifest labels the second.
  const subjectRoles = matcher.roleCalls.find((c) => c.from === 0)?.role ?? null;
  const objectRoles = matcher.roleCalls.find((c) => c.from === 1 && c.role !== subjectRoles)?.role ?? null;
  // The object function, for checking patterns: the one the matcher applies to (r.obj, p.obj).
  const objectFunction = matcher.fieldCalls.find((c) => c.from === 1 && c.field === fields.obj)?.fn ?? null;
  return {
    policyTypes,
    roleTypes,
    effect,
    matcher,
    fields,
    subjectRoles,
    objectRoles,
    objectFunction,
  };
}
