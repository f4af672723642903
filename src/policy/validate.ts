// Line-by-line and whole-file checks of policy.csv against the model. Casbin accepts a misspelt
// action, an unknown line type or a deny for a role nobody has, and then silently never matches
// them; a gateway must not serve such a file, so each is an error here, with the line and a hint.
import { casbin } from './casbin.js';
import { lineRef, lineText, type PolicyLine } from './lines.js';
import type { PolicyModel } from './model.js';
import type { PolicyProblem } from './problems.js';
import { MAX_HIERARCHY, type RoleGraph } from './roles.js';
import { USER_MATCH_FUNCTION, USER_PLACEHOLDER } from './user-pattern.js';
import { ACTIONS, closest, DEFAULT_SUBJECT, isDatasetName, isGroupName, isName, OBJECT_KINDS, QUOTA_LIMITS, SUBJECT_KINDS } from './vocabulary.js';

export const POLICY_FILE = 'policy.csv';

type Report = (line: number, message: string, hint?: string, severity?: 'error' | 'warning') => void;

const OTHER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REGEX_SPECIALS = /[.()[\]{}+?|^$\\]/;

function kindOf(value: string): [string, string] | null {
  const colon = value.indexOf(':');
  return colon < 0 ? null : [value.slice(0, colon), value.slice(colon + 1)];
}

function subjectProblem(value: string, kinds: readonly string[]): [string, string?] | null {
  const parts = kindOf(value);
  if (!parts) return [`subject "${value}" has no kind`, `write ${kinds.map((k) => `${k}:${value || 'name'}`).join(' or ')}`];
  const [kind, name] = parts;
  if (!kinds.includes(kind)) {
    const guess = closest(kind, kinds);
    return [`unknown subject kind "${kind}:"`, guess ? `did you mean ${guess}:${name}?` : `subjects are ${kinds.map((k) => `${k}:`).join(', ')}`];
  }
  if (kind === 'group' ? !isGroupName(name) : !isName(name)) return [`"${name}" is not a valid ${kind} name`, kind === 'group' ? 'group names are letters, digits, spaces and . _ @ & \' ( ) -' : 'names are letters, digits and . _ @ -'];
  return null;
}

/** Checks a `{user}` pattern, then the pattern with a sample name in its place. */
function placeholderProblem(value: string, model: PolicyModel): [string, string?] | null {
  const hint = `put {user} in the namespace and end it with a slash: dataset:scratch-{user}/*`;
  if (model.objectFunction !== USER_MATCH_FUNCTION) return [`"${value}" uses {user}, but the matcher does not fill it in`, `call ${USER_MATCH_FUNCTION}(r.obj, p.obj, r.sub) in model.conf where it calls keyMatch(r.obj, p.obj)`];
  if (!value.startsWith('dataset:')) return [`"${value}": {user} stands only in dataset patterns`, hint];
  const rest = value.split(USER_PLACEHOLDER);
  if (rest.length !== 2) return [`"${value}" uses {user} more than once`, hint];
  if (rest[1] !== '' && !rest[1]!.startsWith('/')) return [`"${value}": {user} must end its part of the name (be followed by / or nothing), or one person's space would hold another's (alice's "alice*" holds "alice-x")`, hint];
  const star = value.indexOf('*');
  if (star >= 0 && star < value.indexOf(USER_PLACEHOLDER)) return [`"${value}": keyMatch ignores everything after "*", so {user} after it means nothing`, hint];
  const name = value.slice('dataset:'.length).replace(USER_PLACEHOLDER, 'u0');
  if (name.split('/').length > 2) return [`"${value}" can never match: dataset names have at most one namespace (namespace/name)`, hint];
  return null;
}

