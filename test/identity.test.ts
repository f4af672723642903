// Identity end to end on a real `gatehouse up`: the development OIDC provider (oidc-provider) and a
// real OpenLDAP slapd, driven through the `gatehouse` CLI the way a data scientist would, then the
// credentials they get (token, certificate, browser session) checked against the gateway.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_TYP } from '../src/audit/checkpoint.js';
import { readTrail, trailBytes } from './support/audit-trail.js';
import { startCli } from './support/cli-process.js';
import { ROOT, runCli, type Sandbox, sandbox, startUp, type Up } from './support/gatehouse.js';
import { fetchTls, type Response } from './support/https.js';
import { approveDevice, completeCodeFlow } from './support/oidc-browser.js';
import { passwordOf, PEOPLE, type Slapd, startSlapd } from './support/slapd.js';

let box: Sandbox;
let up: Up;
let slapd: Slapd;
let gateway: string;
const homes: Record<string, string> = {};

/** Each person has their own config folder, as on their own laptop. */
function envFor(user: string): Record<string, string> {
  homes[user] ??= mkdtempSync(join(tmpdir(), `gatehouse-home-${user}-`));
  return { XDG_CONFIG_HOME: homes[user]!, GATEHOUSE_URL: gateway, GATEHOUSE_CA: up.ready.ca_file };
}

const api = (path: string, options: Parameters<typeof fetchTls>[1] = {}): Promise<Response> => fetchTls(`${gateway}${path}`, { ca: up.ca, ...options });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const json = (body: unknown) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

function savedLogin(user: string): { access_token: string; refresh_token: string } {
  const all = JSON.parse(readFileSync(join(homes[user]!, 'gatehouse', 'credentials.json'), 'utf8')) as Record<string, { access_token: string; refresh_token: string }>;
  return all[gateway]!;
}

/** `gatehouse login --sso`, approved in the "browser" by `user` with the demo password. */
async function ssoLogin(user: string) {
  const run = startCli(['login', '--sso', '--no-browser', '--json'], envFor(user));
  const [, url] = await run.waitFor(/or open (\S+)/);
  const approval = await approveDevice(url!, { username: user, password: `${user}-demo` });
  expect(approval.outcome).toBe('approved');
  return run.done;
}

beforeAll(async () => {
  slapd = await startSlapd();
  box = sandbox({
    dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') },
    ldap: { url: slapd.url, start_tls: true, ca_file: slapd.caFile, bind_dn: slapd.bindDn, bind_password: slapd.bindPassword, user_base: PEOPLE },
    login: { max_failures: 3, max_failures_per_address: 30, slowdown_after: 1 },
  });
  up = await startUp(box);
  gateway = up.ready.gateway.url;
}, 90_000);

afterAll(async () => {
  await up?.stop();
  await slapd?.stop();
  box?.remove();
});

describe('SSO login from the CLI (device flow through the gateway)', () => {
  it('ends with whoami showing the user and groups, and credentials kept private', async () => {
    const login = await ssoLogin('alice');
    expect(login.code, login.stderr).toBe(0);
    expect(JSON.parse(login.stdout)).toMatchObject({ status: 'logged_in', user: 'alice', groups: ['analysts'], auth_method: 'oidc' });

    const who = await runCli(['whoami', '--json'], { env: envFor('alice') });
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ user: 'alice', groups: ['analysts'], auth_method: 'oidc', credential: 'bearer' });
    const file = join(homes.alice!, 'gatehouse', 'credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(homes.alice!, 'gatehouse')).mode & 0o777).toBe(0o700);
  });

  it('refuses a device poll with an unknown code and keeps a pending one pending', async () => {
    const bad = await api('/v1/auth/device/token', json({ device_code: 'not-a-code' }));
    expect(bad.status).toBeGreaterThanOrEqual(400);
    const start = await api('/v1/auth/device', json({}));
    expect(start.status).toBe(200);
    const { device_code, user_code, verification_uri } = start.json<{ device_code: string; user_code: string; verification_uri: string }>();
    expect(user_code).toBeTruthy();
    expect(verification_uri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    const pending = await api('/v1/auth/device/token', json({ device_code }));
    expect(pending.status).toBe(400);
    expect(pending.json()).toMatchObject({ error: 'authorization_pending' });
  });
});

