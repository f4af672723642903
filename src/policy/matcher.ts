// The model's matcher, parsed once and compiled to one JavaScript function with Casbin's own
// semantics: the same operators (JavaScript's, as Casbin's expression evaluator uses), the same
// built-in functions (Casbin's implementations, called directly) and role functions that answer
// like Casbin's role manager. Besides the function, the parse yields the index probes: conditions
// every matching policy line must meet, which let a decision look at a handful of lines instead of
// all of them. The function re-checks every candidate, so a probe only has to be a superset.
import { casbin } from './casbin.js';
import { USER_MATCH_FUNCTION, userKeyMatch } from './user-pattern.js';

export type Node =
  | { t: 'or' | 'and'; l: Node; r: Node }
  | { t: 'eq'; neg: boolean; l: Node; r: Node }
  | { t: 'not'; e: Node }
  | { t: 'str'; v: string }
  | { t: 'bool'; v: boolean }
  | { t: 'var'; side: 'r' | 'p'; index: number; name: string }
  | { t: 'call'; fn: string; args: Node[] };

/** Casbin's built-in matcher functions, by the names model files use. */
const BUILTINS: Record<string, (...args: unknown[]) => unknown> = {
  keyMatch: casbin.Util.keyMatchFunc,
  keyGet: casbin.Util.keyGetFunc,
  keyMatch2: casbin.Util.keyMatch2Func,
  keyGet2: casbin.Util.keyGet2Func,
  keyMatch3: casbin.Util.keyMatch3Func,
  keyMatch4: casbin.Util.keyMatch4Func,
  keyMatch5: casbin.Util.keyMatch5Func,
  regexMatch: casbin.Util.regexMatchFunc,
  ipMatch: casbin.Util.ipMatchFunc,
  globMatch: casbin.Util.globMatch as (...args: unknown[]) => unknown,
  // Gatehouse's one addition: keyMatch with `{user}` patterns (src/policy/user-pattern.ts).
  [USER_MATCH_FUNCTION]: userKeyMatch,
};
export const BUILTIN_FUNCTIONS = Object.keys(BUILTINS);

export class MatcherError extends Error {
  override readonly name = 'MatcherError';
}

/** A condition on one policy field that every matching line meets. */
export type Probe =
  | { kind: 'closure'; role: string; from: number } // g(r.x, p.y): p.y is r.x or one of its roles
  | { kind: 'value'; from: number } // r.x == p.y
  | { kind: 'literal'; value: string } // p.y == "..."
  | { kind: 'keyMatch'; from: number }; // keyMatch(r.x, p.y)

export interface FieldProbes {
  /** Index of the policy field (in the p definition) the probes constrain. */
  field: number;
  /** The line qualifies if any probe holds (a disjunction in the matcher). */
  probes: Probe[];
}

/** `g(name1, name2)` for one decision: Casbin's role-manager answer, with the request's own links. */
export type RoleFunction = (name1: unknown, name2: unknown) => boolean;

export interface CompiledMatcher {
  /** The matcher as Casbin holds it (r.sub written r_sub). */
  source: string;
  /** Casbin evaluates the matcher once, with empty policy fields, when it names no p_ field. */
  usesPolicy: boolean;
  evaluate(r: readonly string[], p: readonly (string | undefined)[], roles: Record<string, RoleFunction>): unknown;
  /** Probes per policy field, in the order the matcher's top-level conjuncts name them. */
  plan: FieldProbes[];
  /**
   * True when the matcher is nothing but the probes (every top-level conjunct is one, on distinct
   * fields): then every candidate the index returns matches, and the matcher need not run again.
   */
  planIsMatcher: boolean;
  /** Role definitions the matcher calls, and the built-ins. */
  functions: Set<string>;
  /** Every call of a role definition on a request field, anywhere in the matcher: which role, which r field. */
  roleCalls: { role: string; from: number }[];
  /** Every built-in function called as f(r.x, p.y), anywhere: which function, on which fields. */
  fieldCalls: { fn: string; from: number; field: number }[];
  /** The parse tree, for lint's checks of the matcher's shape. */
  tree: Node;
}

interface Token {
  kind: 'op' | 'str' | 'id';
  text: string;
  at: number;
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (two === '&&' || two === '||' || two === '==' || two === '!=') {
      if ((two === '==' || two === '!=') && src[i + 2] === '=') throw new MatcherError(`"${two}=" is not supported at column ${i + 1}; write ${two}`);
      tokens.push({ kind: 'op', text: two, at: i });
      i += 2;
      continue;
    }
    if ('!(),'.includes(c)) {
      tokens.push({ kind: 'op', text: c, at: i });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let value = '';
      for (; j < src.length && src[j] !== c; j++) {
        if (src[j] === '\\' && j + 1 < src.length) {
          const e = src[++j]!;
          value += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
        } else value += src[j];
      }
      if (j >= src.length) throw new MatcherError(`unterminated string starting at column ${i + 1}`);
      tokens.push({ kind: 'str', text: value, at: i });
      i = j + 1;
      continue;
    }
    const id = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(src.slice(i));
    if (id) {
      tokens.push({ kind: 'id', text: id[0], at: i });
      i += id[0].length;
      continue;
    }
    throw new MatcherError(`"${c}" at column ${i + 1} is not supported in a Gatehouse matcher (use ==, !=, !, &&, ||, parentheses, strings, r./p. fields and functions)`);
  }
  return tokens;
}

