// Login protection shared by several gateways over one store (issue 18, point 4): two handles on one
// database stand for two replicas (two connections to one SQLite file, or two pools on one PostgreSQL
// database in the postgres project). Failed logins through one count on the other and lock out on
// both; a logout through one is refused by the other at the next request; two gateways opening or
// rotating the signing keys at the same moment agree on one key and one JWKS.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SigningKeys } from '../src/auth/signing-keys.js';
import { LoginThrottle, type ThrottleOptions } from '../src/auth/throttle.js';
import { TokenError } from '../src/auth/token-error.js';
import { TokenService } from '../src/auth/tokens.js';
import { openStore, type Store } from '../src/store/index.js';
import { testDatabase } from './support/test-store.js';

const ISSUER = 'urn:gatehouse:shared';
const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'ldap' as const };
const KEYS = { rotationSeconds: 3600, tokenLifetimeSeconds: 900 };

let clock: number;
let stores: Store[];

/** Two stores on one database: the embedded file opened twice, or one PostgreSQL database through two pools. */
async function twoReplicas(): Promise<[Store, Store]> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-shared-login-'));
  const db = testDatabase();
  const open = () => openStore(db ? { stateDir: dir, url: db.url, password: db.password } : { stateDir: dir });
  const first = await open(); // migrates
  const second = await open();
  stores.push(first, second);
  return [first, second];
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    throw err;
  }
  return 'accepted';
}

beforeEach(() => {
  clock = Date.parse('2026-12-02T12:00:00Z');
  stores = [];
});
afterEach(async () => {
  for (const s of stores) await s.close();
});

describe('the failed-login throttle across replicas', () => {
  const options: ThrottleOptions = { maxFailures: 4, maxFailuresPerAddress: 6, windowSeconds: 600, lockoutSeconds: 900, slowdownAfter: 2, now: () => clock };

  it('counts failures through either replica, slows down and locks out on both', async () => {
    const [a, b] = await twoReplicas();
    const one = new LoginThrottle(a, options);
    const two = new LoginThrottle(b, options);
    const keys = (ip: string) => ['user:alice', `ip:${ip}`];
    await one.failure(keys('192.0.2.1'));
    await two.failure(keys('192.0.2.2'));
    // Two failures, one on each: the slow-down starts at slowdown_after on both.
    expect(await one.check(keys('192.0.2.1'))).toEqual({ delayMs: 250 });
    expect(await two.check(keys('192.0.2.2'))).toEqual({ delayMs: 250 });
    await one.failure(keys('192.0.2.1'));
    expect((await two.check(keys('192.0.2.2'))).delayMs).toBe(500);
    await two.failure(keys('192.0.2.2')); // the fourth: locked
    for (const t of [one, two]) expect(await t.check(keys('192.0.2.9'))).toEqual({ delayMs: 0, retryAfterSeconds: 900, key: 'user:alice' });
    // Another username from the same addresses is not locked.
    expect(await one.check(['user:bob', 'ip:192.0.2.1'])).toEqual({ delayMs: 0 });
    // The lockout ends for both at once, and the count starts again.
    clock += 900_000 + 1;
    expect(await two.check(keys('192.0.2.1'))).toEqual({ delayMs: 0 });
  });

  it('counts failures racing on both replicas without losing one', async () => {
    const [a, b] = await twoReplicas();
    const replicas = [new LoginThrottle(a, options), new LoginThrottle(b, options)];
    // Three each, at once, for one username: six failures recorded, so the fourth locked it.
    await Promise.all(Array.from({ length: 6 }, (_, i) => replicas[i % 2]!.failure([`user:carol`, `ip:198.51.100.${i}`])));
    expect((await replicas[1]!.check(['user:carol', 'ip:198.51.100.200'])).retryAfterSeconds).toBe(900);
  });

  it('locks an IPv6 address by its /64, whichever address in it and whichever replica', async () => {
    const [a, b] = await twoReplicas();
    const one = new LoginThrottle(a, options);
    const two = new LoginThrottle(b, options);
    for (let i = 1; i <= 6; i++) await (i % 2 ? one : two).failure([`user:u${i}`, `ip:2001:db8:1:2::${i.toString(16)}`]);
    const verdict = await two.check(['user:someone', 'ip:2001:db8:1:2:ffff:ffff:ffff:ffff']);
    expect(verdict).toEqual({ delayMs: 0, retryAfterSeconds: 900, key: 'ip:2001:db8:1:2:ffff:ffff:ffff:ffff' });
    expect(await one.check(['user:someone', 'ip:2001:db8:1:3::1'])).toEqual({ delayMs: 0 });
  });

  it('forgives a username after a success on another replica, not the address', async () => {
    const [a, b] = await twoReplicas();
    const strict = { ...options, maxFailuresPerAddress: 3 };
    const one = new LoginThrottle(a, strict);
    const two = new LoginThrottle(b, strict);
    await one.failure(['user:dave', 'ip:203.0.113.7']);
    await one.failure(['user:dave', 'ip:203.0.113.7']);
    await two.success('user:dave');
    expect(await one.check(['user:dave', 'ip:203.0.113.8'])).toEqual({ delayMs: 0 });
    await two.failure(['user:erin', 'ip:203.0.113.7']);
    expect((await one.check(['user:dave', 'ip:203.0.113.7'])).key).toBe('ip:203.0.113.7');
  });

  it('stores hashed keys only, and prunes rows past the window and the lockout', async () => {
    const [a, b] = await twoReplicas();
    const one = new LoginThrottle(a, options);
    for (let i = 0; i < 4; i++) await one.failure(['user:frank', 'ip:192.0.2.77']);
    await one.failure(['user:grace', 'ip:2001:db8::77']);
    const rows = await b.db.selectFrom('login_throttle').selectAll().execute();
    const text = JSON.stringify(rows);
    for (const clear of ['frank', 'grace', '192.0.2', '2001:db8']) expect(text).not.toContain(clear);
    expect(rows.length).toBeGreaterThan(0);
    // Past the window and the lockout, the next failure's prune leaves only itself.
    clock += 900_000 + 61_000;
    await new LoginThrottle(b, options).failure(['user:heidi', 'ip:192.0.2.78']);
    expect(await b.db.selectFrom('login_throttle').selectAll().execute()).toHaveLength(2);
  });
});

