// The development OIDC provider, started in-process, and the gateway's relying party against it:
// device flow and code flow end to end through the provider's real pages, and what must be refused.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevIdp, startDevIdp } from '../src/auth/dev-idp/index.js';
import { LoginError } from '../src/auth/login-error.js';
import { createOidcClient, type OidcClient, type OidcSettings } from '../src/auth/oidc.js';
import { loadConfig } from '../src/config/index.js';
import { ROOT, type Sandbox, sandbox } from './support/gatehouse.js';
import { approveDevice, completeCodeFlow } from './support/oidc-browser.js';

const CALLBACK = 'https://127.0.0.1:9443/v1/auth/oidc/callback';
const alice = { username: 'alice', password: 'alice-demo' };
const bob = { username: 'bob', password: 'bob-demo' };

function settings(issuer: string, extra: Partial<OidcSettings> = {}): OidcSettings {
  return {
    issuer,
    clientId: 'gatehouse-dev',
    scopes: ['openid', 'profile', 'email', 'groups'],
    usernameClaim: 'preferred_username',
    groupsClaim: 'groups',
    pollInterval: 0,
    ...extra,
  };
}

/** The LoginError reason a promise fails with (and fails the test when it succeeds). */
async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof LoginError) return err.reason;
    throw err;
  }
  throw new Error('expected a LoginError, got success');
}

let box: Sandbox;
let idp: DevIdp;
let rp: OidcClient;

