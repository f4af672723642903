// A person's POSIX account on the cluster (for the Slurm backend): read at login from the directory
// attribute (slurm.user_attribute) or the IdP claim (slurm.user_claim), kept only when it is a valid
// POSIX user name (never root), and carried by the login into every credential of it: access
// tokens (also after a refresh) and browser sessions. Absent, the person has no account.
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DevIdp, readDevUsers, startDevIdp } from '../src/auth/dev-idp/index.js';
import { BrowserSessions } from '../src/auth/browser-sessions.js';
import { createKeyAndCsr } from '../src/auth/certificate-request.js';
import { createLdapLogin, type LdapSettings } from '../src/auth/ldap.js';
import { createOidcClient, type OidcSettings } from '../src/auth/oidc.js';
import { SigningKeys } from '../src/auth/signing-keys.js';
import { TOKEN_AUDIENCE, TokenService } from '../src/auth/tokens.js';
import { loadConfig } from '../src/config/index.js';
import { posixUserOf } from '../src/identity/index.js';
import type { Store } from '../src/store/index.js';
import { ROOT, type Sandbox, sandbox } from './support/gatehouse.js';
import { fetchTls } from './support/https.js';
import { approveDevice } from './support/oidc-browser.js';
import { Stack } from './support/stack.js';
import { PEOPLE, passwordOf, type Slapd, startSlapd } from './support/slapd.js';
import { openTestStore } from './support/test-store.js';