/** Checks an object or object pattern of a rule line, as the model's object function reads it. */
function objectProblem(value: string, model: PolicyModel): [string, string?] | null {
  if (value.includes(USER_PLACEHOLDER)) {
    const bad = placeholderProblem(value, model);
    if (bad) return bad;
    value = value.replace(USER_PLACEHOLDER, 'u0');
  }
  if (value.includes('{') || value.includes('}')) return [`"${value}" has a brace; the only placeholder is {user}`];
  const objectFunction = model.objectFunction === USER_MATCH_FUNCTION ? 'keyMatch' : model.objectFunction;
  if (value === '*' && (objectFunction === 'keyMatch' || objectFunction === 'keyMatch2')) return null;
  const parts = kindOf(value);
  if (!parts) return [`object "${value}" has no kind`, `write e.g. dataset:${value}`];
  const [kind, name] = parts;
  if (!(OBJECT_KINDS as readonly string[]).includes(kind)) {
    const guess = closest(kind, OBJECT_KINDS);
    return [`unknown object kind "${kind}:"`, guess ? `did you mean ${guess}:${name}?` : `objects are ${OBJECT_KINDS.map((k) => `${k}:`).join(', ')}`];
  }
  const star = name.indexOf('*');
  if (star >= 0) {
    if (kind === 'label') return ['a label cannot be a pattern', 'name one label per line'];
    if (objectFunction === null) return [`"${value}" is a pattern, but the matcher compares objects exactly`, 'use keyMatch(r.obj, p.obj) in model.conf, or name the object'];
    if (objectFunction === 'keyMatch2' && (star === 0 || name[star - 1] !== '/')) return [`keyMatch2 reads "*" as "any text" only after a slash, so "${value}" is a regular expression that repeats the character before it`, `write ${kind}:${name.slice(0, star).replace(/\/?$/, '/')}* or use keyMatch in model.conf`];
    if (objectFunction === 'keyMatch' && star !== name.length - 1) return [`keyMatch ignores everything after "*", so "${value}" matches every ${kind} starting with "${name.slice(0, star)}"`, `end the pattern at the star: ${kind}:${name.slice(0, star + 1)}`];
    if (objectFunction !== 'keyMatch' && (REGEX_SPECIALS.test(name) || name.includes('**'))) return [`"${value}" has characters ${objectFunction} reads as a regular expression`, 'patterns may use letters, digits, _ - / and a final *'];
    const prefix = name.slice(0, star);
    if (prefix.includes('..') || prefix.includes('//') || !/^[A-Za-z0-9_/.-]*$/.test(prefix) || (kind === 'dataset' && /[A-Z]/.test(prefix))) return [`"${value}" is not a valid ${kind} pattern`];
  } else if (kind === 'dataset' ? !isDatasetName(name) : kind === 'label' ? !isName(name) : !OTHER_NAME.test(name)) {
    return [`"${name}" is not a valid ${kind} name`, kind === 'dataset' ? 'dataset names are lower case letters, digits, _ and -, with one optional namespace (scratch/alice)' : undefined];
  }
  if (objectFunction && objectFunction !== 'keyMatch') {
    try {
      (casbin.Util as unknown as Record<string, (...a: string[]) => unknown>)[`${objectFunction}Func`]?.('dataset:x', value);
    } catch (err) {
      return [`${objectFunction} cannot use "${value}": ${(err as Error).message}`];
    }
  }
  return null;
}

/** Checks one line; returns whether it can be loaded. */
export function checkLine(model: PolicyModel, type: string, fields: string[], line: number, report: Report): boolean {
  const def = model.policyTypes.get(type);
  const isRole = model.roleTypes.includes(type);
  if (!def && !isRole) {
    const known = [...model.policyTypes.keys(), ...model.roleTypes];
    if (type === 'p2') report(line, 'a quota line, but model.conf defines no quota lines', 'add "p2 = sub, quota, value" under [policy_definition]');
    else report(line, `unknown line type "${type}": Casbin would silently ignore this line`, closest(type, known) ? `did you mean ${closest(type, known)}? line types here: ${known.join(', ')}` : `line types here: ${known.join(', ')}`);
    return false;
  }
  const want = isRole ? 2 : def!.length;
  const names = isRole ? ['member', 'role'] : def!;
  if (fields.length !== want) {
    report(line, `a ${type} line has ${want} fields (${names.join(', ')}) after "${type}", this one has ${fields.length}`, fields.some((f) => f.includes('#')) ? 'comments go on their own line, starting with #' : undefined);
    return false;
  }
  // `{user}` is filled in only in a rule's object: anywhere else it would be a name nobody has.
  const placeholderAt = fields.findIndex((f, i) => f.includes(USER_PLACEHOLDER) && !(type === 'p' && i === model.fields.obj));
  if (placeholderAt >= 0) {
    report(line, `{user} stands only in the object of a rule (p line), not in "${fields[placeholderAt]}"`, 'write e.g. p, role:analysts, dataset:scratch-{user}/*, write, allow');
    return false;
  }
  let ok = true;
  const fail = (problem: [string, string?] | null) => {
    if (problem) {
      report(line, problem[0], problem[1]);
      ok = false;
    }
  };
  if (type === 'p') {
    const { sub, obj, act, eft } = model.fields;
    fail(subjectProblem(fields[sub]!, SUBJECT_KINDS));
    fail(objectProblem(fields[obj]!, model));
    if (!(ACTIONS as readonly string[]).includes(fields[act]!)) {
      const guess = closest(fields[act]!, ACTIONS);
      fail([`unknown action "${fields[act]}"`, guess ? `did you mean ${guess}? actions are ${ACTIONS.join(', ')}` : `actions are ${ACTIONS.join(', ')}`]);
    }
    if (eft !== null && fields[eft] !== 'allow' && fields[eft] !== 'deny') fail([`the effect must be allow or deny, not "${fields[eft]}"`, 'Casbin reads any other effect as "no decision"']);
  } else if (type === 'p2') {
    const [sub, limit, value] = fields as [string, string, string];
    if (sub !== DEFAULT_SUBJECT) fail(subjectProblem(sub, SUBJECT_KINDS));
    if (!(QUOTA_LIMITS as readonly string[]).includes(limit)) {
      const guess = closest(limit, QUOTA_LIMITS);
      fail([`unknown quota "${limit}"`, guess ? `did you mean ${guess}? quotas are ${QUOTA_LIMITS.join(', ')}` : `quotas are ${QUOTA_LIMITS.join(', ')}`]);
    }
    const integer = limit !== 'core_hours_per_day';
    if (!(integer ? /^\d+$/ : /^\d+(\.\d+)?$/).test(value)) fail([`the quota value "${value}" is not a ${integer ? 'whole ' : ''}number`, integer ? 'write a whole number, e.g. 8' : 'write a number, e.g. 24 or 0.5']);
  } else if (type === model.objectRoles) {
    const [member, label] = fields as [string, string];
    const m = kindOf(member);
    if (!m || m[0] !== 'dataset' || !isDatasetName(m[1])) fail([`"${member}" is not a dataset`, `${type} lines label one dataset: ${type}, dataset:customers, label:pii (patterns do not apply here)`]);
    const l = kindOf(label);
    if (!l || l[0] !== 'label' || !isName(l[1])) fail([`"${label}" is not a label`, `write label:${label.replace(/^[^:]*:/, '') || 'pii'}`]);
  } else if (isRole) {
    const [member, role] = fields as [string, string];
    fail(subjectProblem(member, SUBJECT_KINDS));
    const r = kindOf(role);
    if (r?.[0] === 'user') fail([`"${role}" is a user, and a user cannot be a role`, `the member comes first: ${type}, ${role}, ${member}`]);
    else fail(subjectProblem(role, ['group', 'role']));
  }
  return ok;
}

