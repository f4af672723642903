// An attacker's review of the shared login protection (issue 18, point 4): two store handles on one
// database stand for two gateways (the embedded file opened twice, or two pools on one PostgreSQL
// database in the postgres project). Each test is an attack: guesses racing at the lockout limit
// through both gateways, address spellings, a success erasing failures, a token whose login the
// store does not hold, a revocation racing a batched lookup, and the store going away mid-login.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SigningKeys } from '../../src/auth/signing-keys.js';
import { addressKey, LoginThrottle, type ThrottleOptions, throttleKeyHash } from '../../src/auth/throttle.js';
import { TokenError } from '../../src/auth/token-error.js';
import { TokenService } from '../../src/auth/tokens.js';
import { openStore, type Store } from '../../src/store/index.js';
import { GatehouseError } from '../../src/wire/index.js';
import { testDatabase } from '../support/test-store.js';

const ISSUER = 'urn:gatehouse:review';
const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'ldap' as const };
const KEYS = { rotationSeconds: 3600, tokenLifetimeSeconds: 900 };
const options: ThrottleOptions = { maxFailures: 4, maxFailuresPerAddress: 6, windowSeconds: 600, lockoutSeconds: 900, slowdownAfter: 100, now: () => clock };

let clock: number;
let dir: string;
let stores: Store[];
let database: ReturnType<typeof testDatabase>;

/** Another handle on this test's one database (testDatabase() makes a fresh one per call). */
function open(): Promise<Store> {
  const db = database;
  return openStore(db ? { stateDir: dir, url: db.url, password: db.password } : { stateDir: dir });
}

async function twoReplicas(): Promise<[Store, Store]> {
  const first = await open(); // migrates
  const second = await open();
  stores.push(first, second);
  return [first, second];
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    if (err instanceof GatehouseError) return `${err.status} ${err.code}`;
    return `other: ${String(err)}`;
  }
  return 'accepted';
}

async function tokenServices(a: Store, b: Store) {
  const [ka, kb] = await Promise.all([SigningKeys.open(a, { ...KEYS, now: () => clock }), SigningKeys.open(b, { ...KEYS, now: () => clock })]);
  const o = { issuer: ISSUER, accessTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: () => clock };
  return [new TokenService(a, ka, o), new TokenService(b, kb, o)] as const;
}

beforeEach(() => {
  clock = Date.parse('2026-12-02T12:00:00Z');
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-shared-review-'));
  database = testDatabase();
  stores = [];
});
afterEach(async () => {
  for (const s of stores) await s.close();
});

describe('guessing past the shared lockout', () => {
  it('lets at most max_failures of many guesses racing through two gateways try a password', async () => {
    const [a, b] = await twoReplicas();
    const gateways = [new LoginThrottle(a, options), new LoginThrottle(b, options)];
    // Twenty guesses for one username, all in flight at once, half through each gateway, from
    // twenty addresses. A check alone lets all twenty through before the first has failed.
    const tried = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const keys = ['user:victim', `ip:198.51.100.${i + 1}`];
        const gateway = gateways[i % 2]!;
        const verdict = await gateway.begin(keys);
        if (verdict.retryAfterSeconds !== undefined) return false;
        await gateway.failure(keys, verdict.attempt); // the password was wrong
        return true;
      }),
    );
    // Past the limit a guess is refused (retry after 1 s), its reservation withdrawn: a storm may
    // let none through, never more than the limit.
    let guesses = tried.filter(Boolean).length;
    expect(guesses).toBeLessThanOrEqual(options.maxFailures);
    // Guessing on, one at a time: the lockout comes after max_failures in all, storm included (or
    // sooner: a failure counts the storm's reservations still in flight when it is recorded).
    for (let i = 0; ; i++) {
      const keys = ['user:victim', `ip:198.51.100.${100 + i}`];
      const verdict = await gateways[i % 2]!.begin(keys);
      if (verdict.retryAfterSeconds !== undefined) {
        expect(verdict.retryAfterSeconds).toBe(900);
        break;
      }
      await gateways[i % 2]!.failure(keys, verdict.attempt);
      guesses++;
    }
    expect(guesses).toBeLessThanOrEqual(options.maxFailures);
  });

  it('does not let a success through another account erase failures counted on the address', async () => {
    const [a, b] = await twoReplicas();
    const one = new LoginThrottle(a, { ...options, maxFailuresPerAddress: 3 });
    const two = new LoginThrottle(b, { ...options, maxFailuresPerAddress: 3 });
    const ip = 'ip:203.0.113.9';
    for (const user of ['u1', 'u2']) {
      const v = await one.begin([`user:${user}`, ip]);
      await one.failure([`user:${user}`, ip], v.attempt);
    }
    // The attacker logs in to their own account from the same address, through the other gateway.
    const own = await two.begin(['user:mallory', ip]);
    await two.success('user:mallory', own.attempt);
    const third = await one.begin(['user:u3', ip]);
    await one.failure(['user:u3', ip], third.attempt);
    expect((await two.check(['user:u4', ip])).key).toBe(ip);
  });

  it('does not count successes against an address (an office behind one NAT logs in all day)', async () => {
    const [a, b] = await twoReplicas();
    const gateways = [new LoginThrottle(a, { ...options, maxFailuresPerAddress: 3 }), new LoginThrottle(b, { ...options, maxFailuresPerAddress: 3 })];
    const ip = 'ip:192.0.2.200';
    for (let i = 0; i < 10; i++) {
      const gateway = gateways[i % 2]!;
      const v = await gateway.begin([`user:colleague${i}`, ip]);
      expect(v.retryAfterSeconds).toBeUndefined();
      await gateway.success(`user:colleague${i}`, v.attempt);
    }
    expect(await gateways[0]!.check(['user:colleague0', ip])).toEqual({ delayMs: 0 });
  });

  it('counts every spelling of one host on one key: IPv4-mapped (dotted or hex), zone ids, /64 spellings', () => {
    const v4 = throttleKeyHash('ip:192.0.2.1');
    for (const spelling of ['::ffff:192.0.2.1', '::FFFF:192.0.2.1', '::ffff:c000:201', '0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1%eth0', '::ffff:c000:201%2']) {
      expect(throttleKeyHash(`ip:${spelling}`), spelling).toBe(v4);
    }
    const v6 = throttleKeyHash('ip:2001:db8:1:2::1');
    for (const spelling of ['2001:DB8:1:2:0:0:0:1', '2001:0db8:0001:0002::ffff', '2001:db8:1:2::1%eth0', '2001:db8:1:2:aaaa::1.2.3.4']) {
      expect(throttleKeyHash(`ip:${spelling}`), spelling).toBe(v6);
    }
    // Not every mapped-looking address is IPv4: ::ffff:0:0/96 is another prefix, and stays IPv6.
    expect(addressKey('::ffff:0:c000:201')).toMatch(/^ip6:/);
    expect(addressKey('::1:ffff:c000:201')).toMatch(/^ip6:/);
  });
});