describe('a POSIX user name', () => {
  it('is what useradd accepts portably, never root, else absent', () => {
    for (const ok of ['alice', '_svc', 'a', 'data-sci_2', `a${'b'.repeat(31)}`]) expect(posixUserOf(ok), ok).toBe(ok);
    for (const bad of ['', 'root', 'Alice', '1alice', '-x', 'al ice', 'alice@example.org', 'alice.b', `a${'b'.repeat(32)}`, 'alice\n', 'é', 42, null, undefined, ['alice']]) {
      expect(posixUserOf(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });
});

describe('from the directory at an LDAP login', () => {
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await startSlapd();
  });
  afterAll(async () => {
    await slapd?.stop();
  });
  const settings = (): LdapSettings => ({
    url: slapd.url,
    start_tls: true,
    ca_file: slapd.caFile,
    bind_dn: slapd.bindDn,
    bind_password: slapd.bindPassword,
    bind_password_file: '',
    user_base: PEOPLE,
    user_filter: '(uid={username})',
    posix_user_attribute: 'uid',
    group_attribute: 'memberOf',
    group_base: '',
    group_filter: '(|(member={dn})(uniqueMember={dn})(memberUid={username}))',
    timeout_ms: 5000,
  });

  it('reads the configured attribute (uid by default)', async () => {
    expect((await createLdapLogin(settings(), { posixUserAttribute: 'uid' }).login('alice', passwordOf('alice'))).posix_user).toBe('alice');
    // Another attribute than the one that names the person: frank's gecos holds his cluster account.
    const frank = await createLdapLogin(settings(), { posixUserAttribute: 'gecos' }).login('frank', passwordOf('frank'));
    expect(frank).toMatchObject({ user: 'frank', posix_user: 'fposix' });
  });

  it('leaves it absent when the entry lacks the attribute or its value is no POSIX name, and the login still works', async () => {
    const none = await createLdapLogin(settings(), { posixUserAttribute: 'gecos' }).login('alice', passwordOf('alice'));
    expect(none.user).toBe('alice');
    expect(none).not.toHaveProperty('posix_user');
    // cn "Alice Analyst", uidNumber "10001": present, but no account name.
    expect(await createLdapLogin(settings(), { posixUserAttribute: 'cn' }).login('alice', passwordOf('alice'))).not.toHaveProperty('posix_user');
    expect(await createLdapLogin(settings(), { posixUserAttribute: 'uidNumber' }).login('frank', passwordOf('frank'))).not.toHaveProperty('posix_user');
  });

  it('has none when no attribute is configured', async () => {
    expect(await createLdapLogin(settings()).login('alice', passwordOf('alice'))).not.toHaveProperty('posix_user');
  });
});

describe('from the identity provider at an OIDC login', () => {
  let box: Sandbox;
  let idp: DevIdp;
  beforeAll(async () => {
    box = sandbox({ dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') }, log: { level: 'warn' } });
    idp = await startDevIdp(loadConfig({ path: box.configFile, env: {} }).config);
  });
  afterAll(async () => {
    await idp?.close();
    box?.remove();
  });
  const settings = (extra: Partial<OidcSettings>): OidcSettings => ({
    issuer: idp.url,
    clientId: 'gatehouse-dev',
    scopes: ['openid', 'profile', 'email', 'groups'],
    usernameClaim: 'preferred_username',
    groupsClaim: 'groups',
    pollInterval: 0,
    ...extra,
  });
  const loginAs = async (extra: Partial<OidcSettings>) => {
    const client = createOidcClient(settings(extra));
    const device = await client.startDevice();
    await approveDevice(device.verification_uri_complete, { username: 'alice', password: 'alice-demo' });
    return client.pollDevice(device.device_code);
  };

  it('takes the named claim when it is a POSIX name, and nothing otherwise', async () => {
    expect((await loginAs({ posixUserClaim: 'preferred_username' })).posix_user).toBe('alice');
    // The development provider's own posix_user claim (dev-idp/users.yaml), for trying Slurm locally.
    expect((await loginAs({ posixUserClaim: 'posix_user' })).posix_user).toBe('alice');
    // email (alice@example.test) is no POSIX name; a claim the provider does not send is none.
    expect(await loginAs({ posixUserClaim: 'email' })).not.toHaveProperty('posix_user');
    expect(await loginAs({ posixUserClaim: 'unix_user' })).not.toHaveProperty('posix_user');
    // Not configured: OIDC logins have no account.
    expect(await loginAs({})).not.toHaveProperty('posix_user');
  });
});

describe("the development provider's posix_user", () => {
  const usersFile = (posix: string) => {
    const file = join(mkdtempSync(join(tmpdir(), 'gatehouse-dev-users-')), 'users.yaml');
    writeFileSync(file, `users:\n  - {username: eve, password: pw, name: Eve, email: eve@example.test, groups: [], posix_user: ${posix}}\n`);
    return file;
  };
  it('is taken when it is a POSIX name, and refuses the file naming the entry otherwise (root, upper case)', () => {
    expect(readDevUsers(usersFile('eve'))[0]?.posix_user).toBe('eve');
    expect(() => readDevUsers(usersFile('root'))).toThrow(/users\[0\] \(eve\): posix_user must be a POSIX user name/);
    expect(() => readDevUsers(usersFile('Eve'))).toThrow(/posix_user must be a POSIX user name/);
  });
});

describe('carried by the login into its credentials', () => {
  const ISSUER = 'urn:gatehouse:test';
  let store: Store;
  let clock: number;
  let tokens: TokenService;
  beforeEach(async () => {
    clock = Date.parse('2026-12-02T10:00:00Z');
    store = await openTestStore(mkdtempSync(join(tmpdir(), 'gatehouse-posix-')));
    const keys = await SigningKeys.open(store, { rotationSeconds: 3600, tokenLifetimeSeconds: 900, now: () => clock });
    tokens = new TokenService(store, keys, { issuer: ISSUER, accessTtlSeconds: 900, refreshTtlSeconds: 12 * 3600, now: () => clock });
    await tokens.start();
  });
  afterEach(async () => {
    tokens.stop();
    await store.close();
  });

  it('in access tokens, after a refresh too, and in browser sessions', async () => {
    const pair = await tokens.login({ user: 'alice', groups: ['analysts'], auth_method: 'ldap', posix_user: 'asmith' });
    expect(decodeJwt(pair.access_token).posix_user).toBe('asmith');
    expect((await tokens.verifyAccess(pair.access_token)).posix_user).toBe('asmith');
    const plan = await tokens.checkRefresh(pair.refresh_token);
    expect(plan.subject.posix_user).toBe('asmith');
    const next = await tokens.rotate(plan);
    expect((await tokens.verifyAccess(next.access_token)).posix_user).toBe('asmith');
    const sessions = new BrowserSessions(store, tokens);
    const session = await sessions.create(pair.session_id);
    expect((await sessions.verify(session.cookie, undefined, false)).posix_user).toBe('asmith');
  });

  it('absent when the login had none: no claim, no account', async () => {
    const pair = await tokens.login({ user: 'bob', groups: [], auth_method: 'oidc' });
    expect(decodeJwt(pair.access_token)).not.toHaveProperty('posix_user');
    expect(await tokens.verifyAccess(pair.access_token)).not.toHaveProperty('posix_user');
    const session = await new BrowserSessions(store, tokens).create(pair.session_id);
    expect(await new BrowserSessions(store, tokens).verify(session.cookie, undefined, false)).not.toHaveProperty('posix_user');
  });

  it('never taken from a token claim that is no POSIX name, even one signed with our key', async () => {
    const row = await store.db.selectFrom('signing_keys').selectAll().orderBy('signs_until', 'desc').executeTakeFirstOrThrow();
    const now = Math.floor(clock / 1000);
    // A real login to hang the forged claims on: a token of a login the store does not hold is refused outright.
    const { session_id: sid } = await tokens.login({ user: 'alice', groups: [], auth_method: 'ldap' });
    for (const posix_user of ['root', 'Alice', 'a b', 7]) {
      const token = await new SignJWT({ iss: ISSUER, aud: TOKEN_AUDIENCE, sub: 'alice', jti: `j${String(posix_user)}`, iat: now, exp: now + 600, groups: [], auth_method: 'ldap', sid, posix_user })
        .setProtectedHeader({ alg: 'EdDSA', kid: row.kid })
        .sign(createPrivateKey(row.private_pkcs8));
      expect(await tokens.verifyAccess(token), String(posix_user)).not.toHaveProperty('posix_user');
    }
  });

  it('never stored when a login method hands over an invalid one', async () => {
    const pair = await tokens.login({ user: 'carol', groups: [], auth_method: 'ldap', posix_user: 'root' });
    expect(await tokens.verifyAccess(pair.access_token)).not.toHaveProperty('posix_user');
    expect((await tokens.family(pair.session_id)).posix_user).toBeNull();
  });
});

describe('through a real gateway, by every credential', () => {
  let stack: Stack;
  beforeAll(async () => {
    // preferred_username as the account: the demo users' names are POSIX names.
    stack = await Stack.start({ users: { 'Mixed.Case': ['analysts'] }, config: { slurm: { user_claim: 'preferred_username' } } });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('shows the account in /v1/whoami for a token, a session-less certificate of the same login, and none for a name that is no account', async () => {
    const token = await stack.login('alice');
    const who = await stack.api('/v1/whoami', token);
    expect(who.json()).toMatchObject({ user: 'alice', credential: 'bearer', posix_user: 'alice' });
    const { keyPem, csrPem } = await createKeyAndCsr({ user: 'alice' });
    const issued = await stack.api('/v1/certs', token, { method: 'POST', body: { csr: csrPem } });
    expect(issued.status, issued.body).toBe(200);
    const mtls = await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, cert: issued.json<{ certificate: string }>().certificate, key: keyPem });
    expect(mtls.json()).toMatchObject({ user: 'alice', credential: 'certificate', posix_user: 'alice' });
    // Mixed.Case is a fine Gatehouse username but no POSIX account: null, and Slurm would refuse.
    const other = await stack.api('/v1/whoami', await stack.login('Mixed.Case'));
    expect(other.json()).toMatchObject({ user: 'Mixed.Case', posix_user: null });
  });
});
