// An attacker's review of the memory of live logins (src/auth/live-logins.ts, issue 21 point 3): a
// login once found live is not read from the embedded store again until someone else writes it.
// Each test tries to use a token after its login ended: revoked by this gateway (through the same
// service, another service over the same handle, while lookups are in flight), revoked or deleted
// by another gateway process over the same file (a second handle, written directly as a replica
// would), and the store gone. In the postgres project nothing is kept and the same answers must hold.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { liveLoginsOf } from '../../src/auth/live-logins.js';
import { SigningKeys } from '../../src/auth/signing-keys.js';
import { TokenError } from '../../src/auth/token-error.js';
import { TokenService } from '../../src/auth/tokens.js';
import { openStore, type Store } from '../../src/store/index.js';
import { GatehouseError } from '../../src/wire/index.js';
import { onPostgres, testDatabase } from '../support/test-store.js';

const ISSUER = 'urn:gatehouse:live-review';
const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'ldap' as const };
const KEYS = { rotationSeconds: 3600, tokenLifetimeSeconds: 900 };

let clock: number;
let dir: string;
let stores: Store[];
let database: ReturnType<typeof testDatabase>;

/** A handle on this test's one database: a second one stands for another gateway process. */
async function open(): Promise<Store> {
  const db = database;
  const store = await openStore(db ? { stateDir: dir, url: db.url, password: db.password } : { stateDir: dir });
  stores.push(store);
  return store;
}

async function service(store: Store): Promise<TokenService> {
  const keys = await SigningKeys.open(store, { ...KEYS, now: () => clock });
  return new TokenService(store, keys, { issuer: ISSUER, accessTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: () => clock });
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    if (err instanceof GatehouseError) return `${err.status} ${err.code}`;
    throw err;
  }
  return 'accepted';
}

/** Uses the token a few times, so its login is confirmed live and answered from memory where it can be. */
async function warm(tokens: TokenService, token: string): Promise<void> {
  for (let i = 0; i < 3; i++) expect(await outcome(tokens.verifyAccess(token))).toBe('accepted');
}

beforeEach(() => {
  clock = Date.parse('2026-12-03T12:00:00Z');
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-live-review-'));
  database = testDatabase();
  stores = [];
});
afterEach(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
});

describe('a login kept live in memory', () => {
  it('is kept on the embedded store only, and dropped by any commit of another connection', async () => {
    const a = await open();
    const live = liveLoginsOf(a);
    if (onPostgres()) {
      expect(live).toBeNull(); // no counter of other connections' commits: every request reads the store
      return;
    }
    expect(live).not.toBeNull();
    const tokens = await service(a);
    const pair = await tokens.login(ALICE);
    await warm(tokens, pair.access_token);
    expect(live!.isLive(pair.session_id)).toBe(true);
    const b = await open();
    await b.db.insertInto('instance').values({ id: 'unrelated', created_at: new Date(clock).toISOString() }).onConflict((c) => c.doNothing()).execute();
    await b.db.deleteFrom('instance').where('id', '=', 'unrelated').execute();
    expect(live!.isLive(pair.session_id)).toBe(false); // anything written elsewhere: read again
    await warm(tokens, pair.access_token);
    expect(live!.isLive(pair.session_id)).toBe(true);
    // Inside one of our own transactions the counter may lag another's commit: nothing is answered from memory.
    await a.db.transaction().execute(async () => {
      expect(live!.isLive(pair.session_id)).toBe(false);
    });
  });

  it('is refused at once after a logout through the same service', async () => {
    const tokens = await service(await open());
    const pair = await tokens.login(ALICE);
    await warm(tokens, pair.access_token);
    expect(await tokens.revoke(pair.session_id, 'logout')).toBe(true);
    expect(await outcome(tokens.verifyAccess(pair.access_token))).toBe('revoked');
  });

  it('is refused at once after a revocation through another service over the same handle (which this one never heard of)', async () => {
    const a = await open();
    const [one, two] = [await service(a), await service(a)];
    const pair = await one.login(ALICE);
    await warm(two, pair.access_token);
    expect(await one.revoke(pair.session_id, 'logout')).toBe(true);
    expect(two.isRevoked(pair.session_id)).toBe(false); // not through its own revoked set
    expect(await outcome(two.verifyAccess(pair.access_token))).toBe('revoked');
  });

  it('is refused at the next request once another gateway over the store has revoked or deleted it', async () => {
    const [a, b] = [await open(), await open()];
    const tokens = await service(a);
    const revoked = await tokens.login(ALICE);
    const deleted = await tokens.login(ALICE);
    await warm(tokens, revoked.access_token);
    await warm(tokens, deleted.access_token);
    // What another process writes: straight to the file (or database), nothing said to this one.
    await b.db.updateTable('token_families').set({ revoked_at: new Date(clock).toISOString(), revoke_reason: 'logout' }).where('id', '=', revoked.session_id).execute();
    expect(await outcome(tokens.verifyAccess(revoked.access_token))).toBe('revoked');
    await warm(tokens, deleted.access_token); // confirmed again after that commit
    await b.db.deleteFrom('refresh_tokens').where('family_id', '=', deleted.session_id).execute();
    await b.db.deleteFrom('token_families').where('id', '=', deleted.session_id).execute();
    expect(await outcome(tokens.verifyAccess(deleted.access_token))).toBe('revoked');
  });

  it('never keeps an answer from a lookup that raced a revocation on this gateway', async () => {
    const a = await open();
    const [one, two] = [await service(a), await service(a)];
    for (let round = 0; round < 20; round++) {
      const pair = await one.login(ALICE);
      await two.verifyAccess(pair.access_token); // the signature cached: the lookups race the revoke
      const before = Array.from({ length: 8 }, () => two.verifyAccess(pair.access_token).catch(() => undefined));
      await one.revoke(pair.session_id, 'logout');
      const after = await Promise.all(Array.from({ length: 8 }, () => outcome(two.verifyAccess(pair.access_token))));
      expect(new Set(after)).toEqual(new Set(['revoked']));
      await Promise.all(before);
      expect(await outcome(two.verifyAccess(pair.access_token))).toBe('revoked');
    }
  });

  it('is refused (503), not answered from memory, once the store is out of reach', async () => {
    const a = await open();
    const tokens = await service(a);
    const pair = await tokens.login(ALICE);
    await warm(tokens, pair.access_token);
    await a.close();
    expect(await outcome(tokens.verifyAccess(pair.access_token))).toBe('503 not_ready');
  });
});
