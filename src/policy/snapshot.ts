// One loaded, validated version of policies/: immutable once built. Decisions read a snapshot from
// start to finish, so a reload (which builds a new one beside it and swaps the reference) can never
// be seen half-done. Here is the evaluation core that decide and explain share.
import type { Subject } from '../identity/index.js';
import type { PolicyLine } from './lines.js';
import type { PolicyModel } from './model.js';
import type { PolicyProblem } from './problems.js';
import type { QuotaTable } from './quotas.js';
import { type Closure, type RoleGraph, roleFunction } from './roles.js';
import type { ProbeContext, RuleIndex } from './rule-index.js';
import { USER_PLACEHOLDER } from './user-pattern.js';
import { hasControl } from './vocabulary.js';

/** Casbin's Effect enum. */
const ALLOW = 1;
const INDETERMINATE = 2;
const DENY = 3;

export interface Evaluation {
  allowed: boolean;
  /** The rule that decided (an index into `rules`), or null when none did. */
  deciding: number | null;
  /** Every rule that matched, with Casbin's effect for it, when asked for (explain). */
  matched?: { id: number; effect: 'allow' | 'deny' | 'none' }[];
  subjectClosure: Closure;
  objectClosure: Closure;
}

const CACHE_LIMIT = 50_000;

/** A subject's user and directory groups as one key (\0 between them: no valid name holds it). */
function subjectKey(subject: Subject): string {
  return subject.groups.length === 0 ? subject.user : `${subject.user}\0${subject.groups.join('\0')}`;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export class PolicySnapshot {
  /** Decisions already made with this version; dropped with it on reload. */
  readonly decisions = new Map<string, unknown>();
  private readonly subjectClosures = new Map<string, Closure>();
  /** perSubject's answers, by subjectKey. */
  private readonly subjectAnswers = new Map<string, object>();
  private readonly emptyP: string[];
  private countsOnce: PolicySnapshot['counts'] | undefined;
  /** Rules whose object holds `{user}`: the index cannot place them, so every decision checks them. */
  private readonly templated: number[];
  private readonly isTemplated: Uint8Array;

  constructor(
    /** A content hash of model.conf and policy.csv: every decision carries it. */
    readonly version: string,
    readonly loadedAt: Date,
    readonly dir: string,
    readonly model: PolicyModel,
    /** Every line, in file order. */
    readonly lines: readonly PolicyLine[],
    /** The p lines, in file order; rule ids index this. */
    readonly rules: readonly PolicyLine[],
    readonly graphs: ReadonlyMap<string, RoleGraph>,
    readonly index: RuleIndex,
    readonly quotas: QuotaTable,
    /** Warnings lint found (errors stop a load). */
    readonly warnings: readonly PolicyProblem[],
    /** The files' text as read, which `version` hashes: kept by the store per version (versions.ts). */
    readonly sources: { readonly model: string; readonly policy: string } = { model: '', policy: '' },
  ) {
    this.emptyP = model.policyTypes.get('p')!.map(() => '');
    this.isTemplated = new Uint8Array(rules.length);
    this.templated = [];
    rules.forEach((r, id) => {
      if (r.fields[model.fields.obj]?.includes(USER_PLACEHOLDER)) {
        this.templated.push(id);
        this.isTemplated[id] = 1;
      }
    });
  }

  /** Lines by kind, for people (GET /v1/policy, lint's summary). */
  get counts(): { rules: number; role_links: number; label_links: number; quota_lines: number } {
    this.countsOnce ??= (() => {
      const count = (type: string | null) => (type === null ? 0 : this.lines.filter((l) => l.type === type).length);
      return { rules: this.rules.length, role_links: count(this.model.subjectRoles), label_links: count(this.model.objectRoles), quota_lines: count('p2') };
    })();
    return this.countsOnce;
  }

  /** The user's subject (`user:alice`) and its closure with their directory groups linked in. */
  subjectClosure(subject: Subject): Closure {
    const make = () => {
      const graph = this.model.subjectRoles ? this.graphs.get(this.model.subjectRoles) : undefined;
      const name = `user:${subject.user}`;
      return graph ? graph.closure(name, subject.groups.map((g) => `group:${g}`)) : new Map([[name, 0]]);
    };
    // Names with control characters (never valid) are neither kept nor answered from what is kept:
    // \0 separates the key's parts, so `alice\0analysts` would read alice's closure with analysts.
    if (hasControl(subject.user, subject.groups)) return make();
    const key = subjectKey(subject);
    let c = this.subjectClosures.get(key);
    if (!c) {
      c = make();
      if (this.subjectClosures.size >= CACHE_LIMIT) this.subjectClosures.clear();
      this.subjectClosures.set(key, c);
    }
    return c;
  }

  /**
   * What `resolve` makes of a subject's user and groups under this version, made once and kept with
   * the version (a reload builds a new snapshot, so nothing kept outlives the policy it came from).
   * For answers that depend on nothing else: a user's quota (explain.ts's resolveQuota, asked by every
   * admission). The answer is frozen, since every later caller is handed the same object.
   */
  perSubject<T extends object>(subject: Subject, resolve: () => T): T {
    // A name with a control character (never valid: auth cleans them out) could spell another
    // subject's key (`alice\0analysts`): such a subject is neither answered from the cache nor kept in it.
    if (hasControl(subject.user, subject.groups)) return deepFreeze(resolve());
    const key = subjectKey(subject);
    const kept = this.subjectAnswers.get(key) as T | undefined;
    if (kept !== undefined) return kept;
    const made = deepFreeze(resolve());
    if (this.subjectAnswers.size >= CACHE_LIMIT) this.subjectAnswers.clear();
    this.subjectAnswers.set(key, made);
    return made;
  }

  objectClosure(object: string, labels: readonly string[]): Closure {
    const graph = this.model.objectRoles ? this.graphs.get(this.model.objectRoles) : undefined;
    if (!graph) return new Map([[object, 0]]);
    return graph.closure(object, labels.map((l) => `label:${l}`));
  }

  /** Decides as Casbin's enforce would, looking only at the rules the index says can match. */
  evaluate(subject: Subject, object: string, action: string, labels: readonly string[], explain = false): Evaluation {
    return this.evaluateAs(`user:${subject.user}`, this.subjectClosure(subject), object, action, labels, explain);
  }

  /** The closure of any subject name (a group or role, for access diffs) without request links. */
  nameClosure(name: string): Closure {
    const graph = this.model.subjectRoles ? this.graphs.get(this.model.subjectRoles) : undefined;
    return graph ? graph.closure(name) : new Map([[name, 0]]);
  }

  /** Decides for the subject name `sub` whose closure (with its request links) is `subjectClosure`. */
  evaluateAs(sub: string, subjectClosure: Closure, object: string, action: string, labels: readonly string[], explain = false): Evaluation {
    const { model } = this;
    const request = [sub, object, action];
    const objectClosure = this.objectClosure(object, labels);
    const closureOf = (role: string, name: string): Closure | undefined =>
      role === model.subjectRoles && name === sub ? subjectClosure : role === model.objectRoles && name === object ? objectClosure : undefined;
    const fns: Record<string, (a: unknown, b: unknown) => boolean> = {};
    for (const [role, graph] of this.graphs) {
      const owner = role === model.subjectRoles ? sub : role === model.objectRoles ? object : '';
      fns[role] = roleFunction(graph, owner, closureOf(role, owner) ?? graph.closure(owner));
    }

    if (!model.matcher.usesPolicy || this.rules.length === 0) {
      // Casbin's branch for a policy-free matcher: one evaluation, empty policy fields, no eft.
      const allowed = model.effect === 'deny-unless-denied' ? true : Boolean(model.matcher.evaluate(request, this.emptyP, fns));
      return { allowed, deciding: null, ...(explain ? { matched: [] } : {}), subjectClosure, objectClosure };
    }

    const ctx: ProbeContext = {
      request,
      closure: (role, from) => closureOf(role, request[from]!) ?? this.graphs.get(role)!.closure(request[from]!),
    };
    let candidates = this.index.candidates(ctx);
    if (this.templated.length > 0) candidates = [...new Set([...candidates, ...this.templated])];
    const eftField = model.fields.eft;
    let firstAllow = -1;
    let firstDeny = -1;
    const matched: NonNullable<Evaluation['matched']> = [];
    for (const id of candidates) {
      const fields = this.rules[id]!.fields;
      const result = model.matcher.planIsMatcher && this.isTemplated[id] === 0 ? true : model.matcher.evaluate(request, fields, fns);
      let eft: number;
      switch (typeof result) {
        case 'boolean':
          eft = result ? ALLOW : INDETERMINATE;
          break;
        case 'number':
          eft = result === 0 ? INDETERMINATE : result;
          break;
        case 'string':
          eft = result === '' ? INDETERMINATE : ALLOW;
          break;
        default:
          throw new Error('matcher result should only be of type boolean, number, or string');
      }
      if (eftField !== null && fields[eftField] && eft === ALLOW) eft = fields[eftField] === 'allow' ? ALLOW : fields[eftField] === 'deny' ? DENY : INDETERMINATE;
      if (eft === ALLOW && (firstAllow < 0 || id < firstAllow)) firstAllow = id;
      if (eft === DENY && (firstDeny < 0 || id < firstDeny)) firstDeny = id;
      if (explain && result !== false && eft !== INDETERMINATE) matched.push({ id, effect: eft === ALLOW ? 'allow' : eft === DENY ? 'deny' : 'none' });
    }
    let allowed: boolean;
    let deciding: number | null;
    switch (model.effect) {
      case 'allow-override':
        allowed = firstAllow >= 0;
        deciding = allowed ? firstAllow : null;
        break;
      case 'deny-unless-denied':
        allowed = firstDeny < 0;
        deciding = allowed ? null : firstDeny;
        break;
      case 'deny-override':
        allowed = firstDeny < 0 && firstAllow >= 0;
        deciding = firstDeny >= 0 ? firstDeny : allowed ? firstAllow : null;
        break;
    }
    if (explain) matched.sort((a, b) => a.id - b.id);
    return { allowed, deciding, ...(explain ? { matched } : {}), subjectClosure, objectClosure };
  }
}