describe('client certificates', () => {
  it('gatehouse cert leaves a working certificate: the gateway answers for that user over mTLS', async () => {
    const asked = Date.now();
    const run = await runCli(['cert', '--json'], { env: envFor('alice') });
    const answered = Date.now();
    expect(run.code, run.stderr).toBe(0);
    const cert = JSON.parse(run.stdout) as { serial: string; key: string; certificate: string; ca: string; expires_at: string };
    expect(statSync(cert.key).mode & 0o777).toBe(0o600);
    // Twelve hours from its issue (or the login's end, if sooner), bracketed by when we asked and
    // when we were answered, so how long the answer took does not matter.
    const expires = Date.parse(cert.expires_at);
    expect(expires).toBeLessThanOrEqual(answered + 12 * 3_600_000);
    expect(expires).toBeGreaterThan(asked + 11 * 3_600_000); // the login began minutes ago, not hours
    // The chain verifies with OpenSSL, and curl presents it like any TLS tool would.
    expect(execFileSync('openssl', ['verify', '-CAfile', up.ready.ca_file, cert.certificate], { encoding: 'utf8' })).toContain(': OK');
    const curl = execFileSync('curl', ['-sS', '--cert', cert.certificate, '--key', cert.key, '--cacert', up.ready.ca_file, `${gateway}/v1/whoami`], { encoding: 'utf8' });
    expect(JSON.parse(curl)).toMatchObject({ user: 'alice', groups: ['analysts'], credential: 'certificate' });

    // From any folder, without --ca or GATEHOUSE_CA, the CA saved beside the certificate is trusted;
    // GATEHOUSE_DEBUG (the README's stack-trace switch) is not taken for a configuration key.
    const elsewhere = mkdtempSync(join(tmpdir(), 'gatehouse-elsewhere-'));
    const { GATEHOUSE_CA: _, ...withoutCa } = envFor('alice');
    const whoami = await runCli(['whoami', '--json'], { cwd: elsewhere, env: { ...withoutCa, GATEHOUSE_DEBUG: '1' } });
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(JSON.parse(whoami.stdout)).toMatchObject({ user: 'alice' });
    // ... and it is that file that is trusted: without it the gateway's certificate is refused, naming what to pass.
    renameSync(cert.ca, `${cert.ca}.away`);
    const untrusted = await runCli(['whoami'], { cwd: elsewhere, env: withoutCa });
    renameSync(`${cert.ca}.away`, cert.ca);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/not trusted.*--ca/);
  });

  it('refuses a CSR asking for another name; the certificate always names the caller, and revocation reaches the CRL and the mTLS check', async () => {
    const token = savedLogin('alice').access_token;
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-csr-'));
    const post = (csr: string) => api('/v1/certs', { ...json({ csr }), headers: { ...bearer(token), 'content-type': 'application/json' } });
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'bob.pem'), '-out', join(dir, 'bob.csr'), '-subj', '/CN=bob/OU=platform-admins', '-addext', 'subjectAltName=URI:urn:gatehouse:user:bob'], { stdio: 'ignore' });
    const forBob = await post(readFileSync(join(dir, 'bob.csr'), 'utf8'));
    expect(forBob.status, forBob.body).toBe(400);
    expect(forBob.json()).toMatchObject({ error: 'invalid_request', field: 'csr' });
    expect(forBob.json<{ message: string }>().message).toMatch(/^the CSR names bob; a certificate names only you \(alice\); the CSR asks for OU=platform-admins; /);
    // The same request with the caller's own name (what `openssl req -subj /CN=alice` gives) is signed.
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'r.csr'), '-subj', '/CN=alice/OU=users', '-addext', 'subjectAltName=URI:urn:gatehouse:user:alice'], { stdio: 'ignore' });
    const issued = await post(readFileSync(join(dir, 'r.csr'), 'utf8'));
    expect(issued.status, issued.body).toBe(200);
    const { certificate, serial } = issued.json<{ certificate: string; serial: string }>();
    writeFileSync(join(dir, 'c.pem'), certificate);
    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-noout', '-subject', '-ext', 'subjectAltName,extendedKeyUsage'], { encoding: 'utf8' });
    expect(text).toContain('CN = alice');
    expect(text).toContain('URI:urn:gatehouse:user:alice');
    expect(text).not.toContain('bob');
    expect(text).toContain('TLS Web Client Authentication');
    const key = readFileSync(join(dir, 'k.pem'), 'utf8');
    expect((await api('/v1/whoami', { cert: certificate, key })).json()).toMatchObject({ user: 'alice' });

    const revoked = await api(`/v1/certs/${serial}`, { method: 'DELETE', headers: bearer(token) });
    expect(revoked.status, revoked.body).toBe(200);
    const refused = await api('/v1/whoami', { cert: certificate, key });
    expect(refused.status).toBe(401);
    const crl = await api('/v1/certs/crl?format=pem');
    expect(crl.status).toBe(200);
    writeFileSync(join(dir, 'crl.pem'), crl.body);
    const crlText = execFileSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-CAfile', up.ready.ca_file, '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(crlText.toUpperCase()).toContain(serial.toUpperCase());
    let verdict = '';
    try {
      execFileSync('openssl', ['verify', '-crl_check', '-CRLfile', join(dir, 'crl.pem'), '-CAfile', up.ready.ca_file, join(dir, 'c.pem')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      verdict = String((err as { stdout?: string }).stdout) + String((err as { stderr?: string }).stderr);
    }
    expect(verdict).toContain('certificate revoked');
  });

  it("hides another user's certificate (404) unless policy makes the caller an admin of certificates", async () => {
    const mine = await runCli(['cert', '--json'], { env: envFor('alice') });
    const { serial } = JSON.parse(mine.stdout) as { serial: string };
    const dave = await ssoLogin('dave');
    expect(dave.code, dave.stderr).toBe(0);
    const byDave = await api(`/v1/certs/${serial}`, { method: 'DELETE', headers: bearer(savedLogin('dave').access_token) });
    expect(byDave.status).toBe(404);
    const bob = await ssoLogin('bob'); // platform-admins → role:admins → cert:* admin
    expect(bob.code, bob.stderr).toBe(0);
    const byBob = await api(`/v1/certs/${serial}`, { method: 'DELETE', headers: bearer(savedLogin('bob').access_token) });
    expect(byBob.status, byBob.body).toBe(200);
  });

  it('answers a bad certificate request with 400 naming the field, and issues nothing', async () => {
    const headers = { ...bearer(savedLogin('alice').access_token), 'content-type': 'application/json' };
    const before = (await api('/v1/certs/crl?format=pem')).body;
    const garbage = await api('/v1/certs', { ...json({ csr: 'not a CSR' }), headers });
    expect(garbage.status).toBe(400);
    expect(garbage.json()).toMatchObject({ error: 'invalid_request', field: 'csr' });
    const extra = await api('/v1/certs', { ...json({ csr: 'x', subject: 'CN=bob' }), headers });
    expect(extra.status).toBe(400);
    expect(extra.json()).toMatchObject({ error: 'invalid_request' });
    const badSerial = await api('/v1/certs/not-hex', { method: 'DELETE', headers: bearer(savedLogin('alice').access_token) });
    expect(badSerial.status).toBe(400);
    expect((await api('/v1/certs/crl?format=pem')).body).toBe(before);
  });

  it('refuses a certificate from another CA and a service certificate in place of a user', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-foreign-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=alice/OU=users', '-addext', 'subjectAltName=URI:urn:gatehouse:user:alice', '-addext', 'extendedKeyUsage=clientAuth'], { stdio: 'ignore' });
    const foreign = await api('/v1/whoami', { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') });
    expect(foreign.status).toBe(401);
    const certs = join(box.dir, 'certs');
    const service = await api('/v1/whoami', { cert: readFileSync(join(certs, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(certs, 'gateway-client.key'), 'utf8') });
    expect(service.status).toBe(401);
  });
});