beforeAll(async () => {
  box = sandbox({ dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') }, log: { level: 'warn' } });
  idp = await startDevIdp(loadConfig({ path: box.configFile, env: {} }).config);
  rp = createOidcClient(settings(idp.url));
});

afterAll(async () => {
  await idp?.close();
  box?.remove();
});

describe('development OIDC provider', () => {
  it('listens on loopback and publishes its own URL as the issuer', async () => {
    expect(idp.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const metadata = (await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe(idp.url);
    expect(metadata.device_authorization_endpoint).toBe(`${idp.url}/device/auth`);
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
    expect(metadata.scopes_supported).toEqual(expect.arrayContaining(['openid', 'groups']));
  });

  it('labels its pages as a development provider', async () => {
    const page = await (await fetch(`${idp.url}/device`)).text();
    expect(page).toContain('Gatehouse development provider');
    expect(page).toContain('DEVELOPMENT ONLY');
  });

  it('refuses to listen on anything but a loopback address', async () => {
    const config = loadConfig({ path: box.configFile, env: {} }).config;
    await expect(startDevIdp(config, { host: '0.0.0.0' })).rejects.toThrow(/loopback/);
  });

  it('names the file and the entry of a bad users file', async () => {
    const file = join(box.dir, 'users.yaml');
    writeFileSync(file, 'users:\n  - username: erin\n    password: erin-demo\n    name: Erin\n    email: erin@example.test\n    groups: [a]\n  - username: frank\n    name: Frank\n    email: frank@example.test\n');
    const config = loadConfig({ path: box.configFile, env: {} }).config;
    config.dev_idp.users_file = file;
    await expect(startDevIdp(config)).rejects.toThrow(`dev_idp.users_file ${file}: users[1] (frank): password must be a non-empty string`);
  });

  it.each([
    'https://evil.example/v1/auth/oidc/callback',
    'https://127.0.0.1:9443/v1/auth/oidc/other',
    'http://127.0.0.1:9443/v1/auth/oidc/callback',
    'https://127.0.0.1:9443/v1/auth/oidc/callback?next=https://evil.example',
  ])('refuses the redirect URI %s', async (redirectUri) => {
    const login = await rp.beginBrowserLogin(redirectUri);
    const response = await fetch(login.url, { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('redirect_uri');
  });

  it('allows the callback under server.public_url', async () => {
    const config = loadConfig({ path: box.configFile, env: {} }).config;
    config.server.public_url = 'https://gatehouse.example.com/';
    const other = await startDevIdp(config);
    try {
      const client = createOidcClient(settings(other.url));
      const redirectUri = 'https://gatehouse.example.com/v1/auth/oidc/callback';
      const login = await client.beginBrowserLogin(redirectUri);
      const callback = await completeCodeFlow(login.url, { username: 'dave', password: 'dave-demo' });
      expect(callback.origin + callback.pathname).toBe(redirectUri);
      expect(await client.finishBrowserLogin(callback, { ...login, redirectUri })).toEqual({ user: 'dave', groups: ['contractors'], auth_method: 'oidc' });
    } finally {
      await other.close();
    }
  });
});

describe('device flow (RFC 8628) through the gateway', () => {
  it('is pending until alice approves, then returns alice with her groups', async () => {
    const device = await rp.startDevice();
    expect(device.user_code).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    expect(device.verification_uri).toBe(`${idp.url}/device`);
    expect(new URL(device.verification_uri_complete).searchParams.get('user_code')).toBe(device.user_code);
    expect(device.interval).toBe(0);
    expect(device.expires_in).toBeGreaterThan(0);

    expect(await reason(rp.pollDevice(device.device_code))).toBe('authorization_pending');
    const approval = await approveDevice(device.verification_uri_complete, alice);
    expect(approval.outcome).toBe('approved');
    expect(await rp.pollDevice(device.device_code)).toEqual({ user: 'alice', groups: ['analysts'], auth_method: 'oidc' });
    // A device code is good for one login only.
    expect(await reason(rp.pollDevice(device.device_code))).toBe('provider_error');
  });

  it('accepts the code typed in at verification_uri', async () => {
    const device = await rp.startDevice();
    const approval = await approveDevice({ verification_uri: device.verification_uri, user_code: device.user_code.toLowerCase() }, bob);
    expect(approval.outcome).toBe('approved');
    expect(await rp.pollDevice(device.device_code)).toEqual({ user: 'bob', groups: ['platform-admins'], auth_method: 'oidc' });
  });

  it('stays pending after a wrong password at the provider', async () => {
    const device = await rp.startDevice();
    const attempt = await approveDevice(device.verification_uri_complete, { username: 'alice', password: 'wrong' });
    expect(attempt.outcome).toBe('login_failed');
    expect(attempt.html).toContain('Wrong username or password');
    expect(await reason(rp.pollDevice(device.device_code))).toBe('authorization_pending');
  });

  it('reports access_denied when the user refuses', async () => {
    const device = await rp.startDevice();
    expect((await approveDevice(device.verification_uri_complete, alice, { deny: true })).outcome).toBe('denied');
    expect(await reason(rp.pollDevice(device.device_code))).toBe('access_denied');
  });

  it('refuses an unknown device code', async () => {
    expect(await reason(rp.pollDevice('not-a-device-code'))).toBe('provider_error');
  });
});

describe('browser sign-in (authorization code + PKCE)', () => {
  it('turns the callback into the signed-in subject', async () => {
    const login = await rp.beginBrowserLogin(CALLBACK);
    const url = new URL(login.url);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('state')).toBe(login.state);
    expect(url.searchParams.get('nonce')).toBe(login.nonce);

    const callback = await completeCodeFlow(login.url, bob);
    expect(callback.origin + callback.pathname).toBe(CALLBACK);
    expect(callback.searchParams.get('state')).toBe(login.state);
    expect(callback.searchParams.get('code')).toBeTruthy();
    const subject = await rp.finishBrowserLogin(callback, { ...login, redirectUri: CALLBACK });
    expect(subject).toEqual({ user: 'bob', groups: ['platform-admins'], auth_method: 'oidc' });
  });

  it('allows the callback on any loopback port', async () => {
    const redirectUri = 'https://localhost:18443/v1/auth/oidc/callback';
    const login = await rp.beginBrowserLogin(redirectUri);
    const callback = await completeCodeFlow(login.url, { username: 'carol', password: 'carol-demo' });
    expect(await rp.finishBrowserLogin(callback, { ...login, redirectUri })).toEqual({ user: 'carol', groups: ['auditors'], auth_method: 'oidc' });
  });

  it('refuses a tampered state, and the genuine callback still works afterwards', async () => {
    const login = await rp.beginBrowserLogin(CALLBACK);
    const callback = await completeCodeFlow(login.url, alice);
    const tampered = new URL(callback);
    tampered.searchParams.set('state', `${login.state}x`);
    expect(await reason(rp.finishBrowserLogin(tampered, { ...login, redirectUri: CALLBACK }))).toBe('invalid_state');
    expect((await rp.finishBrowserLogin(callback, { ...login, redirectUri: CALLBACK })).user).toBe('alice');
  });

  it('refuses a code used twice', async () => {
    const login = await rp.beginBrowserLogin(CALLBACK);
    const callback = await completeCodeFlow(login.url, alice);
    await rp.finishBrowserLogin(callback, { ...login, redirectUri: CALLBACK });
    expect(await reason(rp.finishBrowserLogin(callback, { ...login, redirectUri: CALLBACK }))).toBe('provider_error');
  });

  it('refuses an ID token whose nonce is not the one of the login request', async () => {
    const login = await rp.beginBrowserLogin(CALLBACK);
    const callback = await completeCodeFlow(login.url, alice);
    const other = await rp.beginBrowserLogin(CALLBACK);
    expect(await reason(rp.finishBrowserLogin(callback, { ...login, nonce: other.nonce, redirectUri: CALLBACK }))).toBe('invalid_state');
  });

  it('refuses a wrong PKCE code verifier', async () => {
    const login = await rp.beginBrowserLogin(CALLBACK);
    const callback = await completeCodeFlow(login.url, alice);
    const other = await rp.beginBrowserLogin(CALLBACK);
    expect(await reason(rp.finishBrowserLogin(callback, { ...login, codeVerifier: other.codeVerifier, redirectUri: CALLBACK }))).toBe('provider_error');
  });

  it('reports access_denied when the user refuses consent', async () => {
    const login = await rp.beginBrowserLogin(CALLBACK);
    const callback = await completeCodeFlow(login.url, alice, { deny: true });
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(await reason(rp.finishBrowserLogin(callback, { ...login, redirectUri: CALLBACK }))).toBe('access_denied');
  });
});

describe('relying party configuration', () => {
  it('refuses a plain-http issuer that is not on a loopback host', () => {
    expect(() => createOidcClient(settings('http://idp.example.com'))).toThrow(/https/);
    expect(() => createOidcClient(settings('http://10.0.0.5:8445'))).toThrow(/https/);
    expect(() => createOidcClient(settings('not a url'))).toThrow(/oidc.issuer/);
  });

  it('reports provider_unavailable while the provider is down, and recovers once it is up', async () => {
    const port = await freePort();
    const client = createOidcClient(settings(`http://127.0.0.1:${port}`));
    expect(await reason(client.startDevice())).toBe('provider_unavailable');
    expect(await reason(client.beginBrowserLogin(CALLBACK))).toBe('provider_unavailable');

    const config = loadConfig({ path: box.configFile, env: {} }).config;
    config.dev_idp.port = port;
    const late = await startDevIdp(config);
    try {
      const device = await client.startDevice();
      expect(device.verification_uri).toBe(`${late.url}/device`);
    } finally {
      await late.close();
    }
    // Down again after discovery worked: still a clean provider_unavailable.
    expect(await reason(client.startDevice())).toBe('provider_unavailable');
  });

  it('refuses a username claim that is not a usable username', async () => {
    const client = createOidcClient(settings(idp.url, { usernameClaim: 'email' }));
    const device = await client.startDevice();
    await approveDevice(device.verification_uri_complete, alice);
    // alice@example.test is a valid username; name ("Alice Analyst") is not.
    expect((await client.pollDevice(device.device_code)).user).toBe('alice@example.test');
    const byName = createOidcClient(settings(idp.url, { usernameClaim: 'name' }));
    const second = await byName.startDevice();
    await approveDevice(second.verification_uri_complete, alice);
    expect(await reason(byName.pollDevice(second.device_code))).toBe('invalid_claims');
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
