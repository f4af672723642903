// Quota lines (`p2, <subject>, <limit>, <value>`) resolved through the same roles as the rules.
// Which line applies, for each limit separately:
//   1. a line for the user themself (`p2, user:alice, ...`): IT said so for this person, higher or lower;
//   2. otherwise the most generous line among the user's groups and roles;
//   3. otherwise the `default` line;
//   4. otherwise Gatehouse's built-in value (lint warns about the missing default).
import { lineRef, lineText, type PolicyLine } from './lines.js';
import type { Closure } from './roles.js';
import { DEFAULT_SUBJECT, QUOTA_LIMITS, type QuotaLimit } from './vocabulary.js';

export type Limits = Record<QuotaLimit, number>;

/** Deliberately small: a policy without quota lines should not hand out a cluster. */
export const BUILT_IN_LIMITS: Limits = {
  max_concurrent_jobs: 2,
  max_cores: 2,
  max_memory_mb: 4096,
  max_job_runtime_s: 3600,
  core_hours_per_day: 8,
  /** Every dataset the person owns plus their staged uploads (MB of 1024 × 1024 bytes). */
  max_storage_mb: 1024,
};

export interface ResolvedLimit {
  value: number;
  /** Why this value: the user's own line, the most generous role, the default, or built in. */
  source: 'user' | 'role' | 'default' | 'built-in';
  /** The line that gave the value, as `policy.csv:31: p2, role:analysts, max_cores, 8`. */
  line: string | null;
  /** The subject chain from the user to the line's subject (`user:alice → group:analysts → role:analysts`). */
  via: string[];
  /** Lines that also applied and lost, with their value. */
  overridden: { line: string; value: number }[];
}

export type ResolvedQuota = Record<QuotaLimit, ResolvedLimit>;

export class QuotaTable {
  private readonly bySubject = new Map<string, Map<QuotaLimit, PolicyLine>>();

  add(line: PolicyLine): void {
    const [subject, limit] = line.fields as [string, QuotaLimit];
    let limits = this.bySubject.get(subject);
    if (!limits) this.bySubject.set(subject, (limits = new Map()));
    if (!limits.has(limit)) limits.set(limit, line);
  }

  /** Every subject with a quota line (for access diffs). */
  subjects(): string[] {
    return [...this.bySubject.keys()];
  }

  /**
   * Resolves every limit for a user whose subject closure (themself, their groups and roles, with
   * distances) is `closure`; `chain` draws the path from the user to a subject for the explanation.
   */
  resolve(user: string, closure: Closure, chain: (to: string) => string[]): ResolvedQuota {
    const out = {} as ResolvedQuota;
    const describe = (l: PolicyLine) => `${lineRef(l)}: ${lineText(l)}`;
    for (const limit of QUOTA_LIMITS) {
      const own = this.bySubject.get(user)?.get(limit);
      const roles: PolicyLine[] = [];
      for (const name of closure.keys()) {
        if (name === user) continue;
        const l = this.bySubject.get(name)?.get(limit);
        if (l) roles.push(l);
      }
      roles.sort((a, b) => Number(b.fields[2]) - Number(a.fields[2]) || a.id - b.id);
      const fallback = this.bySubject.get(DEFAULT_SUBJECT)?.get(limit);
      const winner = own ?? roles[0] ?? fallback;
      const losers = [...(own ? roles : roles.slice(1)), ...(winner !== fallback && fallback ? [fallback] : [])];
      out[limit] = winner
        ? {
            value: Number(winner.fields[2]),
            source: winner === own ? 'user' : winner === fallback ? 'default' : 'role',
            line: describe(winner),
            via: winner === fallback ? [] : chain(winner.fields[0]!),
            overridden: losers.map((l) => ({ line: describe(l), value: Number(l.fields[2]) })),
          }
        : { value: BUILT_IN_LIMITS[limit], source: 'built-in', line: null, via: [], overridden: [] };
    }
    return out;
  }
}

export function limitsOf(resolved: ResolvedQuota): Limits {
  return Object.fromEntries(QUOTA_LIMITS.map((l) => [l, resolved[l].value])) as Limits;
}