describe('LDAP login from the CLI against a real slapd', () => {
  it('logs in with --password-stdin and whoami shows the directory groups', async () => {
    const run = startCli(['login', '--ldap', '--user', 'alice', '--password-stdin', '--json'], envFor('ldap-alice'), `${passwordOf('alice')}\n`);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ user: 'alice', auth_method: 'ldap' });
    const who = await runCli(['whoami', '--json'], { env: envFor('ldap-alice') });
    expect(JSON.parse(who.stdout).groups).toEqual(expect.arrayContaining(['analysts']));
  });

  it('gives one clear line for a wrong password, then slows and refuses repeated failures', async () => {
    const wrong = await runCli(['login', '--ldap', '--user', 'carol', '--password-stdin'], { env: envFor('ldap-carol') });
    // stdin is empty in runCli: the CLI refuses an empty password itself.
    expect(wrong.code).not.toBe(0);
    const attempts: Response[] = [];
    for (let i = 0; i < 4; i++) attempts.push(await api('/v1/auth/ldap', json({ username: 'carol', password: 'guess' })));
    expect(attempts.slice(0, 3).map((r) => r.status)).toEqual([401, 401, 401]);
    expect(attempts[0]!.json()).toMatchObject({ error: 'unauthenticated', message: 'invalid username or password' });
    expect(attempts[3]!.status).toBe(429);
    expect(attempts[3]!.json()).toMatchObject({ error: 'too_many_requests' });
    expect(Number(attempts[3]!.headers['retry-after'])).toBeGreaterThan(0);
    // Even the right password waits out the lockout.
    const right = await api('/v1/auth/ldap', json({ username: 'carol', password: passwordOf('carol') }));
    expect(right.status).toBe(429);
  });

  it('refuses empty passwords and injection inputs with the same answer', async () => {
    for (const username of ['*', ')(uid=*', 'alice)(|(uid=*']) {
      const r = await api('/v1/auth/ldap', json({ username, password: 'x' }));
      expect(r.status, username).toBe(401);
    }
    const empty = await api('/v1/auth/ldap', json({ username: 'bob', password: '' }));
    expect(empty.status).toBe(401);
  });
});