/** Checks that need every line: reachability, duplicates, conflicting quotas, chain lengths. */
export async function checkWhole(model: PolicyModel, lines: readonly PolicyLine[], graphs: ReadonlyMap<string, RoleGraph>, problems: PolicyProblem[], slices: { chunk?: number; pause?: () => Promise<void> } = {}): Promise<void> {
  const at = (l: PolicyLine, severity: 'error' | 'warning', message: string, hint?: string) => problems.push({ severity, file: l.file, line: l.line, message, ...(hint ? { hint } : {}) });
  const subjects = model.subjectRoles ? graphs.get(model.subjectRoles) : undefined;

  // Who can be reached: people and directory groups come with the identity; roles only by links.
  const reachable = new Set<string>();
  if (subjects) {
    const queue = [...subjects.names()].filter((n) => n.startsWith('user:') || n.startsWith('group:'));
    for (const n of queue) reachable.add(n);
    for (let i = 0; i < queue.length; i++) {
      for (const to of subjects.direct(queue[i]!)) {
        if (!reachable.has(to)) {
          reachable.add(to);
          queue.push(to);
        }
      }
    }
    // Casbin stops at 10 links; from the user, a group is already one.
    for (const n of subjects.names()) {
      if (!n.startsWith('group:')) continue;
      const far = [...subjects.closure(n)].find(([, d]) => d === MAX_HIERARCHY);
      if (far) problems.push({ severity: 'warning', file: POLICY_FILE, line: null, message: `the role chain from ${n} to ${far[0]} is ${MAX_HIERARCHY} links long; Casbin follows at most ${MAX_HIERARCHY} links from the user, so roles beyond it do not apply`, hint: 'shorten the chain' });
    }
  }
  const canReach = (sub: string) => sub.startsWith('user:') || sub.startsWith('group:') || reachable.has(sub);

  const seen = new Map<string, PolicyLine>();
  const quotas = new Map<string, PolicyLine>();
  for (const l of lines) {
    if (slices.pause && l.id > 0 && l.id % (slices.chunk ?? 10_000) === 0) await slices.pause();
    const key = lineText(l);
    const first = seen.get(key);
    if (first) at(l, 'warning', `the same line as ${lineRef(first)}`, 'remove one of them');
    else seen.set(key, l);
    if (l.type === 'p') {
      const sub = l.fields[model.fields.sub]!;
      const deny = model.fields.eft !== null && l.fields[model.fields.eft] === 'deny';
      if (!canReach(sub)) {
        const hint = `link a directory group to it (g, group:<name>, ${sub}) or remove the rule`;
        if (deny) at(l, 'error', `a deny nobody can reach: no user or group is linked to ${sub}, so this deny never applies`, hint);
        else at(l, 'warning', `nobody can reach ${sub}: no user or group is linked to it, so this rule grants nothing`, hint);
      }
    } else if (l.type === 'p2') {
      const [sub, limit, value] = l.fields as [string, string, string];
      const other = quotas.get(`${sub}\0${limit}`);
      if (other && other.fields[2] !== value) at(l, 'error', `${sub} has two values for ${limit}: ${other.fields[2]} at ${lineRef(other)} and ${value} here`, 'keep one');
      else if (!other) quotas.set(`${sub}\0${limit}`, l);
      if (sub !== 'default' && !canReach(sub)) at(l, 'warning', `nobody can reach ${sub}: this quota applies to no one`, `link a directory group to it (g, group:<name>, ${sub})`);
    }
  }
  if (model.policyTypes.has('p2')) {
    for (const limit of QUOTA_LIMITS) {
      if (!quotas.has(`default\0${limit}`)) problems.push({ severity: 'warning', file: POLICY_FILE, line: null, message: `no default for ${limit}: people without a ${limit} line get Gatehouse's built-in value`, hint: `add "p2, default, ${limit}, <value>"` });
    }
  }
}
