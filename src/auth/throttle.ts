// Slows down, then refuses, repeated failed logins for one username or one client address, so
// guessing passwords costs an attacker time without locking a user out for long. Kept in the store
// (login_throttle), so every gateway over one database counts the same failures and refuses the same
// lockouts: an attacker spreading guesses over the replicas behind a load balancer gains nothing.
// Keys are stored as SHA-256 hashes only (the audit trail is where attempted names are recorded).
import { createHash, randomUUID } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Store } from '../store/index.js';
import { GatehouseError } from '../wire/index.js';

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

/** A login let through by begin(): its reserved failure rows, settled by failure(), success() or release(). */
export interface ThrottleAttempt {
  id: string;
  keys: string[];
}

const MAX_DELAY_MS = 4_000;
const MAX_KEYS = 100_000;
/** Old rows are deleted at most this often per gateway (by whichever login comes first). */
const PRUNE_EVERY_MS = 60_000;

/**
 * Failures and lockouts as rows of login_throttle: a failure is (key, at, null), a lockout is
 * (key, at, locked_until). Rows are only inserted and deleted, never updated, so two replicas
 * recording failures at once cannot lose one (no read-modify-write of a shared counter).
 * A login through begin() reserves its failure rows before the password is tried and counts them
 * with every other in flight: of N guesses racing at the limit, on one gateway or several, only
 * those within the limit are tried (a check alone would let all N through before any failed).
 * Every statement that cannot reach the store throws 503 not_ready: a login is never let through unchecked.
 */
export class LoginThrottle {
  private readonly now: () => number;
  private prunedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly options: ThrottleOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Before an attempt: is any key locked, and how long should the answer wait? */
  async check(keys: string[]): Promise<ThrottleVerdict> {
    return closed(() => this.checkNow(keys));
  }

  /**
   * Before trying a password: check(), then reserve this attempt's failure rows and count them with
   * every attempt in the window, in flight or failed, through any gateway. Past a key's limit the
   * reservation is withdrawn and the attempt refused (retry after 1 s: the attempts ahead of it
   * decide the lockout). Otherwise the attempt is let through and must be settled.
   */
  async begin(keys: string[]): Promise<ThrottleVerdict & { attempt?: ThrottleAttempt }> {
    return closed(async () => {
      const verdict = await this.checkNow(keys);
      if (verdict.retryAfterSeconds !== undefined) return verdict;
      const now = this.now();
      const attempt = { id: randomUUID(), keys };
      const hashes = keys.map(throttleKeyHash);
      await this.store.db
        .insertInto('login_throttle')
        .values(hashes.map((key_hash) => ({ key_hash, at: now, locked_until: null, attempt: attempt.id })))
        .execute();
      // Each insert commits before its count, so the k-th reservation to commit counts at least k:
      // at most `limit` attempts per key pass, however they race. A lockout taken meanwhile deletes
      // the failures it spent, so it is read after the count: its row is inserted before that delete,
      // and a count that missed the deleted failures is followed by a read that sees the lockout.
      const counts = await this.counts(hashes, now);
      const after = await this.checkNow(keys);
      for (const [i, key] of keys.entries()) {
        if (after.retryAfterSeconds === undefined && (counts.get(hashes[i]!) ?? 0) <= this.limit(key)) continue;
        await this.withdraw(attempt);
        return after.retryAfterSeconds !== undefined ? after : { delayMs: 0, retryAfterSeconds: 1, key };
      }
      return { ...verdict, attempt };
    });
  }

  /** A failed attempt: counted (already, when begin() reserved it), and the keys at their limit locked. */
  async failure(keys: string[], attempt?: ThrottleAttempt): Promise<void> {
    await closed(async () => {
      const now = this.now();
      await this.prune(now);
      const hashes = keys.map(throttleKeyHash);
      if (!attempt) {
        await this.store.db
          .insertInto('login_throttle')
          .values(hashes.map((key_hash) => ({ key_hash, at: now, locked_until: null, attempt: null })))
          .execute();
      }
      // Counted after the insert: every replica's failures in the window, this one included.
      const counts = await this.counts(hashes, now);
      for (const [i, key] of keys.entries()) {
        const hash = hashes[i]!;
        if ((counts.get(hash) ?? 0) < this.limit(key)) continue;
        // Locked: the failures that led here are spent, so the count starts again after the lockout.
        await this.store.db.insertInto('login_throttle').values({ key_hash: hash, at: now, locked_until: now + this.options.lockoutSeconds * 1000, attempt: null }).execute();
        await this.store.db.deleteFrom('login_throttle').where('key_hash', '=', hash).where('locked_until', 'is', null).where('at', '<=', now).execute();
      }
    });
  }

  /**
   * A success forgives the username, not the address: one good account must not reset a spray. Only
   * this attempt's own reservation on the address is withdrawn (a success is not a failure).
   */
  async success(usernameKey: string, attempt?: ThrottleAttempt): Promise<void> {
    await closed(async () => {
      await this.store.db.deleteFrom('login_throttle').where('key_hash', '=', throttleKeyHash(usernameKey)).execute();
      if (attempt) await this.withdraw(attempt);
    });
  }