interface Names {
  r: string[]; // request tokens without the prefix: ['sub', 'obj', 'act']
  p: string[];
  roles: string[]; // 'g', 'g2', ...
}

function parse(src: string, names: Names): Node {
  const tokens = tokenize(src);
  let pos = 0;
  const peek = () => tokens[pos];
  const expect = (text: string) => {
    const t = tokens[pos];
    if (!t || t.text !== text || t.kind === 'str') throw new MatcherError(`expected "${text}" ${t ? `at column ${t.at + 1}` : 'at the end'}`);
    pos++;
  };
  const binary = (t: 'or' | 'and', op: string, next: () => Node) => (): Node => {
    let l = next();
    while (peek()?.kind === 'op' && peek()!.text === op) {
      pos++;
      l = { t, l, r: next() };
    }
    return l;
  };
  const primary = (): Node => {
    const t = tokens[pos++];
    if (!t) throw new MatcherError('the matcher ends too early');
    if (t.kind === 'str') return { t: 'str', v: t.text };
    if (t.kind === 'op') {
      if (t.text === '(') {
        const e = or();
        expect(')');
        return e;
      }
      throw new MatcherError(`unexpected "${t.text}" at column ${t.at + 1}`);
    }
    if (t.text === 'true' || t.text === 'false') return { t: 'bool', v: t.text === 'true' };
    if (peek()?.text === '(' && peek()?.kind === 'op') {
      pos++;
      const args: Node[] = [];
      if (peek()?.text !== ')') {
        for (;;) {
          args.push(or());
          if (peek()?.text === ',') {
            pos++;
            continue;
          }
          break;
        }
      }
      expect(')');
      if (!names.roles.includes(t.text) && !Object.hasOwn(BUILTINS, t.text)) {
        throw new MatcherError(`unknown function ${t.text}() in the matcher; known: ${[...names.roles, ...BUILTIN_FUNCTIONS].join(', ')}`);
      }
      if (t.text === USER_MATCH_FUNCTION && args.length !== 3) throw new MatcherError(`${USER_MATCH_FUNCTION}() takes 3 arguments: ${USER_MATCH_FUNCTION}(r.obj, p.obj, r.sub), found ${args.length}`);
      if (names.roles.includes(t.text) && args.length !== 2) throw new MatcherError(`${t.text}() takes 2 arguments here (role definitions with domains are not supported), found ${args.length}`);
      return { t: 'call', fn: t.text, args };
    }
    const m = /^(r|p)_(.+)$/.exec(t.text);
    if (m) {
      const side = m[1] as 'r' | 'p';
      const index = names[side].indexOf(m[2]!);
      if (index < 0) throw new MatcherError(`${side}.${m[2]} is not in the ${side === 'r' ? 'request' : 'policy'} definition (${names[side].map((n) => `${side}.${n}`).join(', ')})`);
      return { t: 'var', side, index, name: t.text };
    }
    throw new MatcherError(`unknown name "${t.text}" at column ${t.at + 1}`);
  };
  const unary = (): Node => {
    if (peek()?.kind === 'op' && peek()!.text === '!') {
      pos++;
      return { t: 'not', e: unary() };
    }
    return primary();
  };
  const equality = (): Node => {
    let l = unary();
    while (peek()?.kind === 'op' && (peek()!.text === '==' || peek()!.text === '!=')) {
      const neg = tokens[pos++]!.text === '!=';
      l = { t: 'eq', neg, l, r: unary() };
    }
    return l;
  };
  const and = binary('and', '&&', equality);
  const or = binary('or', '||', and);
  const tree = or();
  if (pos < tokens.length) throw new MatcherError(`unexpected "${tokens[pos]!.text}" at column ${tokens[pos]!.at + 1}`);
  return tree;
}

function emit(node: Node, functions: Set<string>): string {
  switch (node.t) {
    case 'or':
      return `(${emit(node.l, functions)} || ${emit(node.r, functions)})`;
    case 'and':
      return `(${emit(node.l, functions)} && ${emit(node.r, functions)})`;
    case 'eq':
      // Casbin's evaluator uses JavaScript's loose equality; so do we.
      return `(${emit(node.l, functions)} ${node.neg ? '!=' : '=='} ${emit(node.r, functions)})`;
    case 'not':
      return `(!${emit(node.e, functions)})`;
    case 'str':
      return JSON.stringify(node.v);
    case 'bool':
      return String(node.v);
    case 'var':
      return `${node.side}[${node.index}]`;
    case 'call':
      functions.add(node.fn);
      return `${Object.hasOwn(BUILTINS, node.fn) ? 'fn' : 'roles'}[${JSON.stringify(node.fn)}](${node.args.map((a) => emit(a, functions)).join(', ')})`;
  }
}

