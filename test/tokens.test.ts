// Gateway tokens against a real embedded store: issuing, verifying, every forged or tampered kind
// refused with its reason, refresh rotation with reuse detection, logout, key rotation.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SigningKeys } from '../src/auth/signing-keys.js';
import { TokenError } from '../src/auth/token-error.js';
import { TOKEN_AUDIENCE, TokenService } from '../src/auth/tokens.js';
import type { Store } from '../src/store/index.js';
import { openTestStore } from './support/test-store.js';

const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'ldap' as const };
const ISSUER = 'urn:gatehouse:test';

let store: Store;
let clock: number;
let keys: SigningKeys;
let tokens: TokenService;

async function service(issuer = ISSUER) {
  const k = await SigningKeys.open(store, { rotationSeconds: 3600, tokenLifetimeSeconds: 900, now: () => clock });
  const t = new TokenService(store, k, { issuer, accessTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: () => clock });
  await t.start();
  return { k, t };
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    throw err;
  }
  throw new Error('expected a TokenError, got success');
}

/** Signs claims with the store's real current key, to make tokens that only one claim makes wrong. */
async function signWithOurKey(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const row = await store.db.selectFrom('signing_keys').selectAll().orderBy('signs_until', 'desc').executeTakeFirstOrThrow();
  const now = Math.floor(clock / 1000);
  const base = { iss: ISSUER, aud: TOKEN_AUDIENCE, sub: 'alice', jti: 'j', iat: now, exp: now + 600, groups: ['analysts'], auth_method: 'ldap', sid: 'x' };
  return new SignJWT({ ...base, ...claims }).setProtectedHeader({ alg: 'EdDSA', kid: row.kid, ...header }).sign(createPrivateKey(row.private_pkcs8));
}

beforeEach(async () => {
  clock = Date.parse('2026-11-21T12:00:00Z');
  store = await openTestStore(mkdtempSync(join(tmpdir(), 'gatehouse-tokens-')));
  ({ k: keys, t: tokens } = await service());
});
afterEach(async () => {
  tokens.stop();
  await store.close();
});

describe('access tokens', () => {
  it('carry iss, aud, sub, groups, auth_method, jti and a kid, and verify to the same identity', async () => {
    const pair = await tokens.login(ALICE);
    expect(pair.expires_in).toBe(900);
    const claims = decodeJwt(pair.access_token);
    expect(claims).toMatchObject({ iss: ISSUER, aud: TOKEN_AUDIENCE, sub: 'alice', groups: ['analysts'], auth_method: 'ldap', jti: pair.jti, sid: pair.session_id });
    expect(claims.exp! - claims.iat!).toBe(900);
    const header = decodeProtectedHeader(pair.access_token);
    expect(header.alg).toBe('EdDSA');
    expect(keys.jwks().keys.map((k) => k.kid)).toContain(header.kid);
    const identity = await tokens.verifyAccess(pair.access_token);
    expect(identity).toMatchObject({ user: 'alice', groups: ['analysts'], auth_method: 'ldap', credential: 'bearer', session_id: pair.session_id });
  });

  it('refuses an expired token, and one not yet valid', async () => {
    const pair = await tokens.login(ALICE);
    clock += 901_000 + 30_000; // past exp and the clock tolerance
    expect(await reason(tokens.verifyAccess(pair.access_token))).toBe('expired');
    const future = await signWithOurKey({ nbf: Math.floor(clock / 1000) + 3600 });
    expect(await reason(tokens.verifyAccess(future))).toBe('not_yet_valid');
  });

  it('refuses alg none, HS256 signed with our public key, a foreign key, a tampered payload and an unknown kid', async () => {
    const pair = await tokens.login(ALICE);
    const [h, p] = pair.access_token.split('.') as [string, string, string];
    const claims = decodeJwt(pair.access_token);
    const header = decodeProtectedHeader(pair.access_token);

    const none = `${base64url.encode(JSON.stringify({ alg: 'none', kid: header.kid }))}.${p}.`;
    expect(await reason(tokens.verifyAccess(none))).toBe('alg_not_allowed');

    // Algorithm confusion: the public key (as published in the JWKS) used as an HMAC secret.
    const jwk = keys.jwks().keys[0]!;
    const publicPem = createPublicKey({ key: { ...jwk }, format: 'jwk' }).export({ format: 'pem', type: 'spki' });
    const confused = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: header.kid }).sign(new TextEncoder().encode(String(publicPem)));
    expect(await reason(tokens.verifyAccess(confused))).toBe('alg_not_allowed');

    const foreign = generateKeyPairSync('ed25519').privateKey;
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: header.kid }).sign(foreign);
    expect(await reason(tokens.verifyAccess(forged))).toBe('bad_signature');

    const promoted = base64url.encode(JSON.stringify({ ...claims, groups: ['platform-admins'] }));
    expect(await reason(tokens.verifyAccess(`${h}.${promoted}.${pair.access_token.split('.')[2]}`))).toBe('bad_signature');

    const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'nope' }).sign(foreign);
    expect(await reason(tokens.verifyAccess(unknownKid))).toBe('unknown_key');
    expect(await reason(tokens.verifyAccess('not.a.jwt'))).toBe('malformed');
  });

  it('refuses the wrong audience and the wrong issuer (another installation)', async () => {
    expect(await reason(tokens.verifyAccess(await signWithOurKey({ aud: 'slurm' })))).toBe('wrong_audience');
    const other = await service('urn:gatehouse:another');
    try {
      const theirs = await other.t.login(ALICE);
      expect(await reason(tokens.verifyAccess(theirs.access_token))).toBe('wrong_issuer');
    } finally {
      other.t.stop();
    }
  });

  it('stop working at once when the login is revoked, even from the verified cache', async () => {
    const pair = await tokens.login(ALICE);
    await tokens.verifyAccess(pair.access_token); // now cached
    expect(await tokens.revoke(pair.session_id, 'logout')).toBe(true);
    expect(await reason(tokens.verifyAccess(pair.access_token))).toBe('revoked');
    expect(await reason(tokens.refresh(pair.refresh_token))).toBe('revoked');
  });
});

