// The browser sign-in (authorization code + PKCE) against the real development OIDC provider and
// the gateway's identity routes, built in this process: the sign-in is bound to the browser that
// started it (login CSRF), return_to is a local path or a 400, and a callback in which nobody's
// credentials were tried does not count towards the address lockout, while real failures still do.
// The cookies carry the __Host- prefix (Secure, Path=/, no Domain), so a sibling subdomain or a
// plain-HTTP answer cannot plant them; a failed code exchange uses up its sign-in but does not count
// against the address; a start is never refused for the per-address bound (the oldest pending
// sign-in is evicted), but one loaded by another site as a subresource is; device polls with codes
// the gateway never handed out are answered locally; and LDAP's address lockout does not lock SSO.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';
import type { Response } from '../support/https.js';
import { approveDevice, completeCodeFlow } from '../support/oidc-browser.js';
import { passwordOf, PEOPLE, type Slapd, startSlapd } from '../support/slapd.js';

const LOGIN_COOKIE = '__Host-gatehouse_oidc';
const SESSION_COOKIE = '__Host-gatehouse_session';
const CSRF_COOKIE = '__Host-gatehouse_csrf';
let app: IdentityApp;

const setCookies = (r: Response): string[] => ([] as string[]).concat(r.headers['set-cookie'] ?? []);
const cookieValue = (r: Response, name: string): string | undefined => setCookies(r).find((c) => c.startsWith(`${name}=`))?.split(';')[0]?.slice(name.length + 1);

/** A browser's start of the sign-in: the IdP URL it is sent to and the cookie the gateway set. */
async function startSignIn(a: IdentityApp, returnTo = '/v1/whoami'): Promise<{ location: string; binding: string; response: Response }> {
  const response = await a.call(`/v1/auth/oidc/login?return_to=${encodeURIComponent(returnTo)}`);
  expect(response.status, response.body).toBe(302);
  return { location: String(response.headers.location), binding: cookieValue(response, LOGIN_COOKIE) ?? '', response };
}

const callback = (a: IdentityApp, url: URL, cookie?: string) => a.call(`${url.pathname}${url.search}`, cookie === undefined ? {} : { headers: { cookie } });
const rows = async (a: IdentityApp) => (await a.store.db.selectFrom('oidc_requests').select('state').execute()).length;

beforeAll(async () => {
  app = await startIdentityApp({ sso: true });
}, 60_000);
afterAll(async () => {
  await app?.close();
});