describe('tokens over HTTP', () => {
  it('refreshes with rotation, and a replayed refresh token ends the login', async () => {
    const login = await api('/v1/auth/ldap', json({ username: 'bob', password: passwordOf('bob') }));
    expect(login.status, login.body).toBe(200);
    const first = login.json<{ access_token: string; refresh_token: string }>();
    const second = await api('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: first.refresh_token }));
    expect(second.status).toBe(200);
    const pair = second.json<{ access_token: string; refresh_token: string }>();
    const replay = await api('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: first.refresh_token }));
    expect(replay.status).toBe(401);
    expect((await api('/v1/whoami', { headers: bearer(pair.access_token) })).status).toBe(401);
  });

  it('publishes the signing keys and refuses requests without or with a broken credential', async () => {
    const jwks = (await api('/.well-known/jwks.json')).json<{ keys: { kid: string; alg: string; crv: string }[] }>();
    expect(jwks.keys[0]).toMatchObject({ alg: 'EdDSA', crv: 'Ed25519' });
    expect((await api('/v1/whoami')).status).toBe(401);
    expect((await api('/v1/whoami', { headers: bearer('abc.def.ghi') })).status).toBe(401);
    expect((await api('/v1/whoami', { headers: { authorization: 'Basic YWxpY2U6eA==' } })).status).toBe(401);
  });
});

describe('browser sign-in (authorization code + PKCE) and the session cookie', () => {
  it('sets an HttpOnly Secure SameSite cookie and requires the CSRF token for changes', async () => {
    const start = await api('/v1/auth/oidc/login?return_to=/v1/whoami');
    expect(start.status).toBe(302);
    const location = String(start.headers.location);
    expect(location).toContain('code_challenge_method=S256');
    const callback = await completeCodeFlow(location, { username: 'carol', password: 'carol-demo' });
    expect(`${callback.origin}${callback.pathname}`).toBe(`${gateway}/v1/auth/oidc/callback`);
    // The sign-in is bound to this browser by a cookie set at the start (without it: 403).
    const binding = ([] as string[]).concat(start.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!).find((c) => c.startsWith('__Host-gatehouse_oidc='))!;
    expect((await api(`${callback.pathname}${callback.search}`)).status).toBe(403);
    const landed = await api(`${callback.pathname}${callback.search}`, { headers: { cookie: binding } });
    expect(landed.status, landed.body).toBe(302);
    expect(landed.headers.location).toBe('/v1/whoami');
    const cookies = landed.headers['set-cookie'] as string[];
    const session = cookies.find((c) => c.startsWith('__Host-gatehouse_session='))!;
    expect(session).toMatch(/HttpOnly/i);
    expect(session).toMatch(/Secure/i);
    expect(session).toMatch(/SameSite=Lax/i);
    const csrf = cookies.find((c) => c.startsWith('__Host-gatehouse_csrf='))!.split(';')[0]!.split('=')[1]!;
    const cookieHeader = cookies.map((c) => c.split(';')[0]).join('; ');

    const who = await api('/v1/whoami', { headers: { cookie: cookieHeader } });
    expect(who.json()).toMatchObject({ user: 'carol', groups: ['auditors'], credential: 'session' });
    // Reusing the same callback (code and state) is refused.
    expect((await api(`${callback.pathname}${callback.search}`, { headers: { cookie: binding } })).status).toBe(401);
    // A change through the cookie alone, as a cross-site form would send it, is refused...
    const forged = await api('/v1/certs', { ...json({ csr: 'x' }), headers: { cookie: cookieHeader, 'content-type': 'application/json' } });
    expect(forged.status).toBe(401);
    // ...and with the CSRF token it goes through (logout ends the session).
    const out = await api('/v1/auth/logout', { ...json({}), headers: { cookie: cookieHeader, 'x-csrf-token': csrf, 'content-type': 'application/json' } });
    expect(out.status, out.body).toBe(200);
    expect((await api('/v1/whoami', { headers: { cookie: cookieHeader } })).status).toBe(401);
  });
});

/**
 * JWT-shaped strings in `text` other than the trail's checkpoints: those are compact JWS too
 * (public, signed statements of the chain head, in the trail and in the operator's log).
 */
function tokensIn(text: string): string[] {
  return [...text.matchAll(/ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]*/g)].map((m) => m[0]).filter((jws) => {
    // In the raw trail a signed checkpoint can sit right after another base64url value (its `prev`
    // digest), so the match may start early: it is a checkpoint if a header starting at some "ey" is one.
    const head = jws.split('.')[0]!;
    for (let i = head.indexOf('ey'); i >= 0; i = head.indexOf('ey', i + 1)) {
      try {
        if ((JSON.parse(Buffer.from(head.slice(i), 'base64url').toString('utf8')) as { typ?: string }).typ === CHECKPOINT_TYP) return false;
      } catch {
        // not a header from here
      }
    }
    return true;
  });
}

describe('logout and the audit trail', () => {
  it('gatehouse logout ends the login: tokens and the certificates of that login stop working', async () => {
    const run = await runCli(['cert', '--json'], { env: envFor('alice') });
    const cert = JSON.parse(run.stdout) as { key: string; certificate: string };
    const out = await runCli(['logout'], { env: envFor('alice') });
    expect(out.code, out.stderr).toBe(0);
    const who = await runCli(['whoami'], { env: envFor('alice') });
    expect(who.code).not.toBe(0);
    expect(who.stderr).toMatch(/not logged in/);
    const mtls = await api('/v1/whoami', { cert: readFileSync(cert.certificate, 'utf8'), key: readFileSync(cert.key, 'utf8') });
    expect(mtls.status).toBe(401);
  });

  it('recorded every attempt with method and reason, and never a secret', () => {
    const log = readFileSync(up.ready.gateway.log, 'utf8');
    const auditDir = join(box.dir, 'var', 'audit'); // audit.dir's default: state.dir/audit
    const events = readTrail(auditDir);
    const actions = new Set(events.map((e) => e.action));
    for (const a of ['auth.login', 'auth.login_failed', 'token.refresh', 'cert.issue', 'cert.revoke', 'auth.logout', 'auth.rejected']) expect(actions, a).toContain(a);
    expect(events.find((e) => e.action === 'auth.login_failed' && e.reason === 'throttled')).toBeTruthy();
    expect(events.find((e) => e.action === 'auth.login' && e.details.method === 'ldap')).toBeTruthy();
    // Neither the operator's log nor the trail (its database and WAL, byte for byte) holds a secret.
    for (const [where, text] of [['log', log], ['trail', trailBytes(auditDir)]] as const) {
      for (const secret of [passwordOf('alice'), passwordOf('bob'), 'alice-demo', 'carol-demo', slapd.bindPassword, 'guess']) expect(text, `${secret} in the ${where}`).not.toContain(secret);
      expect(tokensIn(text), where).toEqual([]); // no JWT but the trail's signed checkpoints
      expect(text, where).not.toMatch(/ghr_|ghs_/); // no refresh token or session cookie
      expect(text, where).not.toContain('PRIVATE KEY');
    }
  });
});
