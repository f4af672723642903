// Starts a real OpenLDAP slapd for a test: its own folder, free ports on 127.0.0.1, a test CA, and a small
// directory (people, groups, a service account). Reusable by any suite that needs a directory.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { testCa } from './test-ca.js';
import { until } from './until.js';

export const SLAPD = process.env.SLAPD ?? '/usr/sbin/slapd';
export const LDAPADD = process.env.LDAPADD ?? 'ldapadd';
const MODULES = process.env.SLAPD_MODULES ?? '/usr/lib/ldap';
const SCHEMAS = process.env.SLAPD_SCHEMAS ?? '/etc/ldap/schema';

export const BASE_DN = 'dc=example,dc=org';
export const PEOPLE = `ou=people,${BASE_DN}`;
export const GROUPS = `ou=groups,${BASE_DN}`;
export const ADMIN_DN = `cn=admin,${BASE_DN}`;

/** Every person's password is `<uid>-password`, so a test never has to look one up. */
export const passwordOf = (uid: string): string => `${uid}-password`;

export interface Slapd {
  /** ldap://127.0.0.1:P/ (StartTLS available; simple binds need TLS unless allowPlainBind). */
  url: string;
  /** ldaps://127.0.0.1:P/ */
  ldapsUrl: string;
  /** The test CA that signed the server certificate (PEM file). */
  caFile: string;
  /** A CA that did not sign it, for "wrong CA" tests (PEM file). */
  otherCaFile: string;
  /** The service account allowed to search. */
  bindDn: string;
  bindPassword: string;
  baseDn: string;
  /** Applies LDIF change records (changetype: modify / delete / add) as the directory's administrator. */
  change(ldif: string): Promise<void>;
  /** Stops slapd (SIGTERM, then SIGKILL) and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SlapdOptions {
  /** Let simple binds happen without TLS (default false: a bind over plain ldap:// is refused). */
  allowPlainBind?: boolean;
  /** Let anonymous clients search and read entries (never passwords), for a login without a service account. */
  anonymousSearch?: boolean;
  /** Extra LDIF appended to the standard directory, loaded online after it. */
  extraLdif?: string;
}

/**
 * The gateway's `ldap` section for this directory over StartTLS, with disabled accounts (description:
 * disabled) left out by the user filter, as Active Directory's userAccountControl filters do. `url`
 * replaces the directory's address (a door in front of it, say).
 */
export function ldapSection(slapd: Slapd, url = slapd.url): Record<string, unknown> {
  return {
    url,
    start_tls: true,
    ca_file: slapd.caFile,
    bind_dn: slapd.bindDn,
    bind_password: slapd.bindPassword,
    user_base: PEOPLE,
    user_filter: '(&(uid={username})(!(description=disabled)))',
    timeout_ms: 3000,
  };
}

/** Fails with the command to run when the OpenLDAP server or tools are not installed. */
export function requireSlapd(): void {
  const ldapadd = LDAPADD.includes('/') ? LDAPADD : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, LDAPADD)).find((p) => existsSync(p));
  const needed = [SLAPD, join(MODULES, 'back_mdb.so'), join(MODULES, 'memberof.so'), join(SCHEMAS, 'nis.schema'), ldapadd ?? LDAPADD];
  const missing = needed.filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`the LDAP tests need OpenLDAP's slapd and ldap-utils (missing: ${missing.join(', ')}); install them with: apt-get install slapd ldap-utils`);
  }
}

