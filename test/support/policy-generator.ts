// Generated policy folders for the differential test and the policy benchmark: a company's
// model.conf and policy.csv of any size (50 to 100,000 lines), the people who ask (users with their
// directory groups, datasets with their manifest labels), and requests that mix grants, denies,
// near misses, strangers and objects nobody wrote a rule for. Everything comes from one seeded
// PRNG, so a seed names a policy exactly, and every policy passes Gatehouse's lint.
//
// The stock Casbin equivalent of a generated folder is `stockEnforcer()`: model.conf and policy.csv
// as files, plus every person's groups as g links and every manifest label as a g2 link, which is
// what src/policy adds at request time.
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as CasbinModule from 'casbin';

// Stock Casbin straight from the package (its CommonJS build, as src/policy loads it), not through
// src/policy, so the reference shares nothing with what it checks.
const casbin = createRequire(import.meta.url)('casbin') as typeof CasbinModule;
export type StockEnforcer = CasbinModule.Enforcer;

/** The models the generator can write; each is one Gatehouse supports. */
export const MODEL_VARIANTS = ['shipped', 'allow-override', 'deny-unless-denied', 'keymatch2', 'globmatch', 'exact', 'no-g2'] as const;
export type ModelVariant = (typeof MODEL_VARIANTS)[number];

export type PolicyAction = 'read' | 'write' | 'admin';
const ACTIONS: readonly PolicyAction[] = ['read', 'write', 'admin'];

interface VariantSpec {
  effect: string;
  matcher: string;
  /** Which function compares r.obj with p.obj: decides which patterns make sense. */
  objects: 'keyMatch' | 'keyMatch2' | 'globMatch' | 'exact';
  g2: boolean;
  quotas: boolean;
  note: string;
}

const DENY_OVERRIDE = 'some(where (p.eft == allow)) && !some(where (p.eft == deny))';
const VARIANTS: Record<ModelVariant, VariantSpec> = {
  shipped: {
    note: 'the shipped model: keyMatch patterns and g2 labels, a deny beats any allow',
    effect: DENY_OVERRIDE,
    matcher: 'g(r.sub, p.sub) && (keyMatch(r.obj, p.obj) || g2(r.obj, p.obj)) && r.act == p.act',
    objects: 'keyMatch',
    g2: true,
    quotas: true,
  },
  'allow-override': {
    note: 'any allow wins; deny lines are loaded but never decide',
    effect: 'some(where (p.eft == allow))',
    matcher: 'g(r.sub, p.sub) && (keyMatch(r.obj, p.obj) || g2(r.obj, p.obj)) && r.act == p.act',
    objects: 'keyMatch',
    g2: true,
    quotas: true,
  },
  'deny-unless-denied': {
    note: 'everything is allowed unless a deny matches',
    effect: '!some(where (p.eft == deny))',
    matcher: 'g(r.sub, p.sub) && (keyMatch(r.obj, p.obj) || g2(r.obj, p.obj)) && r.act == p.act',
    objects: 'keyMatch',
    g2: true,
    quotas: false,
  },
  // keyMatch2 and globMatch give no object probe: decisions go through the subject and action index.
  keymatch2: {
    note: 'keyMatch2 patterns (`/*` is any rest of the path; other stars are refused by lint) with g2 labels',
    effect: DENY_OVERRIDE,
    matcher: 'g(r.sub, p.sub) && (keyMatch2(r.obj, p.obj) || g2(r.obj, p.obj)) && r.act == p.act',
    objects: 'keyMatch2',
    g2: true,
    quotas: true,
  },
  globmatch: {
    note: 'globMatch patterns (a `*` stops at `/`)',
    effect: DENY_OVERRIDE,
    matcher: 'g(r.sub, p.sub) && globMatch(r.obj, p.obj) && r.act == p.act',
    objects: 'globMatch',
    g2: false,
    quotas: false,
  },
  exact: {
    note: 'objects compared exactly (no patterns), action first in the matcher',
    effect: DENY_OVERRIDE,
    matcher: 'r.act == p.act && g(r.sub, p.sub) && (r.obj == p.obj || g2(r.obj, p.obj))',
    objects: 'exact',
    g2: true,
    quotas: false,
  },
  'no-g2': {
    note: 'no object roles: labels (in the file or from manifests) mean nothing',
    effect: DENY_OVERRIDE,
    matcher: 'g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act',
    objects: 'keyMatch',
    g2: false,
    quotas: true,
  },
};

