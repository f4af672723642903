// The identity routes and the audit trail: every change is recorded before it is made (with the
// trail down, a refresh, a logout or a certificate changes nothing and answers 503), every event
// names the person whose credential it was, and nothing a client sends reaches the trail verbatim.
// The gateway's identity part runs in this process with a real trail that is closed to make it
// unavailable (test/support/identity-app.ts) and the real development OIDC provider.
import { createPrivateKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/index.js';
import { createKeyAndCsr } from '../../src/auth/certificate-request.js';
import { TOKEN_AUDIENCE } from '../../src/auth/tokens.js';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';
import type { Response } from '../support/https.js';

const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'oidc' as const };
const PEM_MARKER = '-----BEGIN PRIVATE KEY-----';
let app: IdentityApp;

const json = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A login as the login routes start it (the route's own event is not what these tests look at). */
const login = () => app.identity.tokens.login(ALICE);

async function certificateFor(accessToken: string): Promise<{ serial: string; cert: string; key: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const r = await app.call('/v1/certs', json({ csr: csrPem }, bearer(accessToken)));
  expect(r.status, r.body).toBe(200);
  const body = r.json<{ serial: string; certificate: string }>();
  return { serial: body.serial, cert: body.certificate, key: keyPem };
}

/** The events written since `mark` (an id), optionally of one action. */
function eventsSince(mark: number, action?: string): AuditEvent[] {
  return app.events().filter((e) => e.id > mark && (action === undefined || e.action === action));
}
const head = () => app.events().reduce((m, e) => Math.max(m, e.id), 0);

async function withTrailDown<T>(run: () => Promise<T>): Promise<T> {
  await app.auditDown();
  try {
    return await run();
  } finally {
    await app.auditUp();
  }
}

function expectRefused(r: Response): void {
  expect(r.status, r.body).toBe(503);
  expect(r.json()).toMatchObject({ error: 'audit_unavailable' });
}

beforeAll(async () => {
  app = await startIdentityApp({ sso: true });
}, 60_000);
afterAll(async () => {
  await app?.close();
});

describe('record first: with the trail down nothing changes', () => {
  it('refresh: the token is not rotated, and the retry after recovery works (not "reused")', async () => {
    const pair = await login();
    const before = await app.store.db.selectFrom('refresh_tokens').selectAll().where('family_id', '=', pair.session_id).execute();
    const refused = await withTrailDown(() => app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token })));
    expectRefused(refused);
    expect(await app.store.db.selectFrom('refresh_tokens').selectAll().where('family_id', '=', pair.session_id).execute()).toEqual(before);
    const mark = head();
    const retry = await app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }));
    expect(retry.status, retry.body).toBe(200);
    expect((await app.store.db.selectFrom('token_families').select('revoked_at').where('id', '=', pair.session_id).executeTakeFirstOrThrow()).revoked_at).toBeNull();
    const [event] = eventsSince(mark, 'token.refresh');
    expect(event).toMatchObject({ decision: 'allow', actor: { user: 'alice' }, details: { session_id: pair.session_id } });
  });

  it('logout: the login and its certificates stay as they were', async () => {
    const pair = await login();
    const cert = await certificateFor(pair.access_token);
    const refused = await withTrailDown(() => app.call('/v1/auth/logout', json({}, bearer(pair.access_token))));
    expectRefused(refused);
    const family = await app.store.db.selectFrom('token_families').selectAll().where('id', '=', pair.session_id).executeTakeFirstOrThrow();
    expect(family.revoked_at).toBeNull();
    expect(app.identity.tokens.isRevoked(pair.session_id)).toBe(false);
    const row = await app.store.db.selectFrom('client_certificates').selectAll().where('serial', '=', cert.serial).executeTakeFirstOrThrow();
    expect(row.revoked_at).toBeNull();
    expect((await app.call('/v1/whoami', { headers: bearer(pair.access_token) })).status).toBe(200);
    expect((await app.call('/v1/whoami', { cert: cert.cert, key: cert.key })).json()).toMatchObject({ user: 'alice', credential: 'certificate' });
  });

  it('certificate: none is stored or handed out', async () => {
    const pair = await login();
    const { csrPem } = await createKeyAndCsr();
    const count = async () => (await app.store.db.selectFrom('client_certificates').select('serial').execute()).length;
    const before = await count();
    const refused = await withTrailDown(() => app.call('/v1/certs', json({ csr: csrPem }, bearer(pair.access_token))));
    expectRefused(refused);
    expect(refused.body).not.toContain('BEGIN CERTIFICATE');
    expect(await count()).toBe(before);
  });

  it('refresh-token reuse: the login is not revoked unrecorded', async () => {
    const pair = await login();
    expect((await app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }))).status).toBe(200);
    const refused = await withTrailDown(() => app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token })));
    expectRefused(refused);
    expect((await app.store.db.selectFrom('token_families').select('revoked_at').where('id', '=', pair.session_id).executeTakeFirstOrThrow()).revoked_at).toBeNull();
    // After recovery the reuse is recorded, then the login ends.
    const mark = head();
    expect((await app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }))).status).toBe(401);
    expect(eventsSince(mark, 'token.refresh')).toMatchObject([{ decision: 'deny', reason: 'reused', actor: { user: 'alice' } }]);
    expect((await app.store.db.selectFrom('token_families').select('revoked_at').where('id', '=', pair.session_id).executeTakeFirstOrThrow()).revoked_at).not.toBeNull();
  });
});

