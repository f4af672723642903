// The rules, indexed by the fields the matcher's probes constrain (typically subject, then object,
// then action), so a decision reaches the few lines that can match instead of scanning them all.
// Each level maps a field's exact value to the next level; a level probed by keyMatch also maps
// the text before a pattern's `*` (keyMatch ignores what follows it), looked up by every prefix
// length that occurs there. The lookup may return lines that do not match; never miss one that does.
import type { FieldProbes } from './matcher.js';
import type { Closure } from './roles.js';

interface Level {
  exact: Map<string, Level | number[]>;
  prefix: Map<string, Level | number[]> | null;
  prefixLengths: number[];
}

export interface ProbeContext {
  request: readonly string[];
  /** The closure of a request field under a role definition (g: the subject's roles, g2: the object's labels). */
  closure(role: string, from: number): Closure;
}

export class RuleIndex {
  private readonly root: Level | number[];
  private readonly plan: FieldProbes[];
  private readonly size: number;
  // Dedup without allocation: a line is taken once per lookup generation.
  private readonly seenAt: Uint32Array;
  private generation = 0;

  private constructor(plan: FieldProbes[], root: Level | number[], size: number) {
    this.plan = plan;
    this.root = root;
    this.size = size;
    this.seenAt = new Uint32Array(size);
  }

  /** Builds the index over `rules` (each a policy line's fields), pausing every `chunk` rules. */
  static async build(plan: FieldProbes[], rules: readonly (readonly string[])[], pause?: () => Promise<void>, chunk = 20_000): Promise<RuleIndex> {
    const withPrefix = plan.map((x) => x.probes.some((p) => p.kind === 'keyMatch'));
    const newLevel = (depth: number): Level | number[] => (depth === plan.length ? [] : { exact: new Map(), prefix: withPrefix[depth] ? new Map() : null, prefixLengths: [] });
    const root = newLevel(0);
    const insert = (node: Level | number[], depth: number, fields: readonly string[], id: number) => {
      if (Array.isArray(node)) {
        if (node[node.length - 1] !== id) node.push(id);
        return;
      }
      const value = fields[plan[depth]!.field] ?? '';
      let child = node.exact.get(value);
      if (!child) node.exact.set(value, (child = newLevel(depth + 1)));
      insert(child, depth + 1, fields, id);
      const star = node.prefix ? value.indexOf('*') : -1;
      if (star >= 0) {
        const key = value.slice(0, star);
        let pchild = node.prefix!.get(key);
        if (!pchild) {
          node.prefix!.set(key, (pchild = newLevel(depth + 1)));
          if (!node.prefixLengths.includes(star)) node.prefixLengths.push(star);
        }
        insert(pchild, depth + 1, fields, id);
      }
    };
    for (let id = 0; id < rules.length; id++) {
      if (pause && id > 0 && id % chunk === 0) await pause();
      insert(root, 0, rules[id]!, id);
    }
    return new RuleIndex(plan, root, rules.length);
  }

  /** Rule ids that may match the request, each once, in no particular order. */
  candidates(ctx: ProbeContext): number[] {
    if (++this.generation === 0xffffffff) {
      this.seenAt.fill(0);
      this.generation = 1;
    }
    const out: number[] = [];
    this.collect(this.root, 0, ctx, out);
    return out;
  }

  private collect(node: Level | number[], depth: number, ctx: ProbeContext, out: number[]): void {
    if (Array.isArray(node)) {
      const g = this.generation;
      for (const id of node) {
        if (this.seenAt[id] !== g) {
          this.seenAt[id] = g;
          out.push(id);
        }
      }
      return;
    }
    for (const probe of this.plan[depth]!.probes) {
      switch (probe.kind) {
        case 'closure':
          for (const name of ctx.closure(probe.role, probe.from).keys()) this.visit(node.exact.get(name), depth, ctx, out);
          break;
        case 'value':
          this.visit(node.exact.get(ctx.request[probe.from]!), depth, ctx, out);
          break;
        case 'literal':
          this.visit(node.exact.get(probe.value), depth, ctx, out);
          break;
        case 'keyMatch': {
          const key = ctx.request[probe.from]!;
          this.visit(node.exact.get(key), depth, ctx, out);
          if (node.prefix) for (const n of node.prefixLengths) if (n <= key.length) this.visit(node.prefix.get(key.slice(0, n)), depth, ctx, out);
          break;
        }
      }
    }
  }

  private visit(child: Level | number[] | undefined, depth: number, ctx: ProbeContext, out: number[]): void {
    if (child) this.collect(child, depth + 1, ctx, out);
  }

  get rules(): number {
    return this.size;
  }
}
