// Issue 15, tokens and certificates: credentials the gateway did not issue, or no longer honours,
// against a real gateway, engine and IdP. Every forged or stale token gets 401 with the same plain
// answer (a forger learns nothing), and the trail records why; certificate requests that ask for more
// than a certificate for the caller are refused; revoked and foreign certificates open neither the
// gateway nor the engine port.
//
// Already covered elsewhere, not repeated here:
//   - the verifier's reasons for alg none, HS256 with our public key, a foreign key, a tampered
//     payload, an unknown kid, expired / not yet valid, wrong iss / aud: test/tokens.test.ts
//     ('access tokens'); here the same forgeries go through HTTP and the audit trail;
//   - refresh reuse after rotation ends the login (family revoked) over HTTP: test/identity.test.ts
//     ('tokens over HTTP'); in the token service, with concurrent uses: test/tokens.test.ts
//     ('refresh tokens'); recorded with its user: test/security/auth-audit.test.ts;
//   - an access token after logout: test/identity.test.ts ('logout and the audit trail') and the
//     `revoked` column of every route in test/security/authz-matrix.test.ts;
//   - a token minted past tokens.access_ttl, a certificate outliving its login:
//     test/security/cert-lifetime.test.ts;
//   - a foreign-CA certificate and the gateway's service certificate on the gateway port, revocation
//     reaching the CRL: test/identity.test.ts ('client certificates'); no certificate, a foreign CA
//     and a user certificate on the engine port: test/gateway.test.ts ('the engine port').
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactEncrypt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditKey } from '../../src/audit/index.js';
import { createKeyAndCsr, ensureCertificates } from '../../src/auth/index.js';
import { fetchTls, type Response } from '../support/https.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let stack: Stack;
let alice = '';
let scratch = '';
/** The claims and header of a token the gateway really issued: forgeries change one thing at a time. */
let genuine: { kid: string; iss: string; aud: string; sid: string };

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

/** The gateway's current token-signing key, read from its store as only the gateway could. */
async function gatewayKey(kid: string) {
  const row = await (await stack.store()).db.selectFrom('signing_keys').select('private_pkcs8').where('kid', '=', kid).executeTakeFirst();
  if (!row) throw new Error(`no signing key ${kid} in the gateway's store`);
  return createPrivateKey(row.private_pkcs8);
}

/** A token as the gateway mints them (EdDSA, our kid, iss, aud, a live login), with `change` applied. */
async function minted(change: { claims?: Record<string, unknown>; header?: Record<string, unknown>; key?: ReturnType<typeof createPrivateKey>; times?: { iat: number; exp: number; nbf?: number } } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const times = change.times ?? { iat: now, exp: now + 300 };
  const claims = { iss: genuine.iss, aud: genuine.aud, sub: 'alice', jti: randomBytes(8).toString('hex'), groups: ['analysts'], auth_method: 'oidc', sid: genuine.sid, ...times, ...change.claims };
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: genuine.kid, typ: 'at+jwt', ...change.header } as { alg: string }).sign(change.key ?? (await gatewayKey(genuine.kid)));
}

