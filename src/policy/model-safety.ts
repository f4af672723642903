// What lint asks of a model before anything is decided with it: the matcher can only be true for a
// policy line that binds the request's subject, object and action (so it is never true regardless of
// the lines) and holds nothing but those terms joined by && and || (no literal, no p.eft, no ! or
// !=, which could exempt someone from the deny lines), and the effect allows only what an allow rule
// grants. `m = g(r.sub, p.sub) || true && …` once passed lint and allowed every request; here it is
// refused, with the part that is wrong.
import type { Node } from './matcher.js';
import type { PolicyModel } from './model.js';
import { USER_MATCH_FUNCTION } from './user-pattern.js';

/** Object functions a rule's object may be matched with: f(r.obj, p.obj). */
const OBJECT_FUNCTIONS = ['keyMatch', 'keyMatch2', 'keyMatch3', 'keyMatch4', 'keyMatch5', 'globMatch', 'regexMatch'];

/** Every term a matcher may hold; anything else (a literal, p.eft, !, !=) is refused. */
export const SANCTIONED_TERMS = 'g(r.sub, p.sub) or r.sub == p.sub; an object match f(r.obj, p.obj) (keyMatch, keyMatch2-5, globMatch, regexMatch), userKeyMatch(r.obj, p.obj, r.sub), r.obj == p.obj or g2(r.obj, p.obj); and r.act == p.act';

export const REQUIRED_TERMS = 'g(r.sub, p.sub) (or r.sub == p.sub), an object match such as keyMatch(r.obj, p.obj), and r.act == p.act';

/** The matcher as people wrote it (r.sub, not r_sub), for messages. */
export function show(node: Node, names: { r: string[]; p: string[] }): string {
  switch (node.t) {
    case 'or':
      return `${show(node.l, names)} || ${show(node.r, names)}`;
    case 'and':
      return `${wrap(node.l, names)} && ${wrap(node.r, names)}`;
    case 'eq':
      return `${show(node.l, names)} ${node.neg ? '!=' : '=='} ${show(node.r, names)}`;
    case 'not':
      return `!${node.e.t === 'call' || node.e.t === 'var' ? show(node.e, names) : `(${show(node.e, names)})`}`;
    case 'str':
      return JSON.stringify(node.v);
    case 'bool':
      return String(node.v);
    case 'var':
      return `${node.side}.${names[node.side][node.index]}`;
    case 'call':
      return `${node.fn}(${node.args.map((a) => show(a, names)).join(', ')})`;
  }
}

function wrap(node: Node, names: { r: string[]; p: string[] }): string {
  return node.t === 'or' ? `(${show(node, names)})` : show(node, names);
}

function same(a: Node, b: Node): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function disjuncts(node: Node): Node[] {
  return node.t === 'or' ? [...disjuncts(node.l), ...disjuncts(node.r)] : [node];
}

function conjuncts(node: Node): Node[] {
  return node.t === 'and' ? [...conjuncts(node.l), ...conjuncts(node.r)] : [node];
}