/** model.conf for a variant. */
export function modelText(variant: ModelVariant): string {
  const v = VARIANTS[variant];
  return [
    `# Generated model: ${variant} (${v.note}).`,
    '[request_definition]',
    'r = sub, obj, act',
    '',
    '[policy_definition]',
    'p = sub, obj, act, eft',
    ...(v.quotas ? ['p2 = sub, quota, value'] : []),
    '',
    '[role_definition]',
    'g = _, _',
    ...(v.g2 ? ['g2 = _, _'] : []),
    '',
    '[policy_effect]',
    `e = ${v.effect}`,
    '',
    '[matchers]',
    `m = ${v.matcher}`,
    '',
  ].join('\n');
}

// --- the PRNG ---

/** mulberry32: small, fast, and the same sequence on every machine for a seed. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[this.int(items.length)]!;
  }
  /** An index drawn by weight. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let x = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i]!;
      if (x < 0) return i;
    }
    return weights.length - 1;
  }
}

// --- what a generated policy is ---

export interface Person {
  user: string;
  groups: string[];
}

export interface Rule {
  sub: string;
  obj: string;
  act: PolicyAction;
  eft: 'allow' | 'deny';
}

export interface GeneratedPolicy {
  variant: ModelVariant;
  seed: number;
  model: string;
  policy: string;
  /** Policy lines in policy.csv (comments and blank lines not counted). */
  lineCount: number;
  rules: Rule[];
  /** g lines, member → role. */
  roleLinks: [string, string][];
  /** g2 lines, dataset → label (empty when the model has no g2). */
  labelLinks: [string, string][];
  /** The directory: each person's groups (names without `group:`). */
  people: Person[];
  /** Datasets' manifest labels (names without `label:`), passed with every request for the object. */
  manifests: Map<string, string[]>;
  /** Every dataset the policy or the manifests name. */
  datasets: string[];
}

export interface GenerateOptions {
  /** Policy lines to write (at least 50). */
  lines: number;
  seed?: number;
  model?: ModelVariant;
}

const WORDS = ['sales', 'events', 'clicks', 'customers', 'orders', 'payments', 'logs', 'features', 'embeddings', 'churn', 'inventory', 'claims', 'sessions', 'ledger', 'survey', 'search', 'returns', 'pricing'];
const LABELS = ['pii', 'finance', 'secret', 'health', 'export'];
/** A label only manifests carry: no line names it. */
const MANIFEST_ONLY_LABEL = 'internal';
const QUOTAS = ['max_concurrent_jobs', 'max_cores', 'max_memory_mb', 'max_job_runtime_s', 'core_hours_per_day'] as const;
const GLOBAL_ROLES = ['role:analysts', 'role:contractors', 'role:auditors', 'role:admins', 'role:interns', 'role:stewards'];

