// kubectl-style contexts against a running gateway (real `up`): two contexts holding two people's
// logins in one config folder, switching between them, the fixed order in which --url, --context,
// GATEHOUSE_URL, GATEHOUSE_CONTEXT and the current context decide the gateway, deleting a context
// (and its login), the private file, and a context whose CA does not sign the gateway.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import { startCli } from './support/cli-process.js';
import { ROOT, runCli, sandbox, type Sandbox, startUp, type Up } from './support/gatehouse.js';
import { approveDevice } from './support/oidc-browser.js';

let box: Sandbox;
let up: Up;
/** One person's machine: one config folder, no GATEHOUSE_* set, run from a folder with no gatehouse.yaml. */
let home: string;
const DEAD = 'https://127.0.0.1:1';
const DEAD_ENV = 'https://127.0.0.1:2';
const DEAD_FLAG = 'https://127.0.0.1:3';

const gh = (args: string[], env: Record<string, string> = {}) => runCli(args, { env: { XDG_CONFIG_HOME: home, ...env }, cwd: home, timeoutMs: 90_000 });

/** whoami -o json: who answered, through which context. */
async function who(args: string[], env: Record<string, string> = {}): Promise<{ user: string; context: string | null; url: string }> {
  const r = await gh(['whoami', '-o', 'json', ...args], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { user: string; context: string | null; url: string };
}

async function loginAs(user: string, args: string[]): Promise<void> {
  const cli = startCli(['login', '--sso', '--no-browser', '--json', ...args], { XDG_CONFIG_HOME: home });
  const [, url] = await cli.waitFor(/or open (\S+)/);
  expect((await approveDevice(url!, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
  const done = await cli.done;
  expect(done.code, done.stderr).toBe(0);
}


// Each step runs the real `gatehouse` several times (a second or more each on a loaded 2-core machine).
vi.setConfig({ testTimeout: 300_000 });
beforeAll(async () => {
  box = sandbox({ dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') } });
  up = await startUp(box);
  home = mkdtempSync(join(tmpdir(), 'gatehouse-contexts-'));
  for (const name of ['alice', 'bob']) expect((await gh(['config', 'set-context', name, '--url', up.ready.gateway.url, '--ca', up.ready.ca_file])).code).toBe(0);
  expect((await gh(['config', 'set-context', 'dead', '--url', DEAD])).code).toBe(0);
  // Alice logs in through the current context, Bob through --context: two logins, one folder.
  expect((await gh(['config', 'use-context', 'alice'])).stdout).toBe('switched to context alice\n');
  await loginAs('alice', []);
  await loginAs('bob', ['--context', 'bob']);
}, 180_000);

afterAll(async () => {
  await up?.stop();
  box?.remove();
});

describe('two contexts, two people', () => {
  it('each context answers as the person who logged in through it; use-context switches', async () => {
    expect(await who([])).toMatchObject({ user: 'alice', context: 'alice', url: up.ready.gateway.url });
    expect(await who(['--context', 'bob'])).toMatchObject({ user: 'bob', context: 'bob' });
    expect((await gh(['config', 'use-context', 'bob'])).code).toBe(0);
    expect(await who([])).toMatchObject({ user: 'bob', context: 'bob' });
    expect((await gh(['config', 'current-context'])).stdout).toBe('bob\n');
    expect((await gh(['config', 'use-context', 'alice'])).code).toBe(0);
    expect(await who([])).toMatchObject({ user: 'alice' });
  });

  it('get-contexts marks the current one and names who is logged in through each', async () => {
    const text = await gh(['config', 'get-contexts']);
    expect(text.stdout).toMatch(/^current +name +url +ca +logged in as\n/);
    expect(text.stdout).toMatch(/^\* +alice +https:\/\/127\.0\.0\.1:\d+ +\S+ca\.crt +alice$/m);
    expect(text.stdout).toMatch(/^ +bob +https:\/\/127\.0\.0\.1:\d+ +\S+ +bob$/m);
    const json = JSON.parse((await gh(['config', 'get-contexts', '-o', 'json'])).stdout) as { current: string; contexts: { name: string; user: string | null; current: boolean }[] };
    expect(json.current).toBe('alice');
    expect(json.contexts.map((c) => [c.name, c.user, c.current])).toEqual([
      ['alice', 'alice', true],
      ['bob', 'bob', false],
      ['dead', null, false],
    ]);
  });

  it('a login is kept under its context with its URL; the same gateway by --url is a login of its own', async () => {
    const saved = JSON.parse(readFileSync(join(home, 'gatehouse', 'credentials.json'), 'utf8')) as Record<string, { user: string; url: string }>;
    expect(saved['context:alice']).toMatchObject({ user: 'alice', url: up.ready.gateway.url });
    expect(saved['context:bob']).toMatchObject({ user: 'bob', url: up.ready.gateway.url });
    const byUrl = await gh(['whoami', '--url', up.ready.gateway.url, '--ca', up.ready.ca_file]);
    expect(byUrl.code).toBe(EXIT.usage);
    expect(byUrl.stderr).toBe(`gatehouse whoami: not logged in to ${up.ready.gateway.url}: run gatehouse login --sso (or --ldap)\n`);
  });

  it('contexts.json and credentials.json are private: files 0600 in a 0700 folder', () => {
    expect(statSync(join(home, 'gatehouse')).mode & 0o777).toBe(0o700);
    expect(statSync(join(home, 'gatehouse', 'contexts.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'gatehouse', 'credentials.json')).mode & 0o777).toBe(0o600);
  });
});

describe('which gateway: --url > --context > GATEHOUSE_URL > GATEHOUSE_CONTEXT > the current context', () => {
  /** Who answered; or, for a gateway nobody logged in to (none is there), the URL the refusal names. */
  async function reached(args: string[], env: Record<string, string>): Promise<string> {
    const r = await gh(['whoami', '-o', 'json', ...args], env);
    if (r.code === 0) return (JSON.parse(r.stdout) as { user: string }).user;
    expect(r.code, r.stderr).toBe(EXIT.usage);
    return r.stderr.match(/not logged in to (https:\/\/[^\s:]+:\d+)/)![1]!;
  }

  it('each source beats the ones after it', async () => {
    // The current context is alice.
    expect(await reached([], {})).toBe('alice');
    expect(await reached([], { GATEHOUSE_CONTEXT: 'bob' })).toBe('bob'); // GATEHOUSE_CONTEXT > current
    expect(await reached([], { GATEHOUSE_CONTEXT: 'bob', GATEHOUSE_URL: DEAD_ENV })).toBe(DEAD_ENV); // GATEHOUSE_URL > GATEHOUSE_CONTEXT
    expect(await reached([], { GATEHOUSE_URL: DEAD_ENV })).toBe(DEAD_ENV); // GATEHOUSE_URL > current
    expect(await reached(['--context', 'bob'], { GATEHOUSE_URL: DEAD_ENV, GATEHOUSE_CONTEXT: 'dead' })).toBe('bob'); // --context > GATEHOUSE_*
    expect(await reached(['--context', 'dead'], {})).toBe(DEAD);
    const unreachable = await gh(['login', '--sso', '--no-browser', '--context', 'dead']);
    expect(unreachable.code).toBe(EXIT.unreachable);
    expect(unreachable.stderr).toMatch(/^gatehouse login: cannot reach the gateway at https:\/\/127\.0\.0\.1:1 \(connection refused\)/);
    expect(await reached(['--url', DEAD_FLAG, '--context', 'bob'], { GATEHOUSE_URL: DEAD_ENV })).toBe(DEAD_FLAG); // --url > all
  });

  it('a context named but not defined is a usage error, from the flag or the environment', async () => {
    const flag = await gh(['whoami', '--context', 'nope']);
    expect([flag.code, flag.stderr]).toEqual([EXIT.usage, 'gatehouse whoami: no context "nope" (--context); known: alice, bob, dead\n']);
    const env = await gh(['whoami'], { GATEHOUSE_CONTEXT: 'nope' });
    expect([env.code, env.stderr]).toEqual([EXIT.usage, 'gatehouse whoami: no context "nope" (GATEHOUSE_CONTEXT); known: alice, bob, dead\n']);
    expect((await gh(['config', 'use-context', 'nope'])).code).toBe(EXIT.usage);
  });
});

describe('a context whose CA is wrong', () => {
  it('is refused at once when the file cannot be read, and exit 5 naming the context when it signs something else', async () => {
    const missing = await gh(['config', 'set-context', 'wrong', '--url', up.ready.gateway.url, '--ca', join(home, 'no-such.crt')]);
    expect([missing.code, missing.stderr]).toEqual([EXIT.usage, `gatehouse config set-context: cannot read the CA file ${join(home, 'no-such.crt')} (--ca)\n`]);
    // The system's CAs are readable, and none of them signed our gateway.
    expect((await gh(['config', 'set-context', 'wrong', '--url', up.ready.gateway.url, '--ca', '/etc/ssl/certs/ca-certificates.crt'])).code).toBe(0);
    const r = await gh(['login', '--sso', '--no-browser', '--context', 'wrong']);
    expect(r.code).toBe(EXIT.unreachable);
    expect(r.stderr).toBe(
      `gatehouse login: the gateway's certificate at ${up.ready.gateway.url} is not trusted by /etc/ssl/certs/ca-certificates.crt (context "wrong"): gatehouse config set-context wrong --ca FILE\n`,
    );
    // Fixed as the message says; the context has no login yet.
    expect((await gh(['config', 'set-context', 'wrong', '--ca', up.ready.ca_file])).code).toBe(0);
    expect((await gh(['whoami', '--context', 'wrong'])).stderr).toMatch(/not logged in to \S+ \(context wrong\)/);
  });
});

describe('delete-context', () => {
  it('forgets the context and its saved login; the current one deleted leaves none current', async () => {
    const r = await gh(['config', 'delete-context', 'bob']);
    expect(r.stdout).toBe('deleted context bob and its saved login (gatehouse logout first revokes it at the gateway)\n');
    expect((await gh(['whoami', '--context', 'bob'])).code).toBe(EXIT.usage);
    const saved = JSON.parse(readFileSync(join(home, 'gatehouse', 'credentials.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(saved)).toEqual(['context:alice']);
    // Made again under the same name, it is not logged in: the login went with the old one.
    expect((await gh(['config', 'set-context', 'bob', '--url', up.ready.gateway.url, '--ca', up.ready.ca_file])).code).toBe(0);
    expect((await gh(['whoami', '--context', 'bob'])).code).toBe(EXIT.usage);

    expect((await gh(['config', 'delete-context', 'alice'])).stdout).toMatch(/^deleted context alice; no context is current now/);
    const none = await gh(['config', 'current-context']);
    expect([none.code, none.stderr]).toEqual([1, 'no current context (gatehouse config use-context NAME sets one)\n']);
    // With no context and no gatehouse.yaml here, the documented default.
    expect((await gh(['whoami'])).stderr).toBe('gatehouse whoami: not logged in to https://127.0.0.1:8443: run gatehouse login --sso (or --ldap)\n');
  });
});
