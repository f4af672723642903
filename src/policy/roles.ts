// A role graph (`g` or `g2` lines) that answers `g(a, b)` as Casbin's default role manager does:
// a name has itself, and every role reachable in at most 10 links (Casbin's hierarchy limit).
// Closures are computed once per name and kept for the life of the policy version; a request's own
// links (the user's directory groups, a dataset's labels) are added on top without touching them.

/** Where a link comes from: a policy line, the caller's identity, or a dataset's manifest. */
export type LinkSource = { file: string; line: number } | 'identity' | 'manifest';

/** Casbin's DefaultRoleManager(10). */
export const MAX_HIERARCHY = 10;

export type Closure = ReadonlyMap<string, number>;

/** Names in links are bounded by the files, but keep the cache bounded whatever they hold. */
const CLOSURE_CACHE_LIMIT = 100_000; // name → links from the start (0 for itself)

export class RoleGraph {
  private readonly edges = new Map<string, string[]>();
  private readonly sources = new Map<string, LinkSource>();
  private readonly closures = new Map<string, Closure>();

  addLink(from: string, to: string, source: LinkSource): void {
    const key = `${from}\0${to}`;
    if (this.sources.has(key)) return;
    this.sources.set(key, source);
    const list = this.edges.get(from);
    if (list) list.push(to);
    else this.edges.set(from, [to]);
    if (!this.edges.has(to)) this.edges.set(to, []);
  }

  /** Every name that appears in a link. */
  names(): IterableIterator<string> {
    return this.edges.keys();
  }

  direct(name: string): readonly string[] {
    return this.edges.get(name) ?? [];
  }

  source(from: string, to: string): LinkSource | undefined {
    return this.sources.get(`${from}\0${to}`);
  }

  /** The names `name` has, with their distance; `extra` are further direct links of `name` itself. */
  closure(name: string, extra: readonly string[] = []): Closure {
    if (extra.length === 0) {
      // A name in no link has only itself: not worth remembering (objects and people are endless).
      if (!this.edges.has(name)) return new Map([[name, 0]]);
      let c = this.closures.get(name);
      if (!c) {
        c = this.walk(name, []);
        if (this.closures.size >= CLOSURE_CACHE_LIMIT) this.closures.clear();
        this.closures.set(name, c);
      }
      return c;
    }
    return this.walk(name, extra);
  }

  private walk(start: string, extra: readonly string[]): Closure {
    const seen = new Map<string, number>([[start, 0]]);
    let frontier = [start];
    for (let depth = 1; depth <= MAX_HIERARCHY && frontier.length > 0; depth++) {
      const next: string[] = [];
      for (const name of frontier) {
        const direct = name === start && extra.length > 0 ? [...this.direct(name), ...extra] : this.direct(name);
        for (const to of direct) {
          if (!seen.has(to)) {
            seen.set(to, depth);
            next.push(to);
          }
        }
      }
      frontier = next;
    }
    return seen;
  }

  /** The shortest chain of names from `from` to `to` (both included), or null. */
  chain(from: string, to: string, extra: readonly string[] = []): string[] | null {
    if (from === to) return [from];
    const parent = new Map<string, string>();
    let frontier = [from];
    const seen = new Set([from]);
    for (let depth = 1; depth <= MAX_HIERARCHY && frontier.length > 0; depth++) {
      const next: string[] = [];
      for (const name of frontier) {
        const direct = name === from ? [...this.direct(name), ...extra] : this.direct(name);
        for (const n of direct) {
          if (seen.has(n)) continue;
          seen.add(n);
          parent.set(n, name);
          if (n === to) {
            const path = [n];
            for (let p = parent.get(n); p !== undefined; p = parent.get(p)) path.unshift(p);
            return path;
          }
          next.push(n);
        }
      }
      frontier = next;
    }
    return null;
  }

  /** The names that reach `name` in one link. */
  members(name: string): string[] {
    const out: string[] = [];
    for (const [from, to] of this.edges) if (to.includes(name)) out.push(from);
    return out;
  }
}

/** `g(name1, name2)` for one request: Casbin's argument handling, our closures. */
export function roleFunction(graph: RoleGraph, owner: string, ownerClosure: Closure): (a: unknown, b: unknown) => boolean {
  return (a, b) => {
    const name1 = String(a || '');
    const name2 = String(b || '');
    if (name1 === name2) return true;
    return (name1 === owner ? ownerClosure : graph.closure(name1)).has(name2);
  };
}
