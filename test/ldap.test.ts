import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, FilterParser } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLdapLogin, type LdapSettings } from '../src/auth/ldap.js';
import { escapeFilterValue, fillFilter, firstRdnValue } from '../src/auth/ldap-filter.js';
import { LoginError } from '../src/auth/login-error.js';
import { ConfigError } from '../src/config/index.js';
import { freePort, GROUPS, PEOPLE, passwordOf, type Slapd, startSlapd } from './support/slapd.js';

let slapd: Slapd;

beforeAll(async () => {
  slapd = await startSlapd();
});

afterAll(async () => {
  await slapd?.stop();
});

/** Settings for the test directory over StartTLS; a test overrides what it is about. */
function settings(overrides: Partial<LdapSettings> = {}): LdapSettings {
  return {
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
    ...overrides,
  };
}

/** The LoginError a login fails with (the test fails if it succeeds or fails otherwise). */
async function failure(login: Promise<unknown>): Promise<LoginError> {
  const err = await login.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LoginError);
  return err as LoginError;
}

/** An address where nothing listens. */
async function deadUrl(): Promise<string> {
  return `ldap://127.0.0.1:${await freePort()}/`;
}

describe('LDAP login', () => {
  it('logs a user in over StartTLS with the groups from memberOf', async () => {
    const subject = await createLdapLogin(settings()).login('alice', passwordOf('alice'));
    expect(subject).toEqual({ user: 'alice', groups: ['analysts', 'data-stewards'], auth_method: 'ldap' });
  });

  it('logs a user in over LDAPS', async () => {
    const login = createLdapLogin(settings({ url: slapd.ldapsUrl, start_tls: false }));
    expect(await login.login('bob', passwordOf('bob'))).toEqual({ user: 'bob', groups: ['platform-admins'], auth_method: 'ldap' });
    expect((await login.login('carol', passwordOf('carol'))).groups).toEqual(['auditors']);
    expect((await login.login('dave', passwordOf('dave'))).groups).toEqual(['contractors']);
  });

  it('takes the username from the directory entry, not from what was typed', async () => {
    // uid matches case-insensitively in the directory; the identity carries the directory's spelling.
    const subject = await createLdapLogin(settings()).login('ALICE', passwordOf('alice'));
    expect(subject.user).toBe('alice');
  });

  it('finds a posixGroup membership (memberUid) by the group search when the user has no memberOf', async () => {
    const subject = await createLdapLogin(settings({ group_base: GROUPS })).login('frank', passwordOf('frank'));
    expect(subject).toEqual({ user: 'frank', groups: ['hpc-users'], auth_method: 'ldap' });
  });

  it('finds groupOfNames and groupOfUniqueNames memberships by the group search', async () => {
    // An attribute nobody has stands in for a directory without the memberof overlay.
    const login = createLdapLogin(settings({ group_base: GROUPS, group_attribute: 'departmentNumber' }));
    expect((await login.login('alice', passwordOf('alice'))).groups).toEqual(['analysts', 'data-stewards']);
    expect((await login.login('grace', passwordOf('grace'))).groups).toEqual(['researchers']);
  });

  it('searches groups for a user whose DN has non-ASCII characters', async () => {
    const login = createLdapLogin(settings({ group_base: GROUPS, group_attribute: 'departmentNumber' }));
    expect(await login.login('jose', passwordOf('jose'))).toEqual({ user: 'jose', groups: ['data-stewards'], auth_method: 'ldap' });
  });

  it('gives no groups when the user has none and no group search is configured', async () => {
    expect((await createLdapLogin(settings()).login('frank', passwordOf('frank'))).groups).toEqual([]);
  });

  it('uses the configured user filter as it is (only {username} is filled in)', async () => {
    const login = createLdapLogin(settings({ user_filter: '(&(objectClass=posixAccount)(uid={username}))' }));
    expect((await login.login('frank', passwordOf('frank'))).user).toBe('frank');
    expect((await failure(login.login('alice', passwordOf('alice')))).reason).toBe('invalid_credentials');
  });

  it('searches anonymously when no service account is configured', async () => {
    const open = await startSlapd({ anonymousSearch: true });
    try {
      const login = createLdapLogin(settings({ url: open.url, ca_file: open.caFile, bind_dn: '', bind_password: '' }));
      expect(await login.login('alice', passwordOf('alice'))).toEqual({ user: 'alice', groups: ['analysts', 'data-stewards'], auth_method: 'ldap' });
      expect((await failure(login.login('alice', 'wrong'))).reason).toBe('invalid_credentials');
    } finally {
      await open.stop();
    }
  });

  it('refuses a wrong password and an unknown user with the same message', async () => {
    const login = createLdapLogin(settings());
    const wrong = await failure(login.login('alice', passwordOf('bob')));
    const unknown = await failure(login.login('mallory', 'whatever'));
    expect(wrong.reason).toBe('invalid_credentials');
    expect(unknown.reason).toBe('invalid_credentials');
    expect(wrong.message).toBe('invalid username or password');
    expect(unknown.message).toBe(wrong.message);
  });

  it('refuses an empty password before any connection', async () => {
    // Nothing listens there: reaching the network would give provider_unavailable.
    const err = await failure(createLdapLogin(settings({ url: await deadUrl() })).login('alice', ''));
    expect(err.reason).toBe('empty_password');
  });

  it.each(['*', ')(uid=*', 'alice)(|(uid=*', '\\00', '\0', 'a'.repeat(300), 'alice*', 'ali ce', 'josé'])(
    'refuses the filter-injection or invalid username %j before any connection',
    async (name) => {
      const err = await failure(createLdapLogin(settings({ url: await deadUrl() })).login(name, 'pw'));
      expect(err.reason).toBe('invalid_username');
    },
  );

  it.each(['*', ')(uid=*', 'alice)(|(uid=*', '\\00', '\0', 'a'.repeat(300), 'alice*', '*)(objectClass=*'])(
    'matches nothing in the directory with the escaped input %j',
    async (name) => {
      const client = new Client({ url: slapd.ldapsUrl, tlsOptions: { ca: readFileSync(slapd.caFile) } });
      try {
        await client.bind(slapd.bindDn, slapd.bindPassword);
        const filter = fillFilter('(uid={username})', { username: name });
        const { searchEntries } = await client.search(PEOPLE, { scope: 'sub', filter });
        expect(searchEntries).toEqual([]);
        // One equality comparison with the input as its value: no wildcard, no second clause.
        const parsed = FilterParser.parseString(filter) as unknown as { constructor: { name: string }; value: string };
        expect(parsed.constructor.name).toBe('EqualityFilter');
        expect(parsed.value).toBe(name);
      } finally {
        await client.unbind();
      }
    },
  );

  it('refuses a name that matches several entries', async () => {
    const err = await failure(createLdapLogin(settings()).login('eve', passwordOf('eve')));
    expect(err.reason).toBe('ambiguous_user');
    expect(err.detail).toMatch(/several directory entries/);
  });

  it('refuses a directory whose certificate the configured CA did not sign (LDAPS and StartTLS)', async () => {
    const ldaps = await failure(createLdapLogin(settings({ url: slapd.ldapsUrl, start_tls: false, ca_file: slapd.otherCaFile })).login('alice', passwordOf('alice')));
    const startTls = await failure(createLdapLogin(settings({ ca_file: slapd.otherCaFile })).login('alice', passwordOf('alice')));
    for (const err of [ldaps, startTls]) {
      expect(err.reason).toBe('provider_unavailable');
      expect(err.detail).toMatch(/certificate|self[- ]signed|unable to verify/i);
    }
  });

  it('refuses a certificate that does not name the host it was reached at', async () => {
    // 127.0.0.2 is loopback too but not in the server certificate: forward it to the directory.
    const target = new URL(slapd.url);
    const forwarder = createServer((s) => s.pipe(createConnection(Number(target.port), '127.0.0.1')).pipe(s).on('error', () => s.destroy()));
    await new Promise<void>((r) => forwarder.listen(0, '127.0.0.2', r));
    const { port } = forwarder.address() as { port: number };
    try {
      const err = await failure(createLdapLogin(settings({ url: `ldap://127.0.0.2:${port}/` })).login('alice', passwordOf('alice')));
      expect(err.reason).toBe('provider_unavailable');
      expect(err.detail).toMatch(/IP: 127\.0\.0\.2 is not in the cert's list/);
    } finally {
      forwarder.close();
    }
  });

  it('answers provider_unavailable when the directory is stopped', async () => {
    const gone = await startSlapd();
    const login = createLdapLogin(settings({ url: gone.url, ca_file: gone.caFile, bind_password: gone.bindPassword }));
    expect((await login.login('alice', passwordOf('alice'))).user).toBe('alice');
    await gone.stop();
    const err = await failure(login.login('alice', passwordOf('alice')));
    expect(err.reason).toBe('provider_unavailable');
    expect(err.detail).toMatch(/ECONNREFUSED/);
  });

  it('answers provider_unavailable when the directory accepts connections but never answers', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      for (const start_tls of [true, false]) {
        const err = await failure(createLdapLogin(settings({ url: `ldap://127.0.0.1:${port}/`, start_tls, timeout_ms: 200 })).login('alice', 'pw'));
        expect(err.reason).toBe('provider_unavailable');
        expect(err.detail).toMatch(/timed out/i);
      }
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('treats a refused service account as a directory problem, not the user\'s', async () => {
    const err = await failure(createLdapLogin(settings({ bind_password: 'not-the-service-password' })).login('alice', passwordOf('alice')));
    expect(err.reason).toBe('provider_error');
    expect(err.detail).toMatch(/service account bind: InvalidCredentialsError \(LDAP result 49\)/);
    expect(err.detail).not.toContain('not-the-service-password');
  });

  it('never sends a password over a connection without TLS the directory would accept', async () => {
    // The test directory requires TLS for simple binds: a plain ldap:// login is refused, not completed.
    const err = await failure(createLdapLogin(settings({ start_tls: false })).login('alice', passwordOf('alice')));
    expect(err.reason).toBe('provider_error');
    expect(err.detail).toMatch(/LDAP result 13/);
  });

  it('keeps passwords out of every error', async () => {
    const secret = 'S3cret-that-must-not-leak';
    const errors = [
      await failure(createLdapLogin(settings()).login('alice', secret)),
      await failure(createLdapLogin(settings({ url: await deadUrl() })).login('alice', secret)),
      await failure(createLdapLogin(settings({ ca_file: slapd.otherCaFile })).login('alice', secret)),
    ];
    for (const err of errors) expect(`${err.message} ${err.detail ?? ''} ${err.stack ?? ''}`).not.toContain(secret);
  });
});

describe('LDAP login settings', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-ldap-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the service password from ldap.bind_password_file (trailing newline ignored)', async () => {
    const file = join(dir, 'bind-password');
    writeFileSync(file, `${slapd.bindPassword}\n`);
    const login = createLdapLogin(settings({ bind_password: '', bind_password_file: file }));
    expect((await login.login('alice', passwordOf('alice'))).user).toBe('alice');
  });

  it('names the key of a file it cannot read', () => {
    const missing = join(dir, 'missing.pem');
    expect(() => createLdapLogin(settings({ ca_file: missing }))).toThrow(ConfigError);
    expect(() => createLdapLogin(settings({ ca_file: missing }))).toThrow(/^ldap\.ca_file: cannot read .*missing\.pem \(ENOENT\)$/);
    expect(() => createLdapLogin(settings({ bind_password: '', bind_password_file: missing }))).toThrow(/^ldap\.bind_password_file: cannot read/);
  });

  it('refuses a service DN without a password (an unauthenticated bind)', () => {
    expect(() => createLdapLogin(settings({ bind_password: '' }))).toThrow(/ldap\.bind_password: required when ldap\.bind_dn is set/);
  });
});