function walk(node: Node, visit: (n: Node) => void): void {
  visit(node);
  if (node.t === 'or' || node.t === 'and' || node.t === 'eq') {
    walk(node.l, visit);
    walk(node.r, visit);
  } else if (node.t === 'not') walk(node.e, visit);
  else if (node.t === 'call') for (const a of node.args) walk(a, visit);
}

function conjuncts(node: Node): Node[] {
  return node.t === 'and' ? [...conjuncts(node.l), ...conjuncts(node.r)] : [node];
}

/** The probes one conjunct gives, or null when it constrains no single policy field usably. */
function probesOf(node: Node, roles: string[]): FieldProbes | null {
  const isR = (n: Node): n is Extract<Node, { t: 'var' }> => n.t === 'var' && n.side === 'r';
  const isP = (n: Node): n is Extract<Node, { t: 'var' }> => n.t === 'var' && n.side === 'p';
  if (node.t === 'call' && (node.args.length === 2 || (node.fn === USER_MATCH_FUNCTION && node.args.length === 3))) {
    const [a, b] = node.args as [Node, Node];
    if (roles.includes(node.fn) && isR(a) && isP(b)) return { field: b.index, probes: [{ kind: 'closure', role: node.fn, from: a.index }] };
    if (node.fn === USER_MATCH_FUNCTION && node.args.length === 3 && isR(a) && isP(b) && isR(node.args[2]!) && (node.args[2] as { index: number }).index === 0) return { field: b.index, probes: [{ kind: 'keyMatch', from: a.index }] };
    if (node.fn === 'keyMatch' && isR(a) && isP(b)) return { field: b.index, probes: [{ kind: 'keyMatch', from: a.index }] };
    return null;
  }
  if (node.t === 'eq' && !node.neg) {
    for (const [x, y] of [
      [node.l, node.r],
      [node.r, node.l],
    ] as const) {
      if (isP(x) && isR(y)) return { field: x.index, probes: [{ kind: 'value', from: y.index }] };
      if (isP(x) && y.t === 'str') return { field: x.index, probes: [{ kind: 'literal', value: y.v }] };
    }
    return null;
  }
  if (node.t === 'or') {
    const l = probesOf(node.l, roles);
    const r = probesOf(node.r, roles);
    return l && r && l.field === r.field ? { field: l.field, probes: [...l.probes, ...r.probes] } : null;
  }
  return null;
}

/**
 * Compiles Casbin's (escaped) matcher. `names` are the model's request and policy tokens without
 * their `r_`/`p_` prefix and the role definitions it may call.
 */
export function compileMatcher(source: string, names: Names): CompiledMatcher {
  if (/\beval\s*\(/.test(source)) throw new MatcherError('eval() in the matcher is not supported: Gatehouse compiles the matcher once');
  const tree = parse(source, names);
  const functions = new Set<string>();
  // Generated from our own parse tree only: names are checked above and strings JSON-encoded.
  const body = `return ${emit(tree, functions)};`;
  const fn = new Function('r', 'p', 'fn', 'roles', body) as (r: readonly string[], p: readonly (string | undefined)[], fn: typeof BUILTINS, roles: Record<string, RoleFunction>) => unknown;
  const plan: FieldProbes[] = [];
  let planIsMatcher = true;
  for (const c of conjuncts(tree)) {
    const probes = probesOf(c, names.roles);
    if (probes && !plan.some((x) => x.field === probes.field)) plan.push(probes);
    else planIsMatcher = false;
  }
  const roleCalls: CompiledMatcher['roleCalls'] = [];
  const fieldCalls: CompiledMatcher['fieldCalls'] = [];
  walk(tree, (n) => {
    if (n.t !== 'call' || n.args.length < 2) return;
    const [a, b] = n.args as [Node, Node];
    if (a.t !== 'var' || a.side !== 'r') return;
    if (names.roles.includes(n.fn)) roleCalls.push({ role: n.fn, from: a.index });
    else if (b.t === 'var' && b.side === 'p') fieldCalls.push({ fn: n.fn, from: a.index, field: b.index });
  });
  return {
    source,
    tree,
    roleCalls,
    fieldCalls,
    usesPolicy: source.includes('p_'), // Casbin's own test, substring and all
    evaluate: (r, p, roles) => fn(r, p, BUILTINS, roles),
    plan,
    planIsMatcher: planIsMatcher && plan.length > 0,
    functions,
  };
}