/** Generates a policy folder's content; deterministic for (lines, seed, model). */
export function generatePolicy(options: GenerateOptions): GeneratedPolicy {
  const variant = options.model ?? 'shipped';
  const spec = VARIANTS[variant];
  const seed = options.seed ?? 1;
  const target = Math.max(50, Math.floor(options.lines));
  const rnd = new Random(seed * 7919 + target);

  const out: string[] = [`# Generated policy: ${target} lines, seed ${seed}, model ${variant}.`];
  const seen = new Set<string>();
  let count = 0;
  const rules: Rule[] = [];
  const roleLinks: [string, string][] = [];
  const labelLinks: [string, string][] = [];
  /** Appends a line unless it is already there; says whether it did. */
  const emit = (fields: string[]): boolean => {
    if (count >= target) return false;
    const text = fields.join(', ');
    if (seen.has(text)) return false;
    seen.add(text);
    out.push(text);
    count++;
    const [type, a, b, c, d] = fields as [string, string, string, string, string];
    if (type === 'p') rules.push({ sub: a, obj: b, act: c as PolicyAction, eft: d as 'allow' | 'deny' });
    else if (type === 'g') roleLinks.push([a, b]);
    else if (type === 'g2') labelLinks.push([a, b]);
    return true;
  };
  const p = (sub: string, obj: string, act: PolicyAction, eft: 'allow' | 'deny' = 'allow') => emit(['p', sub, obj, act, eft]);

  // The company: teams in departments, each team with its own namespace of datasets.
  const teams = Math.max(3, Math.round(target / 40));
  const departments = Math.max(2, Math.round(teams / 12));
  const deptOf = (t: number) => t % departments;
  const teamDatasets: string[][] = [];
  for (let t = 0; t < teams; t++) {
    const n = 3 + rnd.int(6);
    const names = new Set<string>();
    while (names.size < n) names.add(`${rnd.pick(WORDS)}${rnd.chance(0.5) ? `-${rnd.int(20)}` : ''}`);
    teamDatasets.push([...names].map((name) => `dataset:team-${t}/${name}`));
  }
  const shared = Array.from({ length: Math.max(3, Math.round(teams / 4)) }, (_, i) => `dataset:shared-${WORDS[i % WORDS.length]}${i >= WORDS.length ? `-${i}` : ''}`);
  const people = Math.max(40, Math.round(target / 12));
  const userName = (i: number) => `u${i}`;
  const allDatasets = [...teamDatasets.flat(), ...shared];
  const someDataset = () => (rnd.chance(0.85) ? rnd.pick(rnd.pick(teamDatasets)) : rnd.pick(shared));

  const teamRole = (t: number, kind: 'members' | 'owners') => `role:team-${t}-${kind}`;
  const deptRole = (d: number) => `role:dept-${d}-analysts`;
  /** Roles some group or user reaches through emitted links, so a deny for them is lint-clean. */
  const reachable = new Set<string>();
  const g = (member: string, role: string): boolean => {
    const added = emit(['g', member, role]);
    if (added && (member.startsWith('group:') || member.startsWith('user:') || reachable.has(member))) reachable.add(role);
    return added;
  };

  // --- roles from directory groups, hierarchies, cycles, long chains ---
  out.push('', '# Roles');
  for (const [group, role] of [
    ['group:data-science', 'role:analysts'],
    ['group:contractors', 'role:contractors'],
    ['group:auditors', 'role:auditors'],
    ['group:platform-admins', 'role:admins'],
    ['group:interns', 'role:interns'],
    ['group:stewards', 'role:stewards'],
  ] as const) {
    g(group, role);
  }
  g('role:admins', 'role:analysts');
  g('role:interns', 'role:contractors');
  for (let d = 0; d < departments; d++) {
    g(`group:dept-${d}`, deptRole(d));
    g(deptRole(d), 'role:analysts');
  }
  for (let t = 0; t < teams; t++) {
    g(`group:team-${t}`, teamRole(t, 'members'));
    g(`group:team-${t}-leads`, teamRole(t, 'owners'));
    if (rnd.chance(0.9)) g(teamRole(t, 'owners'), teamRole(t, 'members'));
    if (rnd.chance(0.7)) g(teamRole(t, 'members'), deptRole(deptOf(t)));
    // A cycle: IT linked both ways when two roles were meant to be one.
    if (rnd.chance(0.03)) g(teamRole(t, 'members'), teamRole(t, 'owners'));
    // Merged teams: one team's members have the other's roles.
    if (rnd.chance(0.04)) g(teamRole(t, 'members'), teamRole(rnd.int(teams), 'members'));
  }
  // Rings of three roles entered from a team group.
  const rings = Math.max(1, Math.round(teams / 50));
  for (let k = 0; k < rings; k++) {
    const ring = [1, 2, 3].map((i) => `role:ring-${k}-${i}`);
    g(`group:team-${rnd.int(teams)}`, ring[0]!);
    g(ring[0]!, ring[1]!);
    g(ring[1]!, ring[2]!);
    g(ring[2]!, ring[0]!);
    p(ring[2]!, rnd.pick(rnd.pick(teamDatasets)), rnd.pick(ACTIONS));
  }
  // Chains longer than Casbin's 10 links: group:chain-k is 1 link from the user, role:chain-k-j is j+1.
  const chains = target < 100 ? 0 : Math.max(1, Math.round(target / 10_000));
  for (let k = 0; k < chains; k++) {
    const length = 11 + rnd.int(3);
    const names = Array.from({ length }, (_, j) => `role:chain-${k}-${j + 1}`);
    g(`group:chain-${k}`, names[0]!);
    for (let j = 1; j < length; j++) g(names[j - 1]!, names[j]!);
    // Rules just inside and just beyond the limit (role:chain-k-9 is exactly 10 links from the user).
    for (const j of [8, 9, 10, 11]) {
      p(names[j - 1]!, rnd.pick(rnd.pick(teamDatasets)), 'read');
      if (j >= 9 && reachable.has(names[j - 1]!)) p(names[j - 1]!, rnd.pick(rnd.pick(teamDatasets)), 'write', 'deny');
    }
  }
  // People IT named in the file: a user in a group, a user given a role directly.
  for (let i = 0, n = Math.max(2, Math.round(target / 400)); i < n; i++) {
    const u = `user:${userName(rnd.int(people))}`;
    if (rnd.chance(0.5)) g(u, `group:team-${rnd.int(teams)}`);
    else g(u, teamRole(rnd.int(teams), rnd.chance(0.5) ? 'members' : 'owners'));
  }
  const denied = [...reachable];

  // --- labels ---
  if (spec.g2) {
    out.push('', '# Labels');
    for (let i = 0, n = Math.max(3, Math.round(target * 0.04)); i < n; i++) emit(['g2', someDataset(), `label:${rnd.pick(LABELS)}`]);
  }

  // --- quotas ---
  if (spec.quotas) {
    out.push('', '# Quotas');
    const values = { max_concurrent_jobs: () => 2 + rnd.int(8), max_cores: () => 2 + rnd.int(30), max_memory_mb: () => 1024 * (2 + rnd.int(60)), max_job_runtime_s: () => 600 * (1 + rnd.int(48)), core_hours_per_day: () => 4 + rnd.int(200) };
    for (const q of QUOTAS) emit(['p2', 'default', q, String(values[q]())]);
    const taken = new Set<string>();
    for (let i = 0, n = Math.round(target * 0.03); i < n; i++) {
      const sub = rnd.chance(0.2) ? `user:${userName(rnd.int(people))}` : rnd.pick(denied);
      const q = rnd.pick(QUOTAS);
      if (taken.has(`${sub} ${q}`)) continue;
      taken.add(`${sub} ${q}`);
      emit(['p2', sub, q, String(values[q]())]);
    }
  }

  // --- rules ---
  out.push('', '# Rules');
  const patterns = spec.objects !== 'exact';
  // keyMatch2 reads a star not after a slash as a regular-expression repeat, which lint refuses.
  const slashStarsOnly = spec.objects === 'keyMatch2';
  const gateway = patterns && !slashStarsOnly ? ['audit:*', 'policy:*', 'cert:*', 'job:*'] : ['audit:events', 'policy:files', 'cert:7f3a9c', 'job:nightly'];
  const teamObject = (t: number) => (patterns ? `dataset:team-${t}/*` : rnd.pick(teamDatasets[t]!));
  const anySubject = () => {
    const x = rnd.next();
    if (x < 0.45) return teamRole(rnd.int(teams), rnd.chance(0.7) ? 'members' : 'owners');
    if (x < 0.6) return `group:team-${rnd.int(teams)}`;
    if (x < 0.75) return deptRole(rnd.int(departments));
    if (x < 0.85) return rnd.pick(GLOBAL_ROLES);
    return rnd.pick(denied);
  };
  const action = (): PolicyAction => ACTIONS[rnd.weighted([6, 2.5, 1.5])]!;
  // Every team reads (and mostly writes) its own namespace; owners administer it.
  for (let t = 0; t < teams && count < target * 0.5; t++) {
    p(teamRole(t, 'members'), teamObject(t), 'read');
    if (rnd.chance(0.6)) p(teamRole(t, 'members'), teamObject(t), 'write');
    p(teamRole(t, 'owners'), teamObject(t), 'admin');
  }
  p('role:auditors', gateway[0]!, 'read');
  p('role:admins', gateway[1]!, 'admin');
  if (patterns) p('role:admins', slashStarsOnly ? '*' : 'dataset:*', 'admin');
  if (spec.g2) p('role:contractors', 'label:pii', 'read', 'deny');

  const kinds: { weight: number; make: () => boolean }[] = [
    // Another team, a department or a global role granted one dataset.
    { weight: 44, make: () => p(anySubject(), someDataset(), action()) },
    // A department granted a team's whole namespace.
    { weight: 10, make: () => p(rnd.chance(0.5) ? deptRole(rnd.int(departments)) : anySubject(), teamObject(rnd.int(teams)), rnd.chance(0.8) ? 'read' : 'write') },
    // Shared datasets for everyone in analytics.
    { weight: 8, make: () => p(rnd.chance(0.5) ? 'role:analysts' : deptRole(rnd.int(departments)), rnd.pick(shared), rnd.chance(0.85) ? 'read' : 'write') },
    // One person's exception.
    { weight: 8, make: () => p(`user:${userName(rnd.int(people))}`, someDataset(), action()) },
    // The gateway's own objects.
    { weight: 2, make: () => p(rnd.pick(['role:auditors', 'role:admins', 'role:stewards', deptRole(rnd.int(departments))]), rnd.pick(gateway), rnd.pick(ACTIONS)) },
    // Labels: stewards and auditors read what is labelled for them.
    { weight: spec.g2 ? 2 : 0, make: () => p(rnd.pick(['role:stewards', 'role:auditors', deptRole(rnd.int(departments))]), `label:${rnd.pick(LABELS)}`, rnd.chance(0.8) ? 'read' : 'write') },
    // Patterns across namespaces: everything, or team names sharing a prefix (team-1* is team-1, team-10..., team-100...).
    { weight: patterns ? 0.6 : 0, make: () => p(rnd.pick(['role:admins', 'role:stewards', teamRole(rnd.int(teams), 'owners')]), slashStarsOnly ? `dataset:team-${1 + rnd.int(9)}/*` : rnd.chance(0.5) ? 'dataset:*' : `dataset:team-${1 + rnd.int(9)}*`, action()) },
    { weight: spec.objects === 'keyMatch' ? 0.2 : 0, make: () => p(rnd.pick(['role:admins', 'group:platform-admins']), '*', rnd.pick(ACTIONS)) },
    // Denies, about a tenth of the rules: a role kept out of one dataset or a namespace...
    { weight: 5, make: () => p(rnd.pick(denied), rnd.chance(0.75) ? someDataset() : teamObject(rnd.int(teams)), action(), 'deny') },
    // ...a person kept out...
    { weight: 2, make: () => p(`user:${userName(rnd.int(people))}`, someDataset(), action(), 'deny') },
    // ...and labelled data kept from contractors, interns and some teams.
    { weight: spec.g2 ? 3 : 0, make: () => p(rnd.pick(['role:contractors', 'role:interns', 'group:contractors', rnd.pick(denied)]), `label:${rnd.pick(LABELS)}`, action(), 'deny') },
    { weight: spec.g2 ? 0 : 3, make: () => p(rnd.pick(['role:contractors', 'role:interns', 'group:contractors']), someDataset(), action(), 'deny') },
  ];
  const weights = kinds.map((k) => k.weight);
  let misses = 0;
  while (count < target) {
    if (kinds[rnd.weighted(weights)]!.make()) continue;
    // A duplicate: after a few, write a rule that cannot be one.
    if (++misses > 20) p(`user:${userName(people + count)}`, `dataset:team-${rnd.int(teams)}/solo-${count}`, 'read');
  }
  out.push('');

  // --- the directory: people and their groups ---
  const fileGroups = new Set<string>();
  for (const [member, role] of roleLinks) for (const n of [member, role]) if (n.startsWith('group:')) fileGroups.add(n.slice(6));
  for (const r of rules) if (r.sub.startsWith('group:')) fileGroups.add(r.sub.slice(6));
  const directory: Person[] = [];
  for (let i = 0; i < people; i++) {
    const groups = new Set<string>();
    if (!rnd.chance(0.03)) {
      const t = rnd.int(teams);
      if (rnd.chance(0.85)) groups.add(`team-${t}`);
      if (rnd.chance(0.1)) groups.add(`team-${t}-leads`);
      if (rnd.chance(0.5)) groups.add(`dept-${deptOf(t)}`);
      if (rnd.chance(0.15)) groups.add('data-science');
      if (rnd.chance(0.08)) groups.add('contractors');
      if (rnd.chance(0.05)) groups.add('interns');
      if (rnd.chance(0.03)) groups.add('stewards');
      if (rnd.chance(0.02)) groups.add('auditors');
      if (rnd.chance(0.01)) groups.add('platform-admins');
      if (chains > 0 && rnd.chance(0.03)) groups.add(`chain-${rnd.int(chains)}`);
      // Groups the policy never mentions (the directory has many more than IT maps).
      if (rnd.chance(0.15)) groups.add(`staff-${rnd.int(20)}`);
    }
    directory.push({ user: userName(i), groups: [...groups] });
  }
  // Every group the file names has somebody in it, so every rule can be reached by a request.
  const populated = new Set(directory.flatMap((x) => x.groups));
  for (const group of fileGroups) if (!populated.has(group)) directory[rnd.int(people)]!.groups.push(group);

  // --- manifests: labels the datasets carry themselves ---
  const manifests = new Map<string, string[]>();
  const labelled = labelLinks.map(([d]) => d);
  for (let i = 0, n = Math.max(4, Math.round(allDatasets.length * 0.08)); i < n; i++) {
    // Some datasets the g2 lines label too (the same label or another), most only here.
    const ds = rnd.chance(0.3) && labelled.length > 0 ? rnd.pick(labelled) : rnd.pick(allDatasets);
    const labels = new Set(manifests.get(ds) ?? []);
    labels.add(rnd.chance(0.15) ? MANIFEST_ONLY_LABEL : rnd.pick(LABELS));
    manifests.set(ds, [...labels]);
  }
  // Datasets nobody wrote a rule for still have manifests.
  for (let i = 0; i < 3; i++) manifests.set(`dataset:unruled-${i}/data`, [rnd.pick(LABELS)]);

  const datasets = [...new Set([...allDatasets, ...labelLinks.map(([d]) => d), ...manifests.keys()])];
  return { variant, seed, model: modelText(variant), policy: out.join('\n'), lineCount: count, rules, roleLinks, labelLinks, people: directory, manifests, datasets };
}

