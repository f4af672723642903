// Attacker's review of the Slurm pieces (issue 17): a person must never end up with a job as another
// Unix account (a system or service account a directory attribute or an IdP claim may name), and the
// gateway's start-up must not hang on what sits at slurm.jwt_key_file.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLdapLogin } from '../../src/auth/ldap.js';
import { createSlurmClient, type ArraySubmission, type SlurmClient } from '../../src/proxy/slurm/client.js';
import { createSlurmTokenMinter } from '../../src/proxy/slurm/token.js';
import { GatehouseError } from '../../src/wire/index.js';
import { PEOPLE, type Slapd, startSlapd } from '../support/slapd.js';
import { type SlurmCluster, startSlurm } from '../support/slurm.js';

let slurm: SlurmCluster;
let client: SlurmClient;

beforeAll(async () => {
  slurm = await startSlurm();
  const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 300 });
  // The test account is made with useradd --system (uid < 1000): the floor is set just under it.
  client = createSlurmClient({ url: slurm.restUrl, apiVersion: slurm.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: slurm.user.uid } });
}, 90_000);

afterAll(async () => {
  await slurm?.stop();
});

function job(name: string): ArraySubmission {
  return {
    name,
    script: '#!/bin/sh\nid -un\n',
    tasks: [0],
    throttle: 1,
    cpusPerTask: 1,
    memoryPerCpuMb: 100,
    timeLimitS: 60,
    partition: slurm.partition,
    workDir: slurm.workDir,
    environment: { PATH: '/usr/bin:/bin' },
    stdout: join(slurm.workDir, `${name}-%A_%a.out`),
  };
}

function jobsNamed(name: string): string[] {
  return execFileSync('squeue', ['-h', '-a', '-t', 'all', '-o', '%j %T %u'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith(`${name} `));
}

describe('Slurm review: whose account a job runs as', () => {
  // A POSIX name that passes validation but names a system or service account: nobody (65534, the
  // account slurmrestd itself runs as here), daemon (1), munge (its key), slurm (SlurmUser: the JWT key,
  // so every account on the cluster). Before the fix each was submitted and released.
  it.each(['nobody', 'daemon', 'munge', 'slurm'])('refuses (403) and cancels a job that Slurm would run as the system account %s', async (name) => {
    const err = await client.submitArray(name, job(`sys-${name}`)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, `a job as ${name} was released`).toBeInstanceOf(GatehouseError);
    expect((err as GatehouseError).status).toBe(403);
    expect((err as GatehouseError).message).toMatch(/system account/);
    const left = jobsNamed(`sys-${name}`);
    expect(left.length).toBeGreaterThan(0);
    for (const line of left) expect(line).toMatch(/ CANCELLED /);
  });

  it('still runs the person’s own account (the control)', async () => {
    const id = await client.submitArray(slurm.user.name, job('own'));
    expect(id).toBeGreaterThan(0);
    await client.cancel(slurm.user.name, id);
  });
});

describe('Slurm review: the key file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-review-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // openSync(path, 'r') on a FIFO waits for a writer: the gateway would hang at start-up instead of
  // stopping with a line naming slurm.jwt_key_file.
  it('refuses a FIFO at slurm.jwt_key_file at once instead of waiting for a writer', () => {
    const fifo = join(dir, 'jwt.key');
    execFileSync('mkfifo', ['-m', '0600', fifo]);
    // Run in a child process: a hang there is a timeout here, not a stuck test worker.
    // dist/ is built by the test set-up (test/support/global-setup.ts).
    const module = join(process.cwd(), 'dist/src/config/private-file.js');
    const script = `import(${JSON.stringify(module)}).then((m) => { try { m.readPrivateFile('slurm.jwt_key_file', ${JSON.stringify(fifo)}, 32); console.log('read'); } catch (e) { console.log(e.message); } })`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 });
    expect(out).toMatch(/^slurm\.jwt_key_file: .* is not a regular file/);
  });
});

describe('Slurm review: a multi-valued directory attribute', () => {
  // The attribute naming the cluster account (slurm.user_attribute) may hold several values; a
  // directory returns them in no promised order, and a value beside the person's may be someone
  // else's account. Before: the first value that looked like a POSIX name was taken.
  const entry = (uid: string, descriptions: string[]) =>
    [`dn: uid=${uid},${PEOPLE}`, 'objectClass: inetOrgPerson', `uid: ${uid}`, `cn: ${uid}`, `sn: ${uid}`, ...descriptions.map((d) => `description: ${d}`), `userPassword: ${uid}-password`, ''].join('\n');
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await startSlapd({
      extraLdif: `\n${[entry('mallory', ['Mallory M.', 'alice']), entry('trent', ['bob', 'trent']), entry('peggy', ['peggy'])].join('\n')}`,
    });
  });
  afterAll(async () => {
    await slapd?.stop();
  });
  const login = (who: string) =>
    createLdapLogin(
      {
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
        group_filter: '(member={dn})',
        timeout_ms: 5000,
      },
      { posixUserAttribute: 'description' },
    ).login(who, `${who}-password`);

  it('gives no account when the attribute holds more than one value, whichever is first', async () => {
    expect(await login('mallory')).not.toHaveProperty('posix_user');
    expect(await login('trent')).not.toHaveProperty('posix_user');
  });

  it('still reads a single value (the control)', async () => {
    expect(await login('peggy')).toMatchObject({ user: 'peggy', posix_user: 'peggy' });
  });
});