describe('revocation across replicas', () => {
  async function tokenServices() {
    const [a, b] = await twoReplicas();
    const [ka, kb] = await Promise.all([SigningKeys.open(a, { ...KEYS, now: () => clock }), SigningKeys.open(b, { ...KEYS, now: () => clock })]);
    const options = { issuer: ISSUER, accessTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: () => clock };
    return [new TokenService(a, ka, options), new TokenService(b, kb, options)] as const;
  }

  it('refuses a login revoked through one replica on the other at once, even from its verified cache', async () => {
    const [one, two] = await tokenServices();
    const pair = await one.login(ALICE);
    expect((await two.verifyAccess(pair.access_token)).user).toBe('alice');
    expect((await two.verifyAccess(pair.access_token)).user).toBe('alice'); // now cached on two
    expect(await one.revoke(pair.session_id, 'logout')).toBe(true);
    expect(await reason(two.verifyAccess(pair.access_token))).toBe('revoked');
    expect(await reason(two.refresh(pair.refresh_token))).toBe('revoked');
    // Another login of the same person is untouched.
    const other = await one.login(ALICE);
    expect(await reason(two.verifyAccess(other.access_token))).toBe('accepted');
  });

  it('refuses on the first replica a login revoked for reuse on the second', async () => {
    const [one, two] = await tokenServices();
    const first = await one.login(ALICE);
    const second = await one.refresh(first.refresh_token);
    expect(await reason(one.verifyAccess(second.access_token))).toBe('accepted');
    expect(await reason(two.refresh(first.refresh_token))).toBe('reused'); // a replay, on the other replica
    expect(await reason(one.verifyAccess(second.access_token))).toBe('revoked');
  });
});

describe('signing keys across replicas', () => {
  const current = async (store: Store) => store.db.selectFrom('signing_keys').select('kid').where('signs_until', '>', new Date(clock).toISOString()).execute();

  it('two gateways opening an empty store at once agree on one current key and one JWKS', async () => {
    const [a, b] = await twoReplicas();
    const opened = await Promise.all([a, b, a, b].map((s) => SigningKeys.open(s, { ...KEYS, now: () => clock })));
    expect(await current(a)).toHaveLength(1);
    const kids = await Promise.all(opened.map(async (k) => (await k.signing()).kid));
    expect(new Set(kids).size).toBe(1);
    const jwks = opened.map((k) => JSON.stringify(k.jwks()));
    expect(new Set(jwks).size).toBe(1);
    expect(opened[0]!.jwks().keys).toHaveLength(1);
  });

  it('rotation racing on both replicas makes one new key, which both sign with and publish', async () => {
    const [a, b] = await twoReplicas();
    const keys = await Promise.all([a, b, a, b].map((s) => SigningKeys.open(s, { ...KEYS, now: () => clock })));
    const options = { issuer: ISSUER, accessTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: () => clock };
    const [one, two] = [new TokenService(a, keys[0]!, options), new TokenService(b, keys[1]!, options)];
    for (let round = 1; round <= 3; round++) {
      clock += KEYS.rotationSeconds * 1000; // every replica's key has reached its rotation time
      const kids = await Promise.all(keys.map(async (k) => (await k.signing()).kid));
      expect(new Set(kids).size).toBe(1);
      expect(await current(b)).toHaveLength(1);
      // The retired keys stay published until their tokens have expired, the same on every replica.
      const published = await Promise.all(keys.map(async (k) => JSON.stringify(await k.jwksFresh())));
      expect(new Set(published).size).toBe(1);
      expect(JSON.parse(published[0]!).keys.map((k: { kid: string }) => k.kid)).toContain(kids[0]);
      // A token from one replica is accepted by the other.
      const pair = await one.login(ALICE);
      expect(await reason(two.verifyAccess(pair.access_token))).toBe('accepted');
    }
    // Keys past their publication were deleted: the current one and the one it replaced are left.
    expect(await a.db.selectFrom('signing_keys').select('kid').execute()).toHaveLength(2);
  });
});