/** Writes model.conf and policy.csv into `dir`. */
export async function writePolicy(dir: string, generated: Pick<GeneratedPolicy, 'model' | 'policy'>): Promise<void> {
  await Promise.all([writeFile(join(dir, 'model.conf'), generated.model), writeFile(join(dir, 'policy.csv'), generated.policy)]);
}

/** Who asks: the directory's people and the datasets' manifest labels. */
export type World = Pick<GeneratedPolicy, 'people' | 'manifests'>;

/**
 * Stock Casbin on the same files, with what Gatehouse adds at request time added up front: every
 * person's groups as `g, user:<u>, group:<g>` and, when the model has g2, every manifest label as
 * `g2, <dataset>, label:<l>`. `links: false` leaves them out (to check that a comparison can fail).
 * A CachedEnforcer, so `enforce` (async) caches while `enforceSync` stays the plain enforcer.
 */
export async function stockEnforcer(dir: string, world: World, options: { links?: boolean } = {}): Promise<StockEnforcer> {
  const enforcer = await casbin.newCachedEnforcer(join(dir, 'model.conf'), join(dir, 'policy.csv'));
  if (options.links === false) return enforcer;
  // One at a time: addGroupingPolicies refuses the whole batch if one link is already in the file.
  for (const person of world.people) for (const group of person.groups) await enforcer.addGroupingPolicy(`user:${person.user}`, `group:${group}`);
  if (enforcer.getModel().model.get('g')?.has('g2')) {
    for (const [object, labels] of world.manifests) for (const l of labels) await enforcer.addNamedGroupingPolicy('g2', object, `label:${l}`);
  }
  return enforcer;
}