/** Certificates the gateway has stored (issued), read from its store. */
async function certificateCount(): Promise<number> {
  const row = await (await stack.store()).db.selectFrom('client_certificates').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

const whoami = (token: string) => stack.api('/v1/whoami', token);
const head = () => stack.auditEvents().reduce((m, e) => Math.max(m, e.id), 0);

/** 401, the plain answer every refused credential gets, and the reason on the trail. */
async function expectRefused(answer: Response, mark: number, reason: string | RegExp, what: string): Promise<void> {
  expect(answer.status, `${what}: ${answer.body}`).toBe(401);
  expect(answer.json(), what).toEqual({ error: 'unauthenticated', message: 'invalid or expired credentials' });
  expect(answer.headers['www-authenticate'], what).toBe('Bearer realm="gatehouse"');
  const event = await until(async () => stack.auditEvents().find((e) => e.id > mark && e.action === 'auth.rejected'), 10_000, `the rejection of ${what} on the trail`);
  expect(event.decision, what).toBe('deny');
  expect(event.reason, what).toMatch(typeof reason === 'string' ? new RegExp(`^${reason}$`) : reason);
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CSR made by openssl with the given subject and extensions (what a curious user would try). */
function csr(subject: string, extensions: string[] = []): string {
  const key = join(scratch, `${randomBytes(4).toString('hex')}.key`);
  const out = `${key}.csr`;
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', out, '-subj', subject, ...extensions.flatMap((e) => ['-addext', e])]);
  return readFileSync(out, 'utf8');
}

beforeAll(async () => {
  // `gateway` is a valid username: a person may be called that, and must never pass for the service.
  stack = await Stack.start({ users: { gateway: ['analysts'] } });
  scratch = mkdtempSync(join(tmpdir(), 'gatehouse-credentials-'));
  alice = await stack.login('alice');
  const [h, p] = alice.split('.') as [string, string];
  const header = decode(h);
  const payload = decode(p);
  genuine = { kid: String(header.kid), iss: String(payload.iss), aud: String(payload.aud), sid: String(payload.sid) };
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('access tokens the gateway did not issue: 401, the same plain answer, the reason on the trail', () => {
  it('a genuine-looking token minted with our key is accepted (the forgeries below differ from it in one thing)', async () => {
    const answer = await whoami(await minted());
    expect(answer.status, answer.body).toBe(200);
    expect(answer.json()).toMatchObject({ user: 'alice' });
  });

  it('alg none, and HS256 keyed with our own public key (algorithm confusion)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: genuine.iss, aud: genuine.aud, sub: 'alice', sid: genuine.sid, groups: ['admins'], auth_method: 'oidc', jti: 'x', iat: now, exp: now + 300 };
    let mark = head();
    await expectRefused(await whoami(`${b64url({ alg: 'none', kid: genuine.kid, typ: 'at+jwt' })}.${b64url(claims)}.`), mark, 'alg_not_allowed', 'alg none');
    const jwks = (await stack.api('/.well-known/jwks.json')).json<{ keys: { kid: string }[] }>();
    const ours = jwks.keys.find((k) => k.kid === genuine.kid)!;
    const publicPem = createPublicKey({ key: ours, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    mark = head();
    const hs256 = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: genuine.kid }).sign(new TextEncoder().encode(String(publicPem)));
    await expectRefused(await whoami(hs256), mark, 'alg_not_allowed', 'HS256 with our public key');
  });

  it('an unknown kid, another key under our kid, and the audit trail’s key (published in the same JWKS)', async () => {
    const stranger = generateKeyPairSync('ed25519').privateKey;
    let mark = head();
    await expectRefused(await whoami(await minted({ header: { kid: 'no-such-key' }, key: stranger })), mark, 'unknown_key', 'unknown kid');
    mark = head();
    await expectRefused(await whoami(await minted({ key: stranger })), mark, 'bad_signature', 'another key under our kid');
    // The JWKS also publishes the audit key (kid audit-…) so checkpoints can be checked: it must
    // never sign in anyone, or whoever holds the trail's key could mint logins.
    const audit = loadAuditKey(stack.certsDir);
    const jwks = (await stack.api('/.well-known/jwks.json')).json<{ keys: { kid: string }[] }>();
    expect(jwks.keys.map((k) => k.kid)).toContain(audit.kid);
    mark = head();
    await expectRefused(await whoami(await minted({ header: { kid: audit.kid }, key: audit.privateKey })), mark, 'unknown_key', 'the audit key');
  });

  it('expired, and not yet valid, even when signed with our key', async () => {
    const now = Math.floor(Date.now() / 1000);
    let mark = head();
    await expectRefused(await whoami(await minted({ times: { iat: now - 900, exp: now - 120 } })), mark, 'expired', 'expired');
    mark = head();
    await expectRefused(await whoami(await minted({ times: { iat: now + 600, nbf: now + 600, exp: now + 900 } })), mark, 'not_yet_valid', 'not yet valid');
  });

  it('another installation’s issuer, another audience', async () => {
    let mark = head();
    await expectRefused(await whoami(await minted({ claims: { iss: 'urn:gatehouse:another-installation' } })), mark, 'wrong_issuer', 'wrong iss');
    mark = head();
    await expectRefused(await whoami(await minted({ claims: { aud: 'urn:another-service' } })), mark, 'wrong_audience', 'wrong aud');
  });

  it('a JWE (encrypted, five parts) carrying valid-looking claims', async () => {
    const claims = new TextEncoder().encode(JSON.stringify({ iss: genuine.iss, aud: genuine.aud, sub: 'alice', sid: genuine.sid }));
    const jwe = await new CompactEncrypt(claims).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: genuine.kid }).encrypt(randomBytes(32));
    expect(jwe.split('.')).toHaveLength(5);
    const mark = head();
    await expectRefused(await whoami(jwe), mark, /^(malformed|alg_not_allowed)$/, 'JWE');
  });

  it('an oversized token: refused like any other up to the header limit, and by the HTTP server past it', async () => {
    const [h, p, s] = (await minted()).split('.') as [string, string, string];
    const padded = (bytes: number) => `${h}.${b64url({ ...decode(p), padding: 'x'.repeat(bytes) })}.${s}`;
    const mark = head();
    await expectRefused(await whoami(padded(8 * 1024)), mark, /^(malformed|bad_signature)$/, 'an 11 KB token');
    // Past Node's 16 KiB of headers the request never reaches a route: 431, nothing recorded as a login.
    const huge = await whoami(padded(64 * 1024));
    expect(huge.status).toBe(431);
    expect(stack.auditEvents().filter((e) => e.id > mark && e.action !== 'auth.rejected' && e.actor.user === 'alice')).toEqual([]);
  });
});

describe('certificate requests that ask for more than a certificate for the caller', () => {
  const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
  /** What the gateway issues: a certificate for the caller and nothing more. */
  function expectCallerOnly(pem: string, user: string): void {
    const cert = new X509Certificate(pem);
    expect(cert.subject.split('\n')).toEqual([`CN=${user}`, 'OU=users', 'O=Gatehouse']);
    expect(cert.subjectAltName).toBe(`URI:urn:gatehouse:user:${user}`);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]);
    expect(cert.checkIssued(new X509Certificate(stack.ca))).toBe(true);
  }

  const asks: [string, () => string, string, RegExp][] = [
    ['another user', () => csr('/CN=bob/OU=users/O=Gatehouse', ['subjectAltName=URI:urn:gatehouse:user:bob']), 'names_another_user', /^the CSR names bob; a certificate names only you \(alice\); the CSR asks for the alternative name URI:urn:gatehouse:user:bob; /],
    ['the gateway service', () => csr('/CN=gateway/OU=services/O=Gatehouse'), 'names_a_service', /^the CSR names gateway, the gateway's own service name; a certificate names only you \(alice\); the CSR asks for OU=services; /],
    ['a CA certificate', () => csr('/CN=alice/OU=users/O=Gatehouse', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']), 'asks_for_ca', /^the CSR asks to be a CA \(basicConstraints CA:TRUE\); a client certificate never signs others; the CSR asks for the key usages keyCertSign, cRLSign; /],
    ['extra key usages', () => csr('/CN=alice/OU=users/O=Gatehouse', ['extendedKeyUsage=serverAuth,codeSigning,clientAuth']), 'asks_for_key_usage', /^the CSR asks for the extended key usages serverAuth, codeSigning; a client certificate serves only clientAuth: /],
  ];

  it('never issues what such a CSR asks for: each certificate names the caller only, is no CA, and serves client authentication only', async () => {
    for (const [, make] of asks) {
      const answer = await stack.api('/v1/certs', alice, { method: 'POST', body: { csr: make() } });
      // Refused (below) or issued for the caller alone; never as asked.
      if (answer.status === 200) expectCallerOnly(answer.json<{ certificate: string }>().certificate, 'alice');
      else expect(answer.status, answer.body).toBe(400);
    }
  });

  // Refused with a clear error rather than silently narrowed; the trail records the refusal's code, not the CSR.
  for (const [what, make, reason, message] of asks) {
    it(`refuses a CSR asking for ${what}: 400 naming csr and what was asked, nothing issued, a deny on the trail`, async () => {
      const mark = head();
      const before = await certificateCount();
      const request = make();
      const answer = await stack.api('/v1/certs', alice, { method: 'POST', body: { csr: request } });
      expect(answer.status, answer.body).toBe(400);
      const body = answer.json<{ error: string; field: string; message: string }>();
      expect(body).toMatchObject({ error: 'invalid_request', field: 'csr' });
      expect(body.message).toMatch(message);
      expect(body.message).toContain('-subj /CN=alice and no extensions');
      expect(await certificateCount()).toBe(before);
      const denied = await until(async () => stack.auditEvents().find((e) => e.id > mark && e.action === 'cert.issue'), 10_000, `the refusal of ${what} on the trail`);
      expect(denied).toMatchObject({ decision: 'deny', reason, actor: expect.objectContaining({ user: 'alice' }) });
      expect(stack.auditEvents().filter((e) => e.id > mark && e.action === 'cert.issue' && e.decision !== 'deny')).toEqual([]);
      const key = request.replace(/-----[^-]+-----|\s/g, '').slice(40, 120);
      expect(JSON.stringify(denied)).not.toContain(key);
    });
  }

  it('accepts a CSR with an empty subject, or naming the caller (CN, OU=users, the caller\'s URI, clientAuth), as before', async () => {
    const fine = [
      (await createKeyAndCsr()).csrPem,
      (await createKeyAndCsr({ user: 'alice' })).csrPem,
      csr('/CN=alice/OU=users/O=Gatehouse', ['subjectAltName=URI:urn:gatehouse:user:alice', 'basicConstraints=CA:FALSE', 'keyUsage=digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth']),
      csr('/C=DE/ST=Berlin/L=Berlin/O=Example/CN=alice'),
    ];
    for (const request of fine) {
      const answer = await stack.api('/v1/certs', alice, { method: 'POST', body: { csr: request } });
      expect(answer.status, answer.body).toBe(200);
      expectCallerOnly(answer.json<{ certificate: string }>().certificate, 'alice');
    }
  });
});

describe('certificates on both ports', () => {
  const engineUrl = () => stack.engine.url;
  const refusedHandshake = /unknown ca|alert|handshake|socket hang up|ECONNRESET|certificate/i;

  /** A certificate issued to `user` for the key we keep. */
  async function certificateOf(token: string): Promise<{ cert: string; key: string; serial: string }> {
    const { keyPem, csrPem } = await createKeyAndCsr();
    const answer = await stack.api('/v1/certs', token, { method: 'POST', body: { csr: csrPem } });
    expect(answer.status, answer.body).toBe(200);
    const body = answer.json<{ certificate: string; serial: string }>();
    return { cert: body.certificate, key: keyPem, serial: body.serial };
  }

  it('a revoked certificate opens neither port', async () => {
    const mine = await certificateOf(await stack.login('alice'));
    expect((await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, ...mine })).status).toBe(200);
    expect((await stack.api(`/v1/certs/${mine.serial}`, alice, { method: 'DELETE' })).status).toBe(200);
    const mark = head();
    await expectRefused(await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, ...mine }), mark, 'revoked', 'a revoked certificate');
    const engine = await fetchTls(`${engineUrl()}/healthz`, { ca: stack.ca, ...mine });
    expect(engine.status).toBe(403);
    expect(engine.json()).toEqual({ error: 'forbidden', message: 'the engine serves only the gateway' });
  });

  it("another CA's certificate naming the gateway service opens neither port", async () => {
    const other = join(scratch, 'other-ca');
    ensureCertificates({ dir: other, gatewayHosts: [], engineHosts: [] });
    const impostor = { cert: readFileSync(join(other, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(other, 'gateway-client.key'), 'utf8') };
    await expect(fetchTls(`${engineUrl()}/healthz`, { ca: stack.ca, ...impostor })).rejects.toThrow(refusedHandshake);
    const mark = head();
    await expectRefused(await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, ...impostor }), mark, 'foreign_ca', "another CA's certificate");
  });

  it('a person named "gateway" gets a certificate for a person, which the engine refuses', async () => {
    const token = await stack.login('gateway');
    const theirs = await certificateOf(token);
    const person = await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, ...theirs });
    expect(person.status).toBe(200);
    expect(person.json()).toMatchObject({ user: 'gateway', credential: 'certificate' });
    const engine = await fetchTls(`${engineUrl()}/healthz`, { ca: stack.ca, ...theirs });
    expect(engine.status).toBe(403);
  });
});