/** Problems with the matcher's shape, each a sentence naming the part at fault; empty when sound. */
export function matcherProblems(model: PolicyModel): string[] {
  const names = { r: ['sub', 'obj', 'act'], p: model.policyTypes.get('p')! };
  const tree = model.matcher.tree;
  const problems: string[] = [];
  const isVar = (n: Node, side: 'r' | 'p', index: number) => n.t === 'var' && n.side === side && n.index === index;
  const R = { sub: 0, obj: 1, act: 2 };
  const P = model.fields;

  // Anywhere: a constant true, or a comparison or call whose answer does not depend on a policy line.
  const visit = (n: Node): void => {
    if (n.t === 'bool' && n.v) problems.push('the matcher holds the constant true, which makes it true whatever the policy lines say');
    if (n.t === 'eq') {
      const constant = (x: Node) => x.t === 'str' || x.t === 'bool';
      if (same(n.l, n.r)) problems.push(`"${show(n, names)}" compares a value with itself: it is ${n.neg ? 'never' : 'always'} true, whatever the policy lines say`);
      else if (constant(n.l) && constant(n.r)) problems.push(`"${show(n, names)}" compares two constants: its answer does not depend on the request or the policy lines`);
    }
    if (n.t === 'call' && n.args.length >= 2 && same(n.args[0]!, n.args[1]!)) problems.push(`"${show(n, names)}" compares a value with itself: it is always true, whatever the policy lines say`);
    if (n.t === 'or' || n.t === 'and' || n.t === 'eq') {
      visit(n.l);
      visit(n.r);
    } else if (n.t === 'not') visit(n.e);
    else if (n.t === 'call') n.args.forEach(visit);
  };
  visit(tree);

  const subjectTerm = (n: Node) =>
    (n.t === 'call' && model.roleTypes.includes(n.fn) && isVar(n.args[0]!, 'r', R.sub) && isVar(n.args[1]!, 'p', P.sub)) ||
    (n.t === 'eq' && !n.neg && ((isVar(n.l, 'r', R.sub) && isVar(n.r, 'p', P.sub)) || (isVar(n.r, 'r', R.sub) && isVar(n.l, 'p', P.sub))));
  const objectAtom = (n: Node): boolean => {
    if (n.t === 'or') return objectAtom(n.l) && objectAtom(n.r);
    if (n.t === 'eq') return !n.neg && ((isVar(n.l, 'r', R.obj) && isVar(n.r, 'p', P.obj)) || (isVar(n.r, 'r', R.obj) && isVar(n.l, 'p', P.obj)));
    if (n.t !== 'call' || !isVar(n.args[0]!, 'r', R.obj) || !isVar(n.args[1]!, 'p', P.obj)) return false;
    if (n.fn === USER_MATCH_FUNCTION) return n.args.length === 3 && isVar(n.args[2]!, 'r', R.sub);
    return n.args.length === 2 && (OBJECT_FUNCTIONS.includes(n.fn) || (model.roleTypes.includes(n.fn) && n.fn !== model.subjectRoles));
  };
  const actionTerm = (n: Node) => n.t === 'eq' && !n.neg && ((isVar(n.l, 'r', R.act) && isVar(n.r, 'p', P.act)) || (isVar(n.r, 'r', R.act) && isVar(n.l, 'p', P.act)));

  const ways = disjuncts(tree);
  for (const way of ways) {
    const terms = conjuncts(way);
    const missing = [
      terms.some(subjectTerm) ? null : 'the subject (g(r.sub, p.sub) or r.sub == p.sub)',
      terms.some(objectAtom) ? null : 'the object (keyMatch(r.obj, p.obj), r.obj == p.obj, or these joined by || with g2(r.obj, p.obj))',
      terms.some(actionTerm) ? null : 'the action (r.act == p.act)',
    ].filter((x): x is string => x !== null);
    if (missing.length > 0) {
      const where = ways.length > 1 ? `the alternative "${show(way, names)}" (one side of a top-level ||)` : `the matcher "${show(way, names)}"`;
      problems.push(`${where} can be true without a policy line that matches ${missing.join(', ')}: it must require ${REQUIRED_TERMS}, each joined by &&`);
    }
  }
  // Nothing but the sanctioned terms, joined by && and ||. A name in the matcher ("user:quinn",
  // "label:pii"), the effect (p.eft) or any other term can exempt someone or something from the deny
  // lines while every alternative still holds the three terms: `<shipped> && !(r.sub == "user:quinn"
  // && p.eft == "deny")` let contractor quinn read pii. The canonical matcher has none of them.
  const leafProblems: string[] = [];
  const mentions = (n: Node): void => {
    if (n.t === 'str') problems.push(`${JSON.stringify(n.v)} is a string literal: a matcher names no person, object or label (the policy lines do), and one named here can be exempted from the deny lines; the canonical matcher has no literal`);
    if (n.t === 'var' && n.side === 'p' && P.eft !== null && n.index === P.eft) problems.push('p.eft is the effect of a line: only the policy effect (e = ...) reads it; in the matcher it can switch the deny lines off, and the canonical matcher does not mention it');
    if (n.t === 'or' || n.t === 'and' || n.t === 'eq') {
      mentions(n.l);
      mentions(n.r);
    } else if (n.t === 'not') mentions(n.e);
    else if (n.t === 'call') n.args.forEach(mentions);
  };
  mentions(tree);
  const leaves = (n: Node): void => {
    if (n.t === 'or' || n.t === 'and') {
      leaves(n.l);
      leaves(n.r);
    } else if (n.t !== 'bool' && n.t !== 'str' && !subjectTerm(n) && !objectAtom(n) && !actionTerm(n)) {
      // (A constant alone is reported above.)
      leafProblems.push(`the term ${show(n, names)} is not one of the terms a matcher is made of: it must only join, with && and || (and parentheses), ${SANCTIONED_TERMS}; no !, no !=, no other comparison or function`);
    }
  };
  leaves(tree);
  problems.push(...leafProblems);

  return [...new Set(problems)];
}

/** A problem with the effect, or null: only effects that allow on a matching allow rule are served. */
export function effectProblem(model: PolicyModel): string | null {
  if (model.effect === 'deny-unless-denied') return 'the policy effect "!some(where (p.eft == deny))" allows every request no deny matches, with no allow rule: a request nobody wrote a line for would be allowed';
  return null;
}