// --- requests ---

export type RequestKind = 'grant' | 'deny' | 'near-miss' | 'random' | 'stranger' | 'unknown-object' | 'gateway';

export interface PolicyRequest {
  kind: RequestKind;
  user: string;
  groups: string[];
  object: string;
  action: PolicyAction;
  /** The object's manifest labels (empty when it has none). */
  labels: string[];
}

/** Builds requests against a generated policy: a deterministic mix for `seed`. */
export class RequestGenerator {
  private readonly rnd: Random;
  private readonly members = new Map<string, string[]>(); // role or group → who links to it
  private readonly byGroup = new Map<string, Person[]>();
  private readonly byUser = new Map<string, Person>();
  private readonly reachers = new Map<string, string[]>();
  private readonly prefixed = new Map<string, string[]>(); // pattern prefix → datasets under it
  private readonly labelled = new Map<string, string[]>(); // label → datasets
  private readonly allows: Rule[];
  private readonly denies: Rule[];

  constructor(
    private readonly policy: GeneratedPolicy,
    seed = 1,
  ) {
    this.rnd = new Random(seed * 104_729 + policy.lineCount);
    for (const [member, role] of policy.roleLinks) {
      const list = this.members.get(role);
      if (list) list.push(member);
      else this.members.set(role, [member]);
    }
    for (const person of policy.people) {
      this.byUser.set(person.user, person);
      for (const group of person.groups) {
        const list = this.byGroup.get(`group:${group}`);
        if (list) list.push(person);
        else this.byGroup.set(`group:${group}`, [person]);
      }
    }
    const addLabel = (ds: string, label: string) => {
      const list = this.labelled.get(label);
      if (list) list.push(ds);
      else this.labelled.set(label, [ds]);
    };
    for (const [ds, label] of policy.labelLinks) addLabel(ds, label);
    for (const [ds, labels] of policy.manifests) for (const l of labels) addLabel(ds, `label:${l}`);
    // Datasets by namespace (`dataset:team-3/`), for patterns that end at the slash.
    for (const ds of policy.datasets) {
      const slash = ds.indexOf('/');
      if (slash < 0) continue;
      const ns = ds.slice(0, slash + 1);
      const list = this.prefixed.get(ns);
      if (list) list.push(ds);
      else this.prefixed.set(ns, [ds]);
    }
    this.allows = policy.rules.filter((r) => r.eft === 'allow');
    this.denies = policy.rules.filter((r) => r.eft === 'deny');
  }

