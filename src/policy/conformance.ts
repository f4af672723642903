// Lint's last look at a model: it must decide as stock Casbin decides with the canonical matcher
// (subject by role, object by the model's own object function or label, action by equality) and
// the same effect. Two request sets are decided both ways, ours through src/policy and stock
// Casbin's Enforcer with the reference model: a built-in set of lines that exercises roles, chains,
// labels, patterns, denies, `{user}` and strangers (checked once per model text), and a sample of
// the policy being loaded. Before either, a request no line mentions must be denied, with an
// empty policy and with this one. Any difference refuses the model, naming the request.
import { setImmediate as pause } from 'node:timers/promises';
import { casbin, type Enforcer } from './casbin.js';
import type { PolicyLine } from './lines.js';
import type { Node } from './matcher.js';
import { EFFECTS, type PolicyModel } from './model.js';
import type { PolicySnapshot } from './snapshot.js';
import { USER_MATCH_FUNCTION, USER_PLACEHOLDER, userKeyMatch } from './user-pattern.js';
import { objectProblem } from './vocabulary.js';

export interface Person {
  user: string;
  groups: string[];
}

export interface Probe {
  person: Person;
  object: string;
  labels: string[];
  action: string;
}

/** Builds our snapshot of `policyText` with the model being checked (no conformance, no tests). */
export type Build = (policyText: string) => Promise<{ snapshot?: PolicySnapshot; problems: { message: string; line: number | null }[] }>;

const ACTIONS = ['read', 'write', 'admin'];
/** A policy of at most this many lines is compared whole; a larger one by a sample. */
const WHOLE_POLICY_LINES = 300;
/** Directory groups a whole policy's sample takes a member of. */
const WHOLE_POLICY_PEOPLE = 12;
/** Rules of a larger policy that can apply to the sampled people, and others, that the sample keeps. */
const SAMPLE_RULES = 120;
const SAMPLE_OTHER_RULES = 30;
const SAMPLE_PEOPLE = 6;
const SAMPLE_OBJECTS = 10;

/** The canonical model for this one: same definitions and effect, the matcher Gatehouse means. */
export function referenceModel(model: PolicyModel): string {
  const p = model.policyTypes.get('p')!;
  const sub = model.subjectRoles ? `${model.subjectRoles}(r.sub, p.sub)` : 'r.sub == p.sub';
  const fn = model.objectFunction;
  const base = fn === null ? 'r.obj == p.obj' : fn === USER_MATCH_FUNCTION ? `${fn}(r.obj, p.obj, r.sub)` : `${fn}(r.obj, p.obj)`;
  const obj = model.objectRoles ? `(${base} || ${model.objectRoles}(r.obj, p.obj))` : base;
  const effect = Object.entries(EFFECTS).find(([, e]) => e === model.effect)![0].replace(/p_eft/g, 'p.eft');
  return [
    '[request_definition]',
    'r = sub, obj, act',
    '[policy_definition]',
    `p = ${p.join(', ')}`,
    ...(model.policyTypes.has('p2') ? ['p2 = sub, quota, value'] : []),
    ...(model.roleTypes.length ? ['[role_definition]', ...model.roleTypes.map((g) => `${g} = _, _`)] : []),
    '[policy_effect]',
    `e = ${effect}`,
    '[matchers]',
    `m = ${sub} && ${obj} && r.act == p.act`,
    '',
  ].join('\n');
}

/** Stock Casbin on the reference model, with the request-time links (groups, manifest labels) added up front. */
export async function stockEnforcer(model: PolicyModel, policyText: string, probes: readonly Probe[]): Promise<Enforcer> {
  const enforcer = await casbin.newEnforcer(casbin.newModelFromString(referenceModel(model)), new casbin.StringAdapter(policyText));
  await enforcer.addFunction(USER_MATCH_FUNCTION, userKeyMatch);
  const links = new Set<string>();
  for (const { person, object, labels } of probes) {
    if (model.subjectRoles) for (const g of person.groups) links.add(`${model.subjectRoles}\0user:${person.user}\0group:${g}`);
    if (model.objectRoles) for (const l of labels) links.add(`${model.objectRoles}\0${object}\0label:${l}`);
  }
  for (const link of links) {
    const [type, from, to] = link.split('\0') as [string, string, string];
    await enforcer.addNamedGroupingPolicy(type, from, to);
  }
  return enforcer;
}