describe('RFC 4515 filter values', () => {
  // The examples of RFC 4515 section 4, value by value (hex digits in lower case).
  it.each([
    ['Parens R Us (for all your parenthetical needs)', 'Parens R Us \\28for all your parenthetical needs\\29'],
    ['*', '\\2a'],
    ['C:\\MyFile', 'C:\\5cMyFile'],
    ['\0\0\0\x04', '\\00\\00\\00\\04'],
    ['\x04\x02Hi', '\\04\\02Hi'],
  ])('escapes %j as %j', (value, escaped) => {
    expect(escapeFilterValue(value)).toBe(escaped);
  });

  it('leaves non-ASCII as UTF-8, which the filter carries as the same characters', () => {
    // RFC 4515's (sn=Lu\c4\8di\c4\87) written with the characters themselves, as the RFC also allows.
    expect(escapeFilterValue('Lučić')).toBe('Lučić');
    const parsed = FilterParser.parseString(`(sn=${escapeFilterValue('Lučić')})`) as unknown as { value: string };
    expect(parsed.value).toBe('Lučić');
  });

  it('gives ldapts filters that compare the input literally', () => {
    const parsed = FilterParser.parseString(fillFilter('(uid={username})', { username: 'a*b)(c\\' })) as unknown as { constructor: { name: string }; value: string };
    expect(parsed.constructor.name).toBe('EqualityFilter');
    expect(parsed.value).toBe('a*b)(c\\');
  });

  it('fills every placeholder it knows and leaves the others', () => {
    expect(fillFilter('(|(member={dn})(memberUid={username})(x={other}))', { dn: 'cn=a(1),o=x', username: 'a*' })).toBe(
      '(|(member=cn=a\\281\\29,o=x)(memberUid=a\\2a)(x={other}))',
    );
  });
});

describe('group names from DNs', () => {
  it.each([
    ['cn=analysts,ou=groups,dc=example,dc=org', 'analysts'],
    ['CN=Domain Admins,CN=Users,DC=corp,DC=example', 'Domain Admins'],
    ['cn=a\\,b,ou=groups', 'a,b'],
    ['cn=Jos\\C3\\A9,ou=groups', 'José'],
    ['cn=José,ou=groups', 'José'],
    ['cn=a+uid=b,ou=groups', 'a'],
  ])('takes the first RDN value of %j', (dn, name) => {
    expect(firstRdnValue(dn)).toBe(name);
  });

  it('gives nothing for a string that is not a DN', () => {
    expect(firstRdnValue('analysts')).toBeUndefined();
    expect(firstRdnValue('cn=,ou=groups')).toBeUndefined();
  });
});