export async function startSlapd(options: SlapdOptions = {}): Promise<Slapd> {
  requireSlapd();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-slapd-'));
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (child) await kill(child);
    child = undefined;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ca = testCa(dir);
    const bindPassword = randomBytes(12).toString('hex');
    const rootPassword = randomBytes(12).toString('hex');
    mkdirSync(join(dir, 'db'));
    // Free ports can be taken between choosing and binding: try a few times.
    for (let attempt = 1; ; attempt++) {
      const [ldapPort, ldapsPort] = [await freePort(), await freePort()];
      writeFileSync(join(dir, 'slapd.conf'), slapdConf(dir, ca, rootPassword, options));
      const url = `ldap://127.0.0.1:${ldapPort}/`;
      const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}/`;
      const started = spawnSlapd(dir, `${url} ${ldapsUrl}`);
      child = started.child;
      const up = await waitForPort(ldapPort, started);
      if (!up) {
        await kill(started.child);
        child = undefined;
        if (attempt < 3) continue;
        throw new Error(`slapd did not start: ${started.output().trim().split('\n').slice(-5).join(' | ')}`);
      }
      writeFileSync(join(dir, 'directory.ldif'), directoryLdif(bindPassword) + (options.extraLdif ?? ''));
      await ldapadd(ldapsUrl, ca.caFile, rootPassword, join(dir, 'directory.ldif'));
      let changes = 0;
      const change = async (ldif: string): Promise<void> => {
        const file = join(dir, `change-${++changes}.ldif`);
        writeFileSync(file, ldif);
        await ldapadd(ldapsUrl, ca.caFile, rootPassword, file);
      };
      return { url, ldapsUrl, caFile: ca.caFile, otherCaFile: ca.otherCaFile, bindDn: `cn=gatehouse,ou=services,${BASE_DN}`, bindPassword, baseDn: BASE_DN, change, stop };
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

function slapdConf(dir: string, ca: { caFile: string; certFile: string; keyFile: string }, rootPassword: string, options: SlapdOptions): string {
  const service = `cn=gatehouse,ou=services,${BASE_DN}`;
  return `# Written by test/support/slapd.ts
include ${SCHEMAS}/core.schema
include ${SCHEMAS}/cosine.schema
include ${SCHEMAS}/inetorgperson.schema
include ${SCHEMAS}/nis.schema
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
modulepath ${MODULES}
moduleload back_mdb
moduleload memberof
TLSCACertificateFile ${ca.caFile}
TLSCertificateFile ${ca.certFile}
TLSCertificateKeyFile ${ca.keyFile}
# TLS 1.2 or later (3.3 is TLS 1.2 in OpenLDAP's numbering)
TLSProtocolMin 3.3
${options.allowPlainBind ? '' : '# Passwords only over TLS: simple binds need a TLS security strength\nsecurity simple_bind=128\n'}
database mdb
suffix "${BASE_DN}"
rootdn "${ADMIN_DN}"
rootpw ${rootPassword}
directory ${dir}/db
maxsize 16777216
index objectClass,uid,cn,member,uniqueMember,memberUid eq

# memberOf on users, kept for groupOfNames added online (not by slapadd)
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="${service}" read
  by self read
${options.anonymousSearch ? '  by anonymous read\n' : ''}  by * none
`;
}

/** The test directory. memberOf on alice, bob, carol, dave and jose comes from the groupOfNames below. */
function directoryLdif(bindPassword: string): string {
  const person = (uid: string, cn: string, extra: string[] = [], rdn = `uid=${uid}`, ou = PEOPLE) =>
    [`dn: ${rdn},${ou}`, 'objectClass: inetOrgPerson', ...extra, `uid: ${uid}`, `cn: ${cn}`, `sn: ${cn.split(' ').pop()}`, `userPassword: ${ssha(passwordOf(uid))}`, ''].join('\n');
  const posix = (uidNumber: number, gecos?: string) => ['objectClass: posixAccount', `uidNumber: ${uidNumber}`, `gidNumber: ${uidNumber}`, `homeDirectory: /home/u${uidNumber}`, ...(gecos ? [`gecos: ${gecos}`] : [])];
  const groupOfNames = (cn: string, members: string[]) =>
    [`dn: cn=${cn},${GROUPS}`, 'objectClass: groupOfNames', `cn: ${cn}`, ...members.map((m) => `member: ${m}`), ''].join('\n');
  const dn = (uid: string) => `uid=${uid},${PEOPLE}`;
  const jose = `cn=José Núñez,${PEOPLE}`;
  return [
    [`dn: ${BASE_DN}`, 'objectClass: dcObject', 'objectClass: organization', 'dc: example', 'o: Example', ''].join('\n'),
    ...['people', 'groups', 'services'].map((ou) => [`dn: ou=${ou},${BASE_DN}`, 'objectClass: organizationalUnit', `ou: ${ou}`, ''].join('\n')),
    [`dn: cn=gatehouse,ou=services,${BASE_DN}`, 'objectClass: organizationalRole', 'objectClass: simpleSecurityObject', 'cn: gatehouse', `userPassword: ${ssha(bindPassword)}`, ''].join('\n'),
    person('alice', 'Alice Analyst'),
    person('bob', 'Bob Builder'),
    person('carol', 'Carol Auditor'),
    person('dave', 'Dave Contractor'),
    // A POSIX account whose only group is a posixGroup (memberUid): no memberOf, found by the group search.
    person('frank', 'Frank Posix', posix(10001, 'fposix')), // gecos: another attribute naming an account (test/posix-user.test.ts)
    // Only in a groupOfUniqueNames, which the memberof overlay does not follow: found by the group search.
    person('grace', 'Grace Research'),
    // A DN with non-ASCII characters, for group filters that carry {dn}.
    person('jose', 'José Núñez', [], 'cn=José Núñez'),
    // Two entries answer to uid=eve: an ambiguous name.
    [`dn: ou=legacy,${PEOPLE}`, 'objectClass: organizationalUnit', 'ou: legacy', ''].join('\n'),
    person('eve', 'Eve One'),
    person('eve', 'Eve Two', [], 'uid=eve', `ou=legacy,${PEOPLE}`),
    groupOfNames('analysts', [dn('alice')]),
    groupOfNames('platform-admins', [dn('bob')]),
    groupOfNames('auditors', [dn('carol')]),
    groupOfNames('contractors', [dn('dave')]),
    groupOfNames('data-stewards', [dn('alice'), jose]),
    [`dn: cn=researchers,${GROUPS}`, 'objectClass: groupOfUniqueNames', 'cn: researchers', `uniqueMember: ${dn('grace')}`, ''].join('\n'),
    [`dn: cn=hpc-users,${GROUPS}`, 'objectClass: posixGroup', 'cn: hpc-users', 'gidNumber: 20001', 'memberUid: frank', ''].join('\n'),
  ].join('\n');
}

/** {SSHA} as slappasswd writes it: base64(sha1(password + salt) + salt). */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

function spawnSlapd(dir: string, urls: string): { child: ChildProcess; output(): string; exited(): boolean } {
  // -d 0: stay in the foreground (so the test owns the process) without debug output.
  const child = spawn(SLAPD, ['-f', join(dir, 'slapd.conf'), '-h', urls, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  child.on('exit', () => (exited = true));
  child.on('error', (err) => {
    output += `\n${err.message}`;
    exited = true;
  });
  return { child, output: () => output, exited: () => exited };
}

/** True once slapd takes connections on `port`; false when it exits first or is not up in 10 s. */
async function waitForPort(port: number, started: { exited(): boolean }): Promise<boolean> {
  const outcome = await until(async () => (started.exited() ? 'exited' : (await canConnect(port)) ? 'listening' : undefined), 10_000, `slapd listening on ${port}`).catch(() => 'late');
  return outcome === 'listening';
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Loads LDIF online (ldapadd), so the memberof overlay sees every group being added. */
function ldapadd(url: string, caFile: string, rootPassword: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      LDAPADD,
      ['-x', '-H', url, '-D', ADMIN_DN, '-w', rootPassword, '-f', file],
      { env: { ...process.env, LDAPTLS_CACERT: caFile, LDAPTLS_REQCERT: 'demand' }, timeout: 20_000 },
      (err, _stdout, stderr) => {
        if (!err) return resolve();
        const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install it with: apt-get install slapd ldap-utils)' : '';
        reject(new Error(`ldapadd failed${hint}: ${stderr.trim() || err.message}`));
      },
    );
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}