describe('refresh tokens', () => {
  it('rotate on every use, keep the login, and are stored only as hashes', async () => {
    const first = await tokens.login(ALICE);
    const second = await tokens.refresh(first.refresh_token);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.session_id).toBe(first.session_id);
    expect((await tokens.verifyAccess(second.access_token)).user).toBe('alice');
    const stored = await store.db.selectFrom('refresh_tokens').select('hash').execute();
    expect(stored).toHaveLength(2);
    for (const { hash } of stored) expect([first.refresh_token, second.refresh_token]).not.toContain(hash);
  });

  it('revoke the whole login when a used one is presented again', async () => {
    const first = await tokens.login(ALICE);
    const second = await tokens.refresh(first.refresh_token);
    expect(await reason(tokens.refresh(first.refresh_token))).toBe('reused');
    // The thief's replay ended the victim's newer tokens too.
    expect(await reason(tokens.refresh(second.refresh_token))).toBe('revoked');
    expect(await reason(tokens.verifyAccess(second.access_token))).toBe('revoked');
  });

  it('let exactly one of two concurrent uses win', async () => {
    const first = await tokens.login(ALICE);
    const results = await Promise.allSettled([tokens.refresh(first.refresh_token), tokens.refresh(first.refresh_token)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('end with the login: no refresh past tokens.refresh_ttl, and the last access token stops at its end', async () => {
    const first = await tokens.login(ALICE);
    clock += 12 * 3600 * 1000 - 300_000; // five minutes before the login ends
    const late = await tokens.refresh(first.refresh_token);
    expect(late.expires_in).toBe(300);
    clock += 301_000;
    expect(await reason(tokens.refresh(late.refresh_token))).toBe('expired');
    expect(await reason(tokens.refresh('ghr_unknown'))).toBe('unknown');
    expect(await reason(tokens.refresh('garbage'))).toBe('malformed');
  });
});

describe('signing keys', () => {
  it('rotate on schedule and keep the old key published until its tokens have expired', async () => {
    clock += 3600 * 1000 - 10_000; // ten seconds before the rotation
    const before = await tokens.login(ALICE);
    const oldKid = decodeProtectedHeader(before.access_token).kid!;
    clock += 20_000;
    const after = await tokens.login(ALICE);
    const newKid = decodeProtectedHeader(after.access_token).kid!;
    expect(newKid).not.toBe(oldKid);
    expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual([oldKid, newKid].sort());
    // A token the old key signed just before the rotation still verifies...
    clock += 600_000;
    expect((await tokens.verifyAccess(before.access_token)).user).toBe('alice');
    expect(keys.jwks().keys.map((k) => k.kid)).toContain(oldKid);
    // ...and once every token it signed has expired, the key leaves the JWKS.
    clock += 900_000 + 60_000;
    expect(keys.jwks().keys.map((k) => k.kid)).toEqual([newKid]);
  });
});