  /** `count` requests: about a third aimed at allow rules, a sixth at deny rules, the rest anything. */
  take(count: number): PolicyRequest[] {
    const out: PolicyRequest[] = [];
    const kinds: RequestKind[] = ['grant', 'deny', 'near-miss', 'random', 'stranger', 'unknown-object', 'gateway'];
    const weights = [34, 16, 16, 16, 5, 9, 4];
    while (out.length < count) out.push(this.one(kinds[this.rnd.weighted(weights)]!));
    return out;
  }

  one(kind: RequestKind): PolicyRequest {
    const { rnd } = this;
    switch (kind) {
      case 'grant':
      case 'deny': {
        const list = kind === 'grant' || this.denies.length === 0 ? this.allows : this.denies;
        const rule = rnd.pick(list);
        return this.request(kind, this.personReaching(rule.sub), this.objectMatching(rule.obj), rule.act);
      }
      case 'near-miss': {
        // A rule's subject, object and action with one of them changed.
        const rule = rnd.pick(this.policy.rules);
        const which = rnd.int(3);
        return this.request(
          kind,
          which === 0 ? rnd.pick(this.policy.people) : this.personReaching(rule.sub),
          which === 1 ? rnd.pick(this.policy.datasets) : this.objectMatching(rule.obj),
          which === 2 ? rnd.pick(ACTIONS.filter((a) => a !== rule.act)) : rule.act,
        );
      }
      case 'random':
        return this.request(kind, rnd.pick(this.policy.people), rnd.pick(this.policy.datasets), rnd.pick(ACTIONS));
      case 'stranger':
        return this.request(kind, { user: `visitor-${rnd.int(1000)}`, groups: [] }, rnd.pick(this.policy.datasets), rnd.pick(ACTIONS));
      case 'unknown-object': {
        const object = rnd.chance(0.5) ? `dataset:team-${rnd.int(50)}/new-${rnd.int(1000)}` : `dataset:nowhere-${rnd.int(1000)}`;
        return this.request(kind, rnd.pick(this.policy.people), object, rnd.pick(ACTIONS));
      }
      case 'gateway':
        return this.request(kind, rnd.pick(this.policy.people), rnd.pick(['audit:events', 'policy:files', 'cert:7f3a9c', 'job:nightly', 'audit:export']), rnd.pick(ACTIONS));
    }
  }