function rulesOf(model: PolicyModel, lines: string[]): string {
  const eft = model.fields.eft !== null;
  const out: string[] = [];
  for (const l of lines) {
    const [type, ...fields] = l.split(',').map((f) => f.trim()) as [string, ...string[]];
    if (type === 'p') {
      const [sub, obj, act, effect] = fields as [string, string, string, string];
      if (!eft && effect === 'deny') continue;
      const row: string[] = [];
      const def = model.policyTypes.get('p')!;
      for (const f of def) row.push(f === 'sub' ? sub : f === 'obj' ? obj : f === 'act' ? act : effect);
      out.push(`p, ${row.join(', ')}`);
    } else if (type === 'g') {
      if (model.subjectRoles) out.push(`${model.subjectRoles}, ${fields.join(', ')}`);
    } else if (type === 'g2') {
      if (model.objectRoles) out.push(`${model.objectRoles}, ${fields.join(', ')}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The built-in set: lines in this model's vocabulary, and every person × object × action. */
export function corpus(model: PolicyModel): { policy: string; probes: Probe[] } {
  const patterns = model.objectFunction !== null;
  const labels = model.objectRoles !== null;
  const own = model.objectFunction === USER_MATCH_FUNCTION;
  const all = [
    'g, group:staff, role:staff',
    'g, group:leads, role:leads',
    'g, role:leads, role:staff',
    'g, user:zed, role:leads',
    ...(labels ? ['g2, dataset:secret, label:restricted'] : []),
    'p, role:staff, dataset:shared, read, allow',
    'p, role:leads, dataset:shared, write, allow',
    'p, role:staff, dataset:shared, admin, allow',
    'p, role:leads, dataset:shared, admin, deny',
    'p, role:leads, dataset:secret, read, allow',
    'p, user:solo, dataset:solo, admin, allow',
    'p, user:solo, dataset:shared, read, deny',
    'p, group:outside, audit:events, read, allow',
    ...(patterns ? ['p, role:staff, dataset:team/*, write, allow', 'p, role:leads, dataset:team/locked, write, deny'] : []),
    ...(labels ? ['p, role:staff, label:restricted, read, deny', 'p, group:outside, label:open, read, allow'] : []),
    ...(own ? [`p, role:staff, dataset:ws-${USER_PLACEHOLDER}/*, write, allow`, `p, role:staff, dataset:own-${USER_PLACEHOLDER}, read, allow`] : []),
  ];
  // Without role links the matcher compares subjects exactly: only a person's own lines apply.
  const lines = model.subjectRoles ? all : all.filter((l) => l.startsWith('p, user:'));
  const people: Person[] = [
    { user: 'ann', groups: ['staff'] },
    { user: 'lee', groups: ['leads'] },
    { user: 'zed', groups: [] },
    { user: 'solo', groups: [] },
    { user: 'out', groups: ['outside'] },
    { user: 'both', groups: ['staff', 'outside'] },
    { user: 'stranger', groups: [] },
    { user: 'strange-group', groups: ['nobody-has-this'] },
    // Names that must never widen a {user} pattern.
    { user: 'a*', groups: ['staff'] },
    { user: '../lee', groups: ['staff'] },
    { user: USER_PLACEHOLDER, groups: ['staff'] },
  ];
  const objects: [string, string[]][] = [
    ['dataset:shared', []],
    ['dataset:secret', []],
    ['dataset:solo', []],
    ['dataset:other', []],
    ['dataset:tagged', labels ? ['restricted'] : []],
    ['dataset:opened', labels ? ['open'] : []],
    ['audit:events', []],
    ['dataset:team', []],
    ['dataset:team/x', []],
    ['dataset:team/locked', []],
    ['dataset:teamx', []],
    ['dataset:ws-ann/x', []],
    ['dataset:ws-lee/x', []],
    ['dataset:ws-ann', []],
    ['dataset:own-ann', []],
    ['dataset:own-lee', []],
  ];
  const probes: Probe[] = [];
  for (const person of people) for (const [object, l] of objects) for (const action of ACTIONS) probes.push({ person, object, labels: l, action });
  return { policy: rulesOf(model, lines), probes };
}

/**
 * A sample of the policy being loaded: a few people (members of its groups, its named users, a
 * stranger), the rules that can apply to them (capped) with a few that cannot, the role links out of
 * their closures, the label links of the objects asked about, and every person × object × action.
 * A small policy is taken whole. Stock Casbin scans every line per decision: the sample stays small.
 */
export function sample(snapshot: PolicySnapshot, policyText: string): { policy: string; probes: Probe[]; whole: boolean } {
  const { model } = snapshot;
  const raw = policyText.split('\n');
  const spread = <T>(xs: readonly T[], n: number): T[] => (xs.length <= n ? [...xs] : Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]!));
  const subjects = model.subjectRoles ? [...snapshot.graphs.get(model.subjectRoles)!.names()] : [];
  const ruleSubjects = snapshot.rules.map((r) => r.fields[model.fields.sub]!);
  const names = [...new Set([...subjects, ...ruleSubjects])].sort();
  let stranger = 'gatehouse-probe';
  for (let i = 0; policyText.includes(stranger); i++) stranger = `gatehouse-probe-${i}`;
  const whole = snapshot.lines.length <= WHOLE_POLICY_LINES;
  const people: Person[] = [
    ...spread(names.filter((n) => n.startsWith('group:')), whole ? WHOLE_POLICY_PEOPLE : SAMPLE_PEOPLE - 3).map((g, i) => ({ user: `${stranger}-member-${i}`, groups: [g.slice('group:'.length)] })),
    ...spread(names.filter((n) => n.startsWith('user:')), whole ? 4 : 2).map((u) => ({ user: u.slice('user:'.length), groups: [] })),
    { user: stranger, groups: [] },
  ];
  const reach = new Set<string>();
  for (const person of people) for (const name of snapshot.subjectClosure(person).keys()) reach.add(name);
  const denies = (l: PolicyLine) => model.fields.eft !== null && l.fields[model.fields.eft] === 'deny';
  const rules = whole
    ? snapshot.rules
    : [...spread(snapshot.rules.filter((r) => reach.has(r.fields[model.fields.sub]!)), SAMPLE_RULES), ...spread(snapshot.rules.filter((r) => !reach.has(r.fields[model.fields.sub]!) && !denies(r)), SAMPLE_OTHER_RULES)];

  const objects = new Set<string>();
  for (const r of rules) {
    let o = r.fields[model.fields.obj]!;
    if (o.startsWith('label:')) continue;
    if (o.includes(USER_PLACEHOLDER)) o = o.replace(USER_PLACEHOLDER, people[0]!.user);
    if (o === '*') o = `dataset:${stranger}`;
    o = o.replace(/\*$/, 'x').replace(/\/$/, '');
    if (objectProblem(o) === null) objects.add(o);
  }
  const labelled = model.objectRoles ? snapshot.lines.filter((l) => l.type === model.objectRoles) : [];
  const objectList = [...spread([...objects].sort(), whole ? 2 * SAMPLE_OBJECTS : SAMPLE_OBJECTS), ...spread([...new Set(labelled.map((l) => l.fields[0]!))].sort(), 2), `dataset:${stranger}`];
  const asked = new Set(objectList);
  const kept = whole
    ? snapshot.lines
    : [
        ...snapshot.lines.filter((l) => (l.type === model.subjectRoles && reach.has(l.fields[0]!)) || (l.type === model.objectRoles && asked.has(l.fields[0]!))),
        ...[...rules].sort((x, y) => x.id - y.id),
      ];
  const policy = `${kept.map((l) => raw[l.line - 1]!).join('\n')}\n`;
  const probes: Probe[] = [];
  // Stock Casbin gets the policy's own g2 lines; the sample adds no manifest labels of its own.
  for (const person of people) for (const object of objectList) for (const action of ACTIONS) probes.push({ person, object, labels: [], action });
  return { policy, probes, whole };
}

/** Our answers against stock Casbin's; the first differences, described. */
export async function differences(model: PolicyModel, ours: PolicySnapshot, policyText: string, probes: readonly Probe[], limit = 3): Promise<string[]> {
  const stock = await stockEnforcer(model, policyText, probes);
  const out: string[] = [];
  for (let i = 0; i < probes.length && out.length < limit; i++) {
    if (i > 0 && i % 10 === 0) await pause();
    const { person, object, labels, action } = probes[i]!;
    const mine = ours.evaluate(person, object, action, labels).allowed;
    const theirs = stock.enforceSync(`user:${person.user}`, object, action);
    if (mine !== theirs) out.push(`user:${person.user}${person.groups.length ? ` (groups ${person.groups.join(', ')})` : ''} ${action} ${object}${labels.length ? ` (labels ${labels.join(', ')})` : ''}: this model ${mine ? 'allows' : 'denies'}, stock Casbin ${theirs ? 'allows' : 'denies'}`);
  }
  return out;
}

/** Requests no line can grant: a stranger with no groups, an object and an action nobody named. */
export function strangerProbes(policyText: string): Probe[] {
  let name = 'gatehouse-probe-nobody';
  for (let i = 0; policyText.includes(name); i++) name = `gatehouse-probe-nobody-${i}`;
  const person = { user: name, groups: [] };
  return ['dataset:', 'audit:', 'job:', 'policy:', 'cert:'].flatMap((kind) => [...ACTIONS, `${name}-action`].map((action) => ({ person, object: `${kind}${name}`, labels: [], action })));
}

/** Every string literal in the matcher. */
export function matcherLiterals(model: PolicyModel): string[] {
  const out = new Set<string>();
  const walk = (n: Node): void => {
    if (n.t === 'str') out.add(n.v);
    else if (n.t === 'or' || n.t === 'and' || n.t === 'eq') {
      walk(n.l);
      walk(n.r);
    } else if (n.t === 'not') walk(n.e);
    else if (n.t === 'call') n.args.forEach(walk);
  };
  walk(model.matcher.tree);
  return [...out].sort();
}

/**
 * Requests about the matcher's literals, each taken as a subject, an object and a label: each literal
 * as a user in every group of the policy, someone in every group, each literal object, and a fresh
 * dataset with each literal label, asked of everyone in the sample too. Empty without literals.
 */
export function literalProbes(snapshot: PolicySnapshot, policyText: string, sampled: readonly Probe[]): Probe[] {
  const { model } = snapshot;
  const literals = matcherLiterals(model);
  if (literals.length === 0) return [];
  const bare = (v: string, prefix: string) => (v.startsWith(prefix) ? v.slice(prefix.length) : v);
  let stranger = 'gatehouse-literal';
  for (let i = 0; policyText.includes(stranger) || literals.some((l) => l.includes(stranger)); i++) stranger = `gatehouse-literal-${i}`;
  const policyGroups = model.subjectRoles ? [...snapshot.graphs.get(model.subjectRoles)!.names()].filter((n) => n.startsWith('group:')).map((n) => bare(n, 'group:')) : [];
  const groups = [...new Set([...policyGroups, ...literals.filter((l) => l.startsWith('group:')).map((l) => bare(l, 'group:'))])].sort().slice(0, 50);
  // Stock Casbin is given each person's groups as links, so a name stands for one person only: a
  // literal naming someone the sample already asks about is asked about with the sample's groups.
  const sampledPeople = new Map<string, Person>();
  for (const p of sampled) sampledPeople.set(p.person.user, p.person);
  const people: Person[] = [{ user: `${stranger}-everyone`, groups }];
  for (const user of new Set(literals.map((l) => bare(l, 'user:')))) if (!sampledPeople.has(user)) people.push({ user, groups });
  const objects = [...new Set([...sampled.map((p) => p.object), ...literals.filter((l) => objectProblem(l) === null)])];
  const labelled: [string, string[]][] = literals.map((l, i) => [`dataset:${stranger}-labelled-${i}`, [bare(l, 'label:')]]);
  const probes: Probe[] = [];
  for (const person of people) {
    for (const object of objects) for (const action of ACTIONS) probes.push({ person, object, labels: [], action });
  }
  for (const person of [...people, ...sampledPeople.values()]) {
    for (const [object, labels] of labelled) for (const action of ACTIONS) probes.push({ person, object, labels, action });
  }
  return probes;
}

const corpusResults = new Map<string, string[]>();

/**
 * Every conformance problem for a model that passed the shape checks and built `snapshot`; empty when
 * it conforms. `build` makes our snapshot of other policy text with the same model.
 */
export async function conformanceProblems(modelText: string, snapshot: PolicySnapshot, policyText: string, build: Build): Promise<string[]> {
  const { model } = snapshot;
  const empty = await build('');
  if (!empty.snapshot) return [`the model cannot be checked on an empty policy: ${empty.problems[0]?.message ?? 'unknown problem'}`];
  for (const [what, s] of [
    ['an empty policy', empty.snapshot],
    ['this policy', snapshot],
  ] as const) {
    for (const { person, object, action } of strangerProbes(policyText)) {
      if (s.evaluate(person, object, action, []).allowed) return [`with ${what}, the model allows user:${person.user} (no groups) to ${action} ${object}, which no policy line mentions: the matcher or effect allows requests regardless of the policy lines`];
    }
  }

  let fromCorpus = corpusResults.get(modelText);
  if (!fromCorpus) {
    const c = corpus(model);
    const built = await build(c.policy);
    fromCorpus = built.snapshot ? await differences(model, built.snapshot, c.policy, c.probes) : [`the model cannot be checked: the built-in test lines do not load with it (${built.problems[0]?.message ?? 'unknown problem'})`];
    if (corpusResults.size >= 100) corpusResults.clear();
    corpusResults.set(modelText, fromCorpus);
  }
  if (fromCorpus.length > 0) return fromCorpus.map((d) => `decides differently from stock Casbin with the canonical matcher, on Gatehouse's built-in test lines: ${d}`);

  const s = sample(snapshot, policyText);
  const built = s.whole ? { snapshot, problems: [] } : await build(s.policy);
  const ours = built.snapshot;
  if (!ours) return [`the model cannot be checked on a sample of this policy: ${built.problems[0]?.message ?? 'unknown problem'}`];
  // The names the matcher itself mentions are asked about first (lint refuses literals in the
  // matcher already; this is the second wall).
  const found = await differences(model, ours, s.policy, [...literalProbes(snapshot, policyText, s.probes), ...s.probes]);
  return found.map((d) => `decides differently from stock Casbin with the canonical matcher, on this policy's lines: ${d}`);
}
