// review32: what the LDAP refresh re-check (src/auth/directory-check.ts) does not reach. The attacker
// is a person the directory has taken a group from, or deleted, who keeps using a credential other
// than the refresh token: a client certificate, or the console's session cookie. Real slapd, the
// real identity routes and CA, an injected clock (no waiting).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/auth/index.js';
import { GROUPS, ldapSection, PEOPLE, passwordOf, type Slapd, startSlapd } from '../support/slapd.js';
import { type IdentityApp, ldapLogin, startIdentityApp, type TokenPair } from '../support/identity-app.js';

const MINUTE = 60_000;
let clock = Date.now();
let slapd: Slapd;
let app: IdentityApp;

const json = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

type Pair = TokenPair;

const login = (user: string): Promise<Pair> => ldapLogin(app, user, passwordOf(user));

async function certificateFor(pair: Pair): Promise<{ cert: string; key: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const r = await app.call('/v1/certs', { ...json({ csr: csrPem }), headers: { 'content-type': 'application/json', authorization: `Bearer ${pair.access_token}` } });
  expect(r.status, r.body).toBe(200);
  return { cert: r.json<{ certificate: string }>().certificate, key: keyPem };
}

const whoamiWith = (cert: { cert: string; key: string }) => app.call('/v1/whoami', { cert: cert.cert, key: cert.key });

beforeAll(async () => {
  slapd = await startSlapd();
  app = await startIdentityApp({
    now: () => clock,
    config: {
      tokens: { access_ttl: '15m', refresh_ttl: '12h' },
      certs: { client_ttl: '12h' },
      ldap: ldapSection(slapd),
    },
  });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await slapd?.stop();
});

describe('a certificate carries the groups its login carries now', () => {
  it('loses a group the directory took away once the login has refreshed, as the access token does', async () => {
    clock = Date.now();
    const first = await login('alice');
    const cert = await certificateFor(first);
    expect((await whoamiWith(cert)).json()).toMatchObject({ user: 'alice', credential: 'certificate', groups: ['analysts', 'data-stewards'] });
    await slapd.change([`dn: cn=data-stewards,${GROUPS}`, 'changetype: modify', 'delete: member', `member: uid=alice,${PEOPLE}`, ''].join('\n'));
    const r = await app.call('/v1/auth/token', json({ grant_type: 'refresh_token', refresh_token: first.refresh_token }));
    expect(r.status, r.body).toBe(200);
    const who = await app.call('/v1/whoami', bearer(r.json<Pair>().access_token));
    expect(who.json()).toMatchObject({ groups: ['analysts'] });
    // The certificate issued before the change must not keep data-stewards for the rest of its 12 h.
    const byCert = await whoamiWith(cert);
    expect(byCert.status, byCert.body).toBe(200);
    expect(byCert.json()).toMatchObject({ credential: 'certificate', groups: ['analysts'] });
  });
});

// Found by review32: the directory was asked only when a refresh token was used, so a person who
// never refreshes (a certificate, the console's cookie) kept access after being deleted until the
// certificate or the login ended (12 h by default). Now such a credential asks again once the
// directory's last answer for its login is older than tokens.access_ttl (src/auth/directory-guard.ts).
describe('a person deleted from the directory, holding a credential that never refreshes', () => {
  it('is refused with their certificate within tokens.access_ttl of the deletion', async () => {
    clock = Date.now();
    const cert = await certificateFor(await login('dave'));
    expect((await whoamiWith(cert)).status).toBe(200);
    await slapd.change(`dn: uid=dave,${PEOPLE}\nchangetype: delete\n`);
    clock += 16 * MINUTE;
    expect((await whoamiWith(cert)).status).toBe(401);
  });

  it('is refused with their console session cookie within tokens.access_ttl of the deletion', async () => {
    clock = Date.now();
    const r = await app.call('/v1/auth/ldap/session', json({ username: 'carol', password: passwordOf('carol') }, { 'sec-fetch-site': 'same-origin' }));
    expect(r.status, r.body).toBe(200);
    const setCookie = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
    const session = setCookie.map((c) => c.split(';')[0]!).find((c) => c.startsWith('__Host-gatehouse_session='));
    expect(session).toBeDefined();
    const whoami = () => app.call('/v1/whoami', { headers: { cookie: session! } });
    expect((await whoami()).status).toBe(200);
    await slapd.change(`dn: uid=carol,${PEOPLE}\nchangetype: modify\nadd: description\ndescription: disabled\n`);
    clock += 16 * MINUTE;
    expect((await whoami()).status).toBe(401);
  });
});
