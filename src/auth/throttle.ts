// Slows down, then refuses, repeated failed logins for one username or one client address, so
// guessing passwords costs an attacker time without locking a user out for long. In memory, per
// gateway process: a restart forgives, which is acceptable for a throttle (the audit trail keeps all).

export interface ThrottleOptions {
  /** Failures before a key is locked: per username, and (higher) per client address. */
  maxFailures: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
  lockoutSeconds: number;
  slowdownAfter: number;
  now?: () => number;
}

export interface ThrottleVerdict {
  /** Wait this long before answering (the slow-down). */
  delayMs: number;
  /** Set when logins for one of the keys are refused: seconds until they are allowed again. */
  retryAfterSeconds?: number;
  key?: string;
}

const MAX_DELAY_MS = 4_000;
const MAX_KEYS = 100_000;

interface Entry {
  failures: number[];
  lockedUntil: number;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly options: ThrottleOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Before an attempt: is any key locked, and how long should the answer wait? */
  check(keys: string[]): ThrottleVerdict {
    const now = this.now();
    let delayMs = 0;
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      if (entry.lockedUntil > now) return { delayMs: 0, retryAfterSeconds: Math.ceil((entry.lockedUntil - now) / 1000), key };
      // Only a username is slowed down: an address may be a whole office behind one NAT, so it
      // gets the (higher) lockout alone, and one person's typos do not slow their colleagues.
      if (key.startsWith('ip:')) continue;
      const recent = this.recent(entry, now);
      const over = recent - this.options.slowdownAfter;
      if (over >= 0) delayMs = Math.max(delayMs, Math.min(MAX_DELAY_MS, 250 * 2 ** over));
    }
    return { delayMs };
  }

  failure(keys: string[]): void {
    const now = this.now();
    if (this.entries.size > MAX_KEYS) this.prune(now);
    for (const key of keys) {
      const entry = this.entries.get(key) ?? { failures: [], lockedUntil: 0 };
      entry.failures.push(now);
      const limit = key.startsWith('ip:') ? this.options.maxFailuresPerAddress : this.options.maxFailures;
      if (this.recent(entry, now) >= limit) {
        entry.lockedUntil = now + this.options.lockoutSeconds * 1000;
        entry.failures = [];
      }
      this.entries.set(key, entry);
    }
  }

  /** A success forgives the username, not the address: one good account must not reset a spray. */
  success(usernameKey: string): void {
    this.entries.delete(usernameKey);
  }

  private recent(entry: Entry, now: number): number {
    const since = now - this.options.windowSeconds * 1000;
    entry.failures = entry.failures.filter((t) => t > since);
    return entry.failures.length;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) if (entry.lockedUntil <= now && this.recent(entry, now) === 0) this.entries.delete(key);
  }
}

export interface StartLimitOptions {
  /** Starts one key may make within the window; the next is refused until the oldest leaves it. */
  maxStarts: number;
  windowSeconds: number;
  now?: () => number;
}

/**
 * Caps how many browser sign-ins one client address may start in a window. A start costs an
 * attacker nothing, and each one mints a state (a stored request, a code exchange to try): without
 * a cap one address could mint them without end. A rate, not a lockout: refused starts do not count,
 * and the address may start again as soon as its oldest start leaves the window.
 */
export class StartLimit {
  private readonly starts = new Map<string, number[]>();
  private readonly now: () => number;

  constructor(private readonly options: StartLimitOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Takes one start for `key`: undefined when allowed, else the seconds until one is. */
  take(key: string): number | undefined {
    const now = this.now();
    if (this.starts.size > MAX_KEYS) this.prune(now);
    const since = now - this.options.windowSeconds * 1000;
    const recent = (this.starts.get(key) ?? []).filter((t) => t > since);
    if (recent.length >= this.options.maxStarts) {
      this.starts.set(key, recent);
      return Math.max(1, Math.ceil((recent[0]! - since) / 1000));
    }
    recent.push(now);
    this.starts.set(key, recent);
    return undefined;
  }

  private prune(now: number): void {
    const since = now - this.options.windowSeconds * 1000;
    for (const [key, times] of this.starts) if (times.every((t) => t <= since)) this.starts.delete(key);
  }
}
