// The usage ledger: what each user holds now (jobs, cores, memory of their admitted jobs) and the
// core-seconds they used in the last 24 hours. It lives in memory so that checking and holding are
// one synchronous step; the job records are its durable, shared half: before each decision about a
// user the job path reloads that user's part from them under a lock every gateway takes
// (resetUser), so decisions on several gateways see each other's holds.
import { heldMemoryMb, type ResourceRequest, type Usage } from './limits.js';

const DAY_MS = 24 * 3600 * 1000;

interface Held {
  user: string;
  cores: number;
  /** Of all its workers: cores × memory_mb per worker. */
  memory_mb: number;
  /** Core-seconds reported so far by the backend: a long job counts against today while it runs. */
  core_seconds: number;
}

export class UsageLedger {
  private readonly held = new Map<string, Held>();
  /** Per user: what ended jobs were charged, and when (kept for 24 hours). */
  private readonly charges = new Map<string, { at: number; seconds: number }[]>();

  constructor(private readonly now: () => number = Date.now) {}

  usage(user: string): Usage {
    let running_jobs = 0;
    let cores = 0;
    let memory_mb = 0;
    let core_seconds_24h = 0;
    for (const h of this.held.values()) {
      if (h.user !== user) continue;
      running_jobs += 1;
      cores += h.cores;
      memory_mb += h.memory_mb;
      core_seconds_24h += h.core_seconds;
    }
    const since = this.now() - DAY_MS;
    const list = this.charges.get(user);
    if (list !== undefined) {
      while (list.length > 0 && list[0]!.at <= since) list.shift(); // charges arrive in time order
      for (const c of list) core_seconds_24h += c.seconds;
    }
    return { running_jobs, cores, memory_mb, core_seconds_24h };
  }

  holds(job: string): boolean {
    return this.held.has(job);
  }

  /** `granted.memory_mb` is per worker, as a JobSpec says it; the job holds it once per core. */
  hold(job: string, user: string, granted: Pick<ResourceRequest, 'cores' | 'memory_mb'>, coreSeconds = 0): void {
    this.held.set(job, { user, cores: granted.cores, memory_mb: heldMemoryMb(granted), core_seconds: coreSeconds });
  }

  /** The backend's running total for a held job. */
  progress(job: string, coreSeconds: number): void {
    const h = this.held.get(job);
    if (h !== undefined) h.core_seconds = Math.max(h.core_seconds, coreSeconds);
  }

  /**
   * Ends a hold and charges what the job used at `at`. True the first time only: whatever reports
   * the end (the status route, the reconciler, a cancel), usage is released exactly once.
   */
  release(job: string, coreSeconds: number, at = this.now()): boolean {
    const h = this.held.get(job);
    if (h === undefined) return false;
    this.held.delete(job);
    this.charge(h.user, Math.max(coreSeconds, h.core_seconds), at);
    return true;
  }

  /** Core-seconds of a job that ended before this process started (restored from the records). */
  charge(user: string, seconds: number, at: number): void {
    if (seconds <= 0 || at <= this.now() - DAY_MS) return;
    let list = this.charges.get(user);
    if (list === undefined) this.charges.set(user, (list = []));
    // Keep time order; restored charges may arrive in any order.
    let i = list.length;
    while (i > 0 && list[i - 1]!.at > at) i -= 1;
    list.splice(i, 0, { at, seconds });
  }

  /** When the oldest charge of a user leaves the window (null: none counted). */
  nextExpiry(user: string): number | null {
    const first = this.charges.get(user)?.[0];
    return first === undefined ? null : first.at + DAY_MS;
  }

  /**
   * Replaces what a user holds and was charged with what the shared records say (read under the
   * user's lock, before a decision): other gateways admit and end this user's jobs too. A job still
   * held keeps the larger of the core-seconds seen here and recorded there.
   */
  resetUser(user: string, holds: readonly { job: string; cores: number; memory_mb: number; core_seconds: number }[], charges: readonly { at: number; seconds: number }[]): void {
    const seen = new Map<string, number>();
    for (const [job, h] of this.held) {
      if (h.user !== user) continue;
      seen.set(job, h.core_seconds);
      this.held.delete(job);
    }
    for (const h of holds) this.hold(h.job, user, h, Math.max(h.core_seconds, seen.get(h.job) ?? 0));
    this.charges.delete(user);
    for (const c of charges) this.charge(user, c.seconds, c.at);
  }

  heldJobs(): string[] {
    return [...this.held.keys()];
  }
}