  /** An attempt that tried no credential (the directory was down, say): its reservation is withdrawn. */
  async release(attempt: ThrottleAttempt): Promise<void> {
    await closed(() => this.withdraw(attempt));
  }

  private async checkNow(keys: string[]): Promise<ThrottleVerdict> {
    const now = this.now();
    const hashes = keys.map(throttleKeyHash);
    const rows = await this.store.db
      .selectFrom('login_throttle')
      .select((eb) => ['key_hash', eb.fn.countAll<string | number>().filterWhere('locked_until', 'is', null).as('failures'), eb.fn.max('locked_until').as('locked_until')])
      .where('key_hash', 'in', hashes)
      .where((eb) => eb.or([eb.and([eb('locked_until', 'is', null), eb('at', '>', now - this.options.windowSeconds * 1000)]), eb('locked_until', '>', now)]))
      .groupBy('key_hash')
      .execute();
    const byHash = new Map(rows.map((r) => [r.key_hash, { failures: Number(r.failures), lockedUntil: r.locked_until === null ? 0 : Number(r.locked_until) }]));
    let delayMs = 0;
    for (const [i, key] of keys.entries()) {
      const entry = byHash.get(hashes[i]!);
      if (!entry) continue;
      if (entry.lockedUntil > now) return { delayMs: 0, retryAfterSeconds: Math.ceil((entry.lockedUntil - now) / 1000), key };
      // Only a username is slowed down: an address may be a whole office behind one NAT, so it
      // gets the (higher) lockout alone, and one person's typos do not slow their colleagues.
      if (isAddressKey(key)) continue;
      const over = entry.failures - this.options.slowdownAfter;
      if (over >= 0) delayMs = Math.max(delayMs, Math.min(MAX_DELAY_MS, 250 * 2 ** over));
    }
    return { delayMs };
  }

  /** Failures (and reservations) per key in the window, every replica's. */
  private async counts(hashes: string[], now: number): Promise<Map<string, number>> {
    const rows = await this.store.db
      .selectFrom('login_throttle')
      .select((eb) => ['key_hash', eb.fn.countAll<string | number>().as('failures')])
      .where('key_hash', 'in', hashes)
      .where('locked_until', 'is', null)
      .where('at', '>', now - this.options.windowSeconds * 1000)
      .groupBy('key_hash')
      .execute();
    return new Map(rows.map((r) => [r.key_hash, Number(r.failures)]));
  }

  private limit(key: string): number {
    return isAddressKey(key) ? this.options.maxFailuresPerAddress : this.options.maxFailures;
  }

  private async withdraw(attempt: ThrottleAttempt): Promise<void> {
    await this.store.db.deleteFrom('login_throttle').where('key_hash', 'in', attempt.keys.map(throttleKeyHash)).where('attempt', '=', attempt.id).execute();
  }

  /** Deletes failures past the window and lockouts that have ended, at most once a minute per gateway. */
  private async prune(now: number): Promise<void> {
    if (now - this.prunedAt < PRUNE_EVERY_MS) return;
    this.prunedAt = now;
    const since = now - this.options.windowSeconds * 1000;
    await this.store.db
      .deleteFrom('login_throttle')
      .where((eb) => eb.or([eb.and([eb('locked_until', 'is', null), eb('at', '<=', since)]), eb('locked_until', '<=', now)]))
      .execute();
  }
}

/** The store could not be reached: refuse (503), never let a login through unchecked. */
async function closed<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof GatehouseError) throw err;
    throw new GatehouseError('not_ready', 'the gateway cannot reach its store; try again shortly');
  }
}

/** A username key is user:<name>; address keys are ip:<v4> and ip6:<prefix>::/64 (addressKey). */
function isAddressKey(key: string): boolean {
  return key.startsWith('ip:') || key.startsWith('ip6:');
}

/**
 * What the store keeps for a throttle key: its hash, never the username or address itself. An
 * address key (ip:<address>) counts by addressKey's rule, so an IPv6 host cannot step around its
 * lockout by picking another address in its /64.
 */
export function throttleKeyHash(key: string): string {
  const canonical = key.startsWith('ip:') ? addressKey(key.slice(3)) : key;
  return createHash('sha256').update(`gatehouse-login-throttle\0${canonical}`).digest('base64url');
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
  // The zone id first (it names the local interface, not the host), then an IPv4-mapped address in
  // either spelling (dotted or hex), so no spelling of one IPv4 host lands on a key of its own.
  const bare = ip.split('%')[0]!.toLowerCase();
  const mapped = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(bare);
  if (mapped && isIPv6(bare)) return `ip:${mapped[1]}`;
  const hexMapped = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(bare);
  if (hexMapped && isIPv6(bare)) {
    const [hi, lo] = [Number.parseInt(hexMapped[1]!, 16), Number.parseInt(hexMapped[2]!, 16)];
    return `ip:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  if (!isIPv6(bare)) return `ip:${ip}`;
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