describe('revocation across gateways', () => {
  it('refuses a token whose login the store does not hold (a deleted login, a restored backup)', async () => {
    const [a, b] = await twoReplicas();
    const [one, two] = await tokenServices(a, b);
    const pair = await one.login(ALICE);
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('accepted'); // cached on two
    await a.db.deleteFrom('refresh_tokens').where('family_id', '=', pair.session_id).execute();
    await a.db.deleteFrom('token_families').where('id', '=', pair.session_id).execute();
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('revoked');
    const [fresh] = await tokenServices(b, a); // an uncached verification, on a gateway that never saw it
    expect(await outcome(fresh.verifyAccess(pair.access_token))).toBe('revoked');
  });

  it('never answers a request from a revocation lookup started before the revocation committed', async () => {
    const [a, b] = await twoReplicas();
    const [one, two] = await tokenServices(a, b);
    const pair = await one.login(ALICE);
    await two.verifyAccess(pair.access_token); // cached: only the revocation lookup remains per request
    for (let round = 0; round < 20; round++) {
      const other = await one.login(ALICE);
      await two.verifyAccess(other.access_token);
      // Lookups in flight on two while one revokes; every request made after the revoke returned is refused.
      const before = Array.from({ length: 8 }, () => two.verifyAccess(other.access_token).catch(() => undefined));
      await one.revoke(other.session_id, 'logout');
      const after = await Promise.all(Array.from({ length: 8 }, () => outcome(two.verifyAccess(other.access_token))));
      expect(new Set(after)).toEqual(new Set(['revoked']));
      await Promise.all(before);
    }
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('accepted');
  });
});

describe('the store out of reach', () => {
  it('refuses verification with 503, cached token or not, and a certificate-free gateway never accepts', async () => {
    const [a] = await twoReplicas();
    const b = await open();
    const [one, two] = await tokenServices(a, b);
    const pair = await one.login(ALICE);
    const later = await one.login(ALICE);
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('accepted'); // cached on two
    await b.close();
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('503 not_ready');
    expect(await outcome(two.verifyAccess(later.access_token))).toBe('503 not_ready');
  });

  it('refuses a login attempt with 503 when the throttle cannot be read or written', async () => {
    await twoReplicas();
    const b = await open();
    const throttle = new LoginThrottle(b, options);
    const keys = ['user:alice', 'ip:192.0.2.1'];
    const v = await throttle.begin(keys);
    await b.close();
    expect(await outcome(throttle.check(keys))).toBe('503 not_ready');
    expect(await outcome(throttle.begin(keys))).toBe('503 not_ready');
    expect(await outcome(throttle.failure(keys, v.attempt))).toBe('503 not_ready');
    expect(await outcome(throttle.success('user:alice', v.attempt))).toBe('503 not_ready');
  });
});

describe('signing keys across gateways', () => {
  it("publishes on one gateway, at once, the key another has just rotated to, and accepts its tokens", async () => {
    const [a, b] = await twoReplicas();
    const [one, two] = await tokenServices(a, b);
    const [ka, kb] = await Promise.all([SigningKeys.open(a, { ...KEYS, now: () => clock }), SigningKeys.open(b, { ...KEYS, now: () => clock })]);
    clock += KEYS.rotationSeconds * 1000;
    const rotated = (await ka.signing()).kid; // only the first gateway has rotated
    expect((await kb.jwksFresh()).keys.map((k) => k.kid)).toContain(rotated);
    const pair = await one.login(ALICE);
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('accepted');
  });
});
