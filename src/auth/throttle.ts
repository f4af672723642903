// Slows down, then refuses, repeated failed logins for one username or one client address, so
// guessing passwords costs an attacker time without locking a user out for long. In memory, per
// gateway process: a restart forgives, which is acceptable for a throttle (the audit trail keeps all).
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';

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

export interface PendingSignInsOptions {
  /** Pending sign-ins one key keeps; a start beyond it evicts the key's oldest. */
  maxPending: number;
  windowSeconds: number;
  now?: () => number;
}

/**
 * Bounds the browser sign-ins one client address keeps pending. A start costs an attacker nothing
 * and each one is a stored request, so storage per address is bounded; but a start is never refused
 * for it (an office behind one NAT, or another site's page loading the start URL many times, would
 * otherwise lock everyone out): the address's oldest pending sign-ins are evicted instead, and whoever
 * finishes an evicted one is told to start again. In memory, per gateway process.
 */
export class PendingSignIns {
  private readonly byKey = new Map<string, { state: string; at: number }[]>();
  private readonly keyOf = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly options: PendingSignInsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Adds a sign-in started by `key`; returns the states of the sign-ins evicted to make room. */
  add(key: string, state: string): string[] {
    const now = this.now();
    if (this.byKey.size > MAX_KEYS) this.prune(now);
    const since = now - this.options.windowSeconds * 1000;
    const pending = this.byKey.get(key) ?? [];
    const evicted: string[] = [];
    while (pending.length > 0 && pending[0]!.at <= since) this.keyOf.delete(pending.shift()!.state);
    pending.push({ state, at: now });
    this.keyOf.set(state, key);
    while (pending.length > this.options.maxPending) {
      const oldest = pending.shift()!;
      this.keyOf.delete(oldest.state);
      evicted.push(oldest.state);
    }
    this.byKey.set(key, pending);
    return evicted;
  }

  /** A sign-in used up (its callback came): it no longer takes a place. */
  forget(state: string): void {
    const key = this.keyOf.get(state);
    if (key === undefined) return;
    this.keyOf.delete(state);
    const pending = this.byKey.get(key)?.filter((p) => p.state !== state) ?? [];
    if (pending.length === 0) this.byKey.delete(key);
    else this.byKey.set(key, pending);
  }

  private prune(now: number): void {
    const since = now - this.options.windowSeconds * 1000;
    for (const [key, pending] of this.byKey) {
      if (pending.every((p) => p.at <= since)) {
        for (const p of pending) this.keyOf.delete(p.state);
        this.byKey.delete(key);
      }
    }
  }
}

/**
 * The key an address is bounded under: an IPv4 address as is (also when IPv4-mapped), an IPv6
 * address by its /64 (one host usually holds a whole /64, and may pick any address in it).
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return `ip:${mapped[1]}`;
  if (!isIPv6(ip.split('%')[0]!)) return `ip:${ip}`;
  const bare = ip.split('%')[0]!.toLowerCase();
  const [head, tail] = bare.includes('::') ? (bare.split('::') as [string, string]) : [bare, undefined];
  const groupsOf = (part: string | undefined) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const first = groupsOf(head);
  const last = tail === undefined ? [] : groupsOf(tail);
  const groups = tail === undefined ? first : [...first, ...Array<string>(Math.max(0, 8 - first.length - last.length)).fill('0'), ...last];
  return `ip6:${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * The device codes this gateway handed out (as hashes), until they expire. A poll with any other
 * code is answered here, without a client-authenticated request to the provider and without an
 * audit row: made-up codes cost nothing to send and try nobody's credentials.
 */
export class KnownDeviceCodes {
  private readonly codes = new Map<string, number>();
  private readonly now: () => number;

  constructor(now?: () => number) {
    this.now = now ?? Date.now;
  }

  remember(code: string, expiresInSeconds: number): void {
    const now = this.now();
    if (this.codes.size >= MAX_KEYS) {
      for (const [hash, until] of this.codes) if (until <= now) this.codes.delete(hash);
      // Still full: the oldest goes (its client is told to start again).
      for (const hash of this.codes.keys()) {
        if (this.codes.size < MAX_KEYS) break;
        this.codes.delete(hash);
      }
    }
    this.codes.set(hashOf(code), now + Math.max(1, expiresInSeconds) * 1000);
  }

  /** 'known' while it may be polled, 'expired' once its time is up, else 'unknown'. */
  status(code: string): 'known' | 'expired' | 'unknown' {
    const until = this.codes.get(hashOf(code));
    if (until === undefined) return 'unknown';
    return until > this.now() ? 'known' : 'expired';
  }

  forget(code: string): void {
    this.codes.delete(hashOf(code));
  }
}

function hashOf(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}