describe('every auth event names its person', () => {
  it('logout by refresh token alone records the user, and one cert.revoke per certificate it revokes', async () => {
    const pair = await login();
    const certs = [await certificateFor(pair.access_token), await certificateFor(pair.access_token)];
    const mark = head();
    const out = await app.call('/v1/auth/logout', json({ refresh_token: pair.refresh_token }));
    expect(out.status, out.body).toBe(200);
    const [logout] = eventsSince(mark, 'auth.logout');
    expect(logout).toMatchObject({ actor: { user: 'alice', groups: ['analysts'], auth_method: 'oidc' }, object: `session:${pair.session_id}` });
    expect([...(logout!.details.certificates_revoked as string[])].sort()).toEqual(certs.map((c) => c.serial).sort());
    const revokes = eventsSince(mark, 'cert.revoke');
    expect(revokes.map((e) => e.object).sort()).toEqual(certs.map((c) => `cert:${c.serial}`).sort());
    for (const e of revokes) expect(e).toMatchObject({ decision: 'allow', actor: { user: 'alice' }, details: { owner: 'alice', session_id: pair.session_id } });
  });

  it('reuse of a revoked access token, refresh token or certificate records the user the credential names', async () => {
    const pair = await login();
    const cert = await certificateFor(pair.access_token);
    expect((await app.call('/v1/auth/logout', json({}, bearer(pair.access_token)))).status).toBe(200);
    const mark = head();
    expect((await app.call('/v1/whoami', { headers: bearer(pair.access_token) })).status).toBe(401);
    expect((await app.call('/v1/whoami', { cert: cert.cert, key: cert.key })).status).toBe(401);
    expect((await app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }))).status).toBe(401);
    const events = eventsSince(mark);
    expect(events).toHaveLength(3);
    for (const e of events) expect(e, JSON.stringify(e)).toMatchObject({ decision: 'deny', reason: 'revoked', actor: { user: 'alice', groups: ['analysts'] }, details: { session_id: pair.session_id } });
  });

  it('a forged token names its user only as claimed', async () => {
    const { privateKey } = await import('node:crypto').then((c) => c.generateKeyPairSync('ed25519'));
    const row = await app.store.db.selectFrom('signing_keys').select('kid').executeTakeFirstOrThrow();
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ groups: ['platform-admins'], auth_method: 'oidc', sid: 'x' })
      .setProtectedHeader({ alg: 'EdDSA', kid: row.kid })
      .setIssuer('urn:gatehouse:whatever')
      .setAudience(TOKEN_AUDIENCE)
      .setSubject('bob')
      .setJti('j')
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })));
    const mark = head();
    expect((await app.call('/v1/whoami', { headers: bearer(forged) })).status).toBe(401);
    const [event] = eventsSince(mark, 'auth.rejected');
    expect(event).toMatchObject({ reason: 'bad_signature', actor: { user: null }, details: { claimed_user: 'bob' } });
  });
});

describe('nothing a client sends reaches the trail verbatim', () => {
  const header = (fields: Record<string, unknown>) => Buffer.from(JSON.stringify(fields)).toString('base64url');
  const fakeJwt = (h: Record<string, unknown>) => `${header(h)}.${header({ sub: 'alice' })}.c2ln`;

  it('a PEM marker in a token kid or alg is refused with 401 and recorded as a hash', async () => {
    for (const h of [{ alg: 'EdDSA', kid: `${PEM_MARKER}MIIEv` }, { alg: `${PEM_MARKER}x`, kid: 'k' }, { alg: 'EdDSA', kid: 'k'.repeat(300) }]) {
      const mark = head();
      const r = await app.call('/v1/whoami', { headers: bearer(fakeJwt(h)) });
      expect(r.status, r.body).toBe(401);
      const [event] = eventsSince(mark, 'auth.rejected');
      expect(event, JSON.stringify(h)).toBeDefined();
      const text = JSON.stringify(event);
      expect(text).not.toContain('BEGIN');
      expect(text).not.toContain('kkkkkkkkkk');
      expect(String(event!.details.detail)).toMatch(/sha256:[A-Za-z0-9_-]{16}/);
    }
  });

  it("the callback's ?error= and error_description: a 4xx and an event with a plain code or a hash", async () => {
    const cases = [
      `error=${encodeURIComponent(`${PEM_MARKER}abc`)}`,
      `error=server_error&error_description=${encodeURIComponent(`${PEM_MARKER} my password is hunter2`)}`,
      `error=${encodeURIComponent('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig')}`,
    ];
    for (const q of cases) {
      const mark = head();
      const r = await app.call(`/v1/auth/oidc/callback?${q}`);
      expect(r.status, `${q}: ${r.body}`).toBeGreaterThanOrEqual(400);
      expect(r.status, q).toBeLessThan(500);
      const [event] = eventsSince(mark, 'auth.login_failed');
      expect(event, q).toBeDefined();
      const text = JSON.stringify(event);
      for (const bad of ['BEGIN', 'hunter2', 'eyJhbGci']) expect(text, q).not.toContain(bad);
    }
  });
});