  private request(kind: RequestKind, person: Person, object: string, action: PolicyAction): PolicyRequest {
    return { kind, user: person.user, groups: person.groups, object, action, labels: this.policy.manifests.get(object) ?? [] };
  }

  /** Somebody who has `subject`: a person in a group that reaches it, or the user it names. */
  private personReaching(subject: string): Person {
    if (subject.startsWith('user:')) {
      const user = subject.slice(5);
      return this.byUser.get(user) ?? { user, groups: [] };
    }
    let from = this.reachers.get(subject);
    if (!from) {
      // Walk the links backwards to groups and users, further than Casbin's limit: people just
      // beyond it make good requests.
      from = [];
      const seen = new Set([subject]);
      let frontier = [subject];
      for (let depth = 0; depth < 16 && frontier.length > 0; depth++) {
        const next: string[] = [];
        for (const name of frontier) {
          if (name.startsWith('group:') || name.startsWith('user:')) from.push(name);
          for (const m of this.members.get(name) ?? []) {
            if (seen.has(m)) continue;
            seen.add(m);
            next.push(m);
          }
        }
        frontier = next;
      }
      this.reachers.set(subject, from);
    }
    if (from.length === 0) return this.rnd.pick(this.policy.people);
    const name = this.rnd.pick(from);
    if (name.startsWith('user:')) return this.byUser.get(name.slice(5)) ?? { user: name.slice(5), groups: [] };
    return this.rnd.pick(this.byGroup.get(name) ?? this.policy.people);
  }

  /** An object the rule's object matches (under keyMatch): itself, one under a pattern, one with a label. */
  private objectMatching(obj: string): string {
    const { rnd } = this;
    if (obj.startsWith('label:')) return rnd.pick(this.labelled.get(obj) ?? this.policy.datasets);
    const star = obj.indexOf('*');
    if (star < 0) return obj;
    const prefix = obj.slice(0, star);
    if (!prefix.startsWith('dataset:') && prefix !== '') {
      const names: Record<string, string> = { 'audit:': 'audit:events', 'policy:': 'policy:files', 'cert:': 'cert:7f3a9c', 'job:': 'job:nightly' };
      return names[prefix] ?? `${prefix}x`;
    }
    let list = this.prefixed.get(prefix);
    if (!list) this.prefixed.set(prefix, (list = prefix.endsWith('/') ? [] : this.policy.datasets.filter((d) => d.startsWith(prefix))));
    // Sometimes a dataset nobody named yet, under the same pattern.
    if (list.length === 0 || (prefix.endsWith('/') && rnd.chance(0.2))) return `${prefix.endsWith('/') ? prefix : 'dataset:'}fresh-${rnd.int(100)}`;
    return rnd.pick(list);
  }
}
