// A client certificate lives no longer than the login it was issued under, and a token lives no
// longer than tokens.access_ttl. The gateway's identity part runs in this process with an injected
// clock (test/support/identity-app.ts); TLS, the CA, the store and the trail are real.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/auth/certificate-request.js';
import { TOKEN_AUDIENCE } from '../../src/auth/tokens.js';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';

const HOUR = 3_600_000;
const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'oidc' as const };
let app: IdentityApp;
// Starts 11 h in the past, so a certificate issued 11 h into a login is issued at the real time:
// TLS checks a certificate's dates by the wall clock, the gateway by its own.
let clock = Date.now() - 11 * HOUR;

const json = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function refreshed(refreshToken: string): Promise<{ access_token: string; refresh_token: string }> {
  const r = await app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: refreshToken }));
  expect(r.status, r.body).toBe(200);
  return r.json();
}

async function certificateFor(accessToken: string): Promise<{ serial: string; cert: string; key: string; expires_at: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const r = await app.call('/v1/certs', json({ csr: csrPem }, bearer(accessToken)));
  expect(r.status, r.body).toBe(200);
  const body = r.json<{ serial: string; certificate: string; expires_at: string }>();
  return { serial: body.serial, cert: body.certificate, key: keyPem, expires_at: body.expires_at };
}

const loginEnd = async (sessionId: string) => Date.parse((await app.store.db.selectFrom('token_families').select('expires_at').where('id', '=', sessionId).executeTakeFirstOrThrow()).expires_at);
const lastRejection = () => app.events().filter((e) => e.action === 'auth.rejected').at(-1);

beforeAll(async () => {
  app = await startIdentityApp({ now: () => clock, config: { tokens: { access_ttl: '15m', refresh_ttl: '12h' }, certs: { client_ttl: '12h' } } });
}, 60_000);
afterAll(async () => {
  await app?.close();
});

describe('a certificate ends with its login', () => {
  it('issued 11 h into a 12 h login, it is valid for 1 h, not 12', async () => {
    const pair = await app.identity.tokens.login(ALICE);
    const end = await loginEnd(pair.session_id);
    clock = Date.now();
    expect(end - clock).toBeLessThanOrEqual(HOUR + 60_000);
    const late = await refreshed(pair.refresh_token);
    const cert = await certificateFor(late.access_token);
    expect(Date.parse(cert.expires_at)).toBeLessThanOrEqual(end);
    expect(Date.parse(new X509Certificate(cert.cert).validTo)).toBeLessThanOrEqual(end);
    const row = await app.store.db.selectFrom('client_certificates').selectAll().where('serial', '=', cert.serial).executeTakeFirstOrThrow();
    expect(Date.parse(row.not_after)).toBeLessThanOrEqual(end);
    expect((await app.call('/v1/whoami', { cert: cert.cert, key: cert.key })).json()).toMatchObject({ user: 'alice', credential: 'certificate' });
    // Past the login's end: refused (by the gateway's clock, whatever TLS thinks of the dates).
    clock = end + 1000;
    const after = await app.call('/v1/whoami', { cert: cert.cert, key: cert.key });
    expect(after.status, after.body).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'expired', actor: { user: 'alice' } });
  });

  it('a certificate stored with a later end than its login (before the cap) is refused once the login has ended', async () => {
    clock = Date.now();
    const pair = await app.identity.tokens.login(ALICE);
    const cert = await certificateFor(pair.access_token);
    const end = await loginEnd(pair.session_id);
    await app.store.db.updateTable('client_certificates').set({ not_after: new Date(end + 11 * HOUR).toISOString() }).where('serial', '=', cert.serial).execute();
    clock = end - 1000;
    expect((await app.call('/v1/whoami', { cert: cert.cert, key: cert.key })).status).toBe(200);
    clock = end + 1000;
    const after = await app.call('/v1/whoami', { cert: cert.cert, key: cert.key });
    expect(after.status, after.body).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'expired', actor: { user: 'alice' }, details: { session_id: pair.session_id } });
  });

  it('is refused when its login is ended by another gateway sharing the store (read from the store with the certificate)', async () => {
    clock = Date.now();
    const pair = await app.identity.tokens.login(ALICE);
    const cert = await certificateFor(pair.access_token);
    // What a replica's logout writes; this gateway's own revocation list has not been reloaded.
    await app.store.db.updateTable('token_families').set({ revoked_at: new Date(clock).toISOString(), revoke_reason: 'logout' }).where('id', '=', pair.session_id).execute();
    const r = await app.call('/v1/whoami', { cert: cert.cert, key: cert.key });
    expect(r.status, r.body).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'revoked', actor: { user: 'alice' } });
  });

  it('is not issued for a login that has ended', async () => {
    clock = Date.now();
    const pair = await app.identity.tokens.login(ALICE);
    await app.store.db.updateTable('token_families').set({ revoked_at: new Date(clock).toISOString(), revoke_reason: 'logout' }).where('id', '=', pair.session_id).execute();
    const count = async () => (await app.store.db.selectFrom('client_certificates').select('serial').where('family_id', '=', pair.session_id).execute()).length;
    const r = await app.call('/v1/certs', json({ csr: (await createKeyAndCsr()).csrPem }, bearer(pair.access_token)));
    expect(r.status, r.body).toBe(401);
    expect(await count()).toBe(0);
  });
});

describe('a token lives no longer than tokens.access_ttl', () => {
  /** A token signed with the gateway's real current key: only its lifetime is ours to choose. */
  async function minted(sessionId: string, lifetimeSeconds: number): Promise<string> {
    const key = await app.store.db.selectFrom('signing_keys').selectAll().orderBy('signs_until', 'desc').executeTakeFirstOrThrow();
    const iat = Math.floor(clock / 1000);
    return new SignJWT({ groups: ['analysts'], auth_method: 'oidc', sid: sessionId })
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'at+jwt' })
      .setIssuer(`urn:gatehouse:${app.store.instanceId}`)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject('alice')
      .setJti(`j-${lifetimeSeconds}`)
      .setIssuedAt(iat)
      .setExpirationTime(iat + lifetimeSeconds)
      .sign(createPrivateKey(key.private_pkcs8));
  }

  it('accepts one at the maximum and refuses one past it, with the reason recorded', async () => {
    clock = Date.now();
    const pair = await app.identity.tokens.login(ALICE);
    expect((await app.call('/v1/whoami', { headers: bearer(await minted(pair.session_id, 15 * 60)) })).status).toBe(200);
    for (const lifetime of [15 * 60 + 1, 12 * 3600, 365 * 24 * 3600]) {
      const r = await app.call('/v1/whoami', { headers: bearer(await minted(pair.session_id, lifetime)) });
      expect(r.status, `${lifetime} s: ${r.body}`).toBe(401);
      expect(lastRejection()).toMatchObject({ reason: 'too_long_lived', actor: { user: null }, details: { claimed_user: 'alice' } });
    }
  });
});