describe('the sign-in is bound to the browser that started it (login CSRF)', () => {
  it('sets a short-lived HttpOnly, Secure, SameSite=Lax cookie at the start', async () => {
    const { response } = await startSignIn(app);
    const line = setCookies(response).find((c) => c.startsWith(`${LOGIN_COOKIE}=`));
    expect(line).toBeDefined();
    expect(line).toMatch(/;\s*HttpOnly/i);
    expect(line).toMatch(/;\s*Secure/i);
    expect(line).toMatch(/;\s*SameSite=Lax/i);
    const maxAge = Number(/Max-Age=(\d+)/i.exec(line!)?.[1]);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(600);
    // Stored as a hash: the cookie's value is nowhere in the store.
    const stored = JSON.stringify(await app.store.db.selectFrom('oidc_requests').selectAll().execute());
    expect(stored).not.toContain(cookieValue(response, LOGIN_COOKIE)!);
  });

  it('names every cookie __Host- (Secure, Path=/, no Domain): the start, the session, the CSRF token and the clearing', async () => {
    const start = await startSignIn(app);
    const login = setCookies(start.response).find((c) => c.startsWith(`${LOGIN_COOKIE}=`));
    const link = await completeCodeFlow(start.location, { username: 'carol', password: 'carol-demo' });
    const landed = await callback(app, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    const lines = setCookies(landed);
    const session = lines.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
    const csrf = lines.find((c) => c.startsWith(`${CSRF_COOKIE}=`));
    const cleared = lines.find((c) => c.startsWith(`${LOGIN_COOKIE}=`));
    for (const line of [login, session, csrf, cleared]) {
      expect(line).toBeDefined();
      const attributes = line!.split(';').slice(1).map((a) => a.trim().toLowerCase());
      expect(attributes, line).toContain('path=/');
      expect(attributes, line).toContain('secure');
      expect(attributes, line).toContain('samesite=lax');
      expect(attributes.filter((a) => a.startsWith('domain')), line).toEqual([]);
    }
    for (const line of [login, session, cleared]) expect(line!.split(';').map((a) => a.trim().toLowerCase()), line).toContain('httponly');
    // The page reads the CSRF token to echo it in x-csrf-token: not HttpOnly, by design.
    expect(csrf!.split(';').map((a) => a.trim().toLowerCase())).not.toContain('httponly');
    // Every cookie the gateway sets is one of the three, prefixed.
    for (const line of [...setCookies(start.response), ...lines]) expect(line).toMatch(/^__Host-gatehouse_(oidc|session|csrf)=/);
  });

  it('ignores the cookies named without the prefix (as a sibling subdomain could plant them)', async () => {
    const start = await startSignIn(app);
    const link = await completeCodeFlow(start.location, { username: 'carol', password: 'carol-demo' });
    // The right value under the old name: not this browser's sign-in.
    const planted = await callback(app, link, `gatehouse_oidc=${start.binding}`);
    expect(planted.status, planted.body).toBe(403);
    expect(planted.json()).toMatchObject({ error: 'forbidden' });
    const landed = await callback(app, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    const session = cookieValue(landed, SESSION_COOKIE)!;
    const csrf = cookieValue(landed, CSRF_COOKIE)!;
    expect(session).toBeTruthy();
    // A session cookie under the old name signs nobody in; under its own name it does.
    const plain = await app.call('/v1/whoami', { headers: { cookie: `gatehouse_session=${session}; gatehouse_csrf=${csrf}` } });
    expect(plain.status, plain.body).toBe(401);
    const prefixed = await app.call('/v1/whoami', { headers: { cookie: `${SESSION_COOKIE}=${session}` } });
    expect(prefixed.status, prefixed.body).toBe(200);
    expect(prefixed.json()).toMatchObject({ user: 'carol', credential: 'session' });
    // A change with the CSRF token and the unprefixed session cookie is refused too.
    const out = await app.call('/v1/auth/logout', { method: 'POST', body: '{}', headers: { cookie: `gatehouse_session=${session}`, 'x-csrf-token': csrf, 'content-type': 'application/json' } });
    expect(out.status, out.body).toBe(401);
  });

  it("refuses another person's callback link in a browser that did not start it, and audits the refusal", async () => {
    // The attacker signs in as dave in their own browser but stops before the callback...
    const attacker = await startSignIn(app);
    const link = await completeCodeFlow(attacker.location, { username: 'dave', password: 'dave-demo' });
    // ...and the victim's browser opens it: without the cookie, and with the cookie of its own sign-in.
    const victim = await startSignIn(app);
    const mismatches = () => app.events().filter((e) => e.action === 'auth.login_failed' && e.reason === 'browser_mismatch').length;
    const mismatchesBefore = mismatches();
    for (const cookie of [undefined, `${LOGIN_COOKIE}=${victim.binding}`, `${LOGIN_COOKIE}=`]) {
      const landed = await callback(app, link, cookie);
      expect(landed.status, landed.body).toBe(403);
      expect(landed.json()).toMatchObject({ error: 'forbidden' });
      expect(landed.json<{ message: string }>().message).toMatch(/browser/);
      expect(cookieValue(landed, SESSION_COOKIE)).toBeUndefined();
    }
    const events = app.events();
    expect(events.filter((e) => e.action === 'auth.login' && e.actor.user === 'dave')).toEqual([]);
    expect(mismatches() - mismatchesBefore).toBe(3);
    // The link still works in the browser that started it (the victim could not use it up), once.
    const own = await callback(app, link, `${LOGIN_COOKIE}=${attacker.binding}`);
    expect(own.status, own.body).toBe(302);
    expect(cookieValue(own, SESSION_COOKIE)).toBeTruthy();
    // The binding cookie is cleared once used.
    expect(setCookies(own).find((c) => c.startsWith(`${LOGIN_COOKIE}=`))).toMatch(/Expires=Thu, 01 Jan 1970|Max-Age=0/i);
    expect((await callback(app, link, `${LOGIN_COOKIE}=${attacker.binding}`)).status).toBe(401);
  });
});

describe('return_to is a path on this gateway, or a 400', () => {
  const refused = ['/\t/evil.example', '/\n/evil.example', '/\r\nSet-Cookie: x=y', '//evil.example', '/\\evil.example', '\\\\evil.example', 'https://evil.example', 'javascript:alert(1)', '/ok/../\\evil', '/a//evil.example', '/ space', '/caf\u00e9', 'evil.example', '/\u0000'];
  for (const value of refused) {
    it(`refuses ${JSON.stringify(value)} and starts nothing`, async () => {
      const before = await rows(app);
      const r = await app.call(`/v1/auth/oidc/login?return_to=${encodeURIComponent(value)}`);
      expect(r.status, r.body).toBe(400);
      expect(r.json()).toMatchObject({ error: 'invalid_request', field: 'querystring.return_to' });
      expect(r.headers.location).toBeUndefined();
      expect(setCookies(r).find((c) => c.startsWith(`${LOGIN_COOKIE}=`))).toBeUndefined();
      expect(await rows(app)).toBe(before);
    });
  }

  it('refuses the literal %09 and %0a spellings of the report', async () => {
    for (const raw of ['/%09/evil.example', '/%0a/evil.example', '/%0d%0a/evil.example']) {
      const r = await app.call(`/v1/auth/oidc/login?return_to=${raw}`);
      expect(r.status, `${raw}: ${r.body}`).toBe(400);
    }
  });

  it('keeps a local path with a query and lands there after the sign-in', async () => {
    const start = await startSignIn(app, '/v1/whoami?x=1&y=a:b');
    const link = await completeCodeFlow(start.location, { username: 'carol', password: 'carol-demo' });
    const landed = await callback(app, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    expect(landed.headers.location).toBe('/v1/whoami?x=1&y=a:b');
  });

  it('checks return_to again before the redirect (a row stored by an older gateway): the default, never a 500', async () => {
    const start = await startSignIn(app);
    await app.store.db.updateTable('oidc_requests').set({ return_to: '/\n/evil.example' }).execute();
    const link = await completeCodeFlow(start.location, { username: 'carol', password: 'carol-demo' });
    const landed = await callback(app, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    expect(landed.headers.location).toBe('/v1/whoami');
  });
});

describe('the address lockout counts tried credentials only', () => {
  let locked: IdentityApp;
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await startSlapd();
    locked = await startIdentityApp({
      sso: true,
      config: {
        login: { max_failures: 100, max_failures_per_address: 3, slowdown_after: 100 },
        ldap: { url: slapd.url, start_tls: true, ca_file: slapd.caFile, bind_dn: slapd.bindDn, bind_password: slapd.bindPassword, user_base: PEOPLE },
      },
    });
  }, 90_000);
  afterAll(async () => {
    await locked?.close();
    await slapd?.stop();
  });

  it('does not lock SSO after many error, unknown-state and code-less callbacks', async () => {
    const junk = ['error=access_denied', 'error=access_denied&error_description=x', 'error=server_error&state=nope', 'state=unknown-state&code=abc', 'code=abc', '', 'state=unknown-state'];
    for (let i = 0; i < 4; i++) {
      for (const q of junk) {
        const r = await locked.call(`/v1/auth/oidc/callback?${q}`);
        expect(r.status, `${q}: ${r.body}`).not.toBe(429);
        expect(r.status, q).toBeGreaterThanOrEqual(400);
        expect(r.status, q).toBeLessThan(500);
      }
    }
    const start = await startSignIn(locked);
    const link = await completeCodeFlow(start.location, { username: 'alice', password: 'alice-demo' });
    const landed = await callback(locked, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    expect(locked.events().filter((e) => e.action === 'auth.login_failed' && e.reason === 'throttled')).toEqual([]);
  });

  it('does not lock the address after many polls of made-up device codes (a device login is free to start too)', async () => {
    const before = locked.events().length;
    for (let i = 0; i < 25; i++) {
      const r = await locked.call('/v1/auth/device/token', { method: 'POST', body: JSON.stringify({ device_code: `made-up-${i}` }), headers: { 'content-type': 'application/json' } });
      // Answered here (RFC 8628 invalid_grant): a code this gateway never handed out is not sent to the provider.
      expect(r.status, r.body).toBe(400);
      expect(r.json()).toMatchObject({ error: 'invalid_grant' });
    }
    // Nothing reached the provider, so nothing was tried: no audit row per made-up code.
    expect(locked.events().slice(before).filter((e) => e.action === 'auth.login_failed')).toEqual([]);
    // A code the gateway did hand out is asked about at the provider: pending until approved, then a login.
    const device = await locked.call('/v1/auth/device', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(device.status, device.body).toBe(200);
    const { device_code, verification_uri_complete } = device.json<{ device_code: string; verification_uri_complete: string }>();
    const poll = () => locked.call('/v1/auth/device/token', { method: 'POST', body: JSON.stringify({ device_code }), headers: { 'content-type': 'application/json' } });
    expect((await poll()).json()).toMatchObject({ error: 'authorization_pending' });
    await approveDevice(verification_uri_complete, { username: 'alice', password: 'alice-demo' });
    const done = await poll();
    expect(done.status, done.body).toBe(200);
    const start = await startSignIn(locked);
    const link = await completeCodeFlow(start.location, { username: 'alice', password: 'alice-demo' });
    expect((await callback(locked, link, `${LOGIN_COOKIE}=${start.binding}`)).status).toBe(302);
  });

  it('counts wrong passwords against the address, not a forged code (it uses up its own sign-in only)', async () => {
    // A code the provider never issued, on a sign-in this browser did start: the sign-in is used up...
    const start = await startSignIn(locked);
    const state = new URL(start.location).searchParams.get('state')!;
    const forged = await locked.call(`/v1/auth/oidc/callback?state=${state}&code=forged-code`, { headers: { cookie: `${LOGIN_COOKIE}=${start.binding}` } });
    expect(forged.status, forged.body).toBe(401);
    const again = await locked.call(`/v1/auth/oidc/callback?state=${state}&code=forged-code-2`, { headers: { cookie: `${LOGIN_COOKIE}=${start.binding}` } });
    expect(again.status).toBe(401);
    expect(locked.events().filter((e) => e.action === 'auth.login_failed' && e.reason === 'invalid_state').length).toBeGreaterThan(0);
    // ...but not counted against the address: two wrong passwords (limit 3) leave the right one through.
    const ldap = (password: string) => locked.call('/v1/auth/ldap', { method: 'POST', body: JSON.stringify({ username: 'alice', password }), headers: { 'content-type': 'application/json' } });
    for (const password of ['guess-1', 'guess-2']) expect((await ldap(password)).status).toBe(401);
    const right = await ldap(passwordOf('alice'));
    expect(right.status, right.body).toBe(200);
    // A third wrong password is a third tried credential: the address is locked for LDAP.
    expect((await ldap('guess-3')).status).toBe(401);
    expect((await ldap(passwordOf('alice'))).status).toBe(429);
  });

  it('an address locked by junk LDAP logins still signs in with SSO, in the browser and with a device', async () => {
    const ldap = (username: string) => locked.call('/v1/auth/ldap', { method: 'POST', body: JSON.stringify({ username, password: 'junk' }), headers: { 'content-type': 'application/json' } });
    for (let i = 0; i < 21; i++) expect([401, 429]).toContain((await ldap(`junk-${i}`)).status);
    expect((await ldap(passwordOf('alice'))).status).toBe(429);
    // The SSO callback and the device poll count nothing, so they do not check the address lockout either.
    const start = await startSignIn(locked);
    const link = await completeCodeFlow(start.location, { username: 'alice', password: 'alice-demo' });
    const landed = await callback(locked, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    expect(cookieValue(landed, SESSION_COOKIE)).toBeTruthy();
    expect((await locked.call('/v1/auth/oidc/callback?error=access_denied')).status).not.toBe(429);
    const device = await locked.call('/v1/auth/device', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(device.status, device.body).toBe(200);
    const { device_code, verification_uri_complete } = device.json<{ device_code: string; verification_uri_complete: string }>();
    await approveDevice(verification_uri_complete, { username: 'bob', password: 'bob-demo' });
    const done = await locked.call('/v1/auth/device/token', { method: 'POST', body: JSON.stringify({ device_code }), headers: { 'content-type': 'application/json' } });
    expect(done.status, done.body).toBe(200);
  });
});

describe('sign-ins minted for free cannot lock SSO, and an address keeps only so many pending', () => {
  const LIMIT = 30;
  let minting: IdentityApp;
  beforeAll(async () => {
    minting = await startIdentityApp({ sso: true, config: { login: { max_failures: 100, max_failures_per_address: 3, slowdown_after: 100, max_sign_ins_per_address: LIMIT } } });
  }, 60_000);
  afterAll(async () => {
    await minting?.close();
  });

  it('25 start + bad-code rounds from one address do not lock SSO; a real sign-in afterwards works', async () => {
    for (let i = 0; i < 25; i++) {
      const start = await startSignIn(minting);
      const state = new URL(start.location).searchParams.get('state')!;
      const r = await minting.call(`/v1/auth/oidc/callback?state=${state}&code=x`, { headers: { cookie: `${LOGIN_COOKIE}=${start.binding}` } });
      expect(r.status, `round ${i}: ${r.body}`).toBe(401);
    }
    const events = minting.events().filter((e) => e.action === 'auth.login_failed');
    expect(events).toHaveLength(25);
    expect(events.filter((e) => e.reason === 'throttled')).toEqual([]);
    const start = await startSignIn(minting);
    const link = await completeCodeFlow(start.location, { username: 'alice', password: 'alice-demo' });
    const landed = await callback(minting, link, `${LOGIN_COOKIE}=${start.binding}`);
    expect(landed.status, landed.body).toBe(302);
    expect(cookieValue(landed, SESSION_COOKIE)).toBeTruthy();
  });

  it('never refuses a start for being over the bound: 81 starts all redirect, the oldest sign-in is evicted, the latest completes', async () => {
    const first = await startSignIn(minting);
    let last = first;
    for (let i = 0; i < 80; i++) last = await startSignIn(minting);
    // Storage per address stays bounded: at most LIMIT pending sign-ins.
    expect(await rows(minting)).toBeLessThanOrEqual(LIMIT);
    // The evicted sign-in, finished at the provider, gets the normal "start again".
    const firstLink = await completeCodeFlow(first.location, { username: 'alice', password: 'alice-demo' });
    const evicted = await callback(minting, firstLink, `${LOGIN_COOKIE}=${first.binding}`);
    expect(evicted.status, evicted.body).toBe(401);
    expect(evicted.json<{ message: string }>().message).toMatch(/start again/);
    const lastLink = await completeCodeFlow(last.location, { username: 'alice', password: 'alice-demo' });
    const finished = await callback(minting, lastLink, `${LOGIN_COOKIE}=${last.binding}`);
    expect(finished.status, finished.body).toBe(302);
    expect(cookieValue(finished, SESSION_COOKIE)).toBeTruthy();
  });
});

describe('a sign-in is started by a navigation, not by another site\'s image or script', () => {
  for (const site of ['cross-site', 'same-site']) {
    for (const dest of ['image', 'script', 'empty', undefined]) {
      it(`refuses Sec-Fetch-Site: ${site} with Sec-Fetch-Dest: ${dest ?? '(none)'} and stores nothing`, async () => {
        const before = await rows(app);
        const r = await app.call('/v1/auth/oidc/login', { headers: { 'sec-fetch-site': site, ...(dest ? { 'sec-fetch-dest': dest } : {}) } });
        expect(r.status, r.body).toBe(403);
        expect(r.json()).toMatchObject({ error: 'forbidden' });
        expect(r.headers.location).toBeUndefined();
        expect(setCookies(r)).toEqual([]);
        expect(await rows(app)).toBe(before);
      });
    }
  }

  it('starts on a top-level navigation from another site (an emailed link), from this site, and without Sec-Fetch-* (a CLI)', async () => {
    const variants: Record<string, string>[] = [{ 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'document' }, { 'sec-fetch-site': 'same-site', 'sec-fetch-dest': 'document' }, { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'empty' }, { 'sec-fetch-site': 'none', 'sec-fetch-dest': 'document' }, {}];
    for (const headers of variants) {
      const before = await rows(app);
      const r = await app.call('/v1/auth/oidc/login', { headers });
      expect(r.status, `${JSON.stringify(headers)}: ${r.body}`).toBe(302);
      expect(await rows(app)).toBe(before + 1);
    }
  });
});
