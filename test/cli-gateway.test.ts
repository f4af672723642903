// The command line against a running gateway (real `up`: engine, development IdP, gateway), with
// people who logged in by SSO: every documented exit code, `can-i`, and `policy status`.
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, EXIT_MEANINGS } from '../src/cli/exit-codes.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { startCli } from './support/cli-process.js';
import { ROOT, runCli, sandbox, type Sandbox, startUp, TEST_POLICIES, type Up } from './support/gatehouse.js';
import { approveDevice } from './support/oidc-browser.js';
import { until } from './support/until.js';

const FAIL = "def process(i, o, ctx):\n    raise ValueError('boom in partition %d' % ctx.partition)\n";
/** Runs until cancelled: the tests cancel it, so no clock decides anything. */
const FOREVER = 'import time\ndef process(i, o, ctx):\n    while True:\n        time.sleep(0.2)\n';

let box: Sandbox;
let up: Up;
let policies: string;
let sources: string;
let data: string;
const env: Record<string, Record<string, string>> = {};
const run = (user: string, args: string[]) => runCli(args, { env: env[user]!, timeoutMs: 90_000 });

/** A CLI config folder holding the user's saved login, as `gatehouse login --sso` leaves it. */
async function loggedIn(user: string): Promise<Record<string, string>> {
  const vars = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), `gatehouse-home-${user}-`)), GATEHOUSE_URL: up.ready.gateway.url, GATEHOUSE_CA: up.ready.ca_file };
  const cli = startCli(['login', '--sso', '--no-browser', '--json'], vars);
  const [, url] = await cli.waitFor(/or open (\S+)/);
  expect((await approveDevice(url!, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
  expect((await cli.done).code).toBe(0);
  return vars;
}

beforeAll(async () => {
  policies = mkdtempSync(join(tmpdir(), 'gatehouse-policies-'));
  cpSync(TEST_POLICIES, policies, { recursive: true });
  box = sandbox({ dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') }, policies: { dir: policies } });
  // Tasks run as other uids: the data root must be reachable by them (the sandbox folder is 0700).
  data = mkdtempSync(join(tmpdir(), 'gatehouse-cli-data-'));
  chmodSync(data, 0o711);
  writeFileSync(box.configFile, `${readFileSync(box.configFile, 'utf8')}data:\n  root: ${data}\n`);
  up = await startUp(box);
  for (const user of ['alice', 'bob', 'dave']) env[user] = await loggedIn(user);
  await writeDataset(data, 'scratch/cli-in', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: null, partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  sources = mkdtempSync(join(tmpdir(), 'gatehouse-cli-src-'));
  writeFileSync(join(sources, 'fail.py'), FAIL);
  writeFileSync(join(sources, 'forever.py'), FOREVER);
}, 180_000);

afterAll(async () => {
  await up?.stop();
  box?.remove();
  if (data) rmSync(data, { recursive: true, force: true });
});

/** `submit --wait` started as a person would, and the job id it printed. */
async function watched(output: string, source: string) {
  const cli = startCli(['submit', '--input', 'scratch/cli-in', '--output', output, '--python', join(sources, source), '--wait'], env.alice!);
  const [, id] = await cli.waitFor(/submitted job (j[0-9a-f]{12})/);
  return { cli, id: id! };
}

describe('exit codes', () => {
  it('the ones documented are the ones tested here', () => {
    expect(EXIT_MEANINGS.map(([code]) => code)).toEqual([0, 1, 2, 3, 4, 5, 130]);
  });

  it('0 done; 2 not logged in', async () => {
    expect((await run('alice', ['whoami'])).code).toBe(EXIT.ok);
    const nobody = await runCli(['whoami'], { env: { ...env.alice!, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'gatehouse-home-none-')) } });
    expect(nobody.code).toBe(EXIT.usage);
    expect(nobody.stderr).toMatch(/^gatehouse whoami: not logged in to https:\/\/127\.0\.0\.1:\d+: run gatehouse login --sso/);
  });

  it('1 when the job failed', async () => {
    const failed = await run('alice', ['submit', '--input', 'scratch/cli-in', '--output', 'scratch/cli-exit-failed', '--python', join(sources, 'fail.py'), '--wait']);
    expect(failed.code, failed.stderr).toBe(EXIT.failure);
    expect(failed.stdout, failed.stderr).toMatch(/^failed: .*boom in partition/m);
  }, 120_000);

  it('3 when the job was cancelled while watched', async () => {
    const { cli, id } = await watched('scratch/cli-exit-cancelled', 'forever.py');
    expect((await run('alice', ['cancel', id])).code).toBe(EXIT.ok);
    const done = await cli.done;
    expect(done.code, done.stderr).toBe(EXIT.cancelled);
    expect(done.stdout).toMatch(/^cancelled: /m);
    // It watched with held waits, not a poll every half second: each request for the job carried
    // wait_s, every one after the first the seen token of the answer before it (the gateway's request log).
    const asked = await until(() => {
      const lines = readFileSync(up.ready.gateway.log, 'utf8').split('\n').filter((l) => l.includes('"msg":"request"') && l.includes(`"url":"/v1/jobs/${id}`) && l.includes('"method":"GET"'));
      return lines.length > 0 ? lines : undefined;
    }, 10_000, "the watch's requests in the gateway's log");
    for (const line of asked) expect(line).toContain(`/v1/jobs/${id}?wait_s=25`);
    for (const line of asked.slice(1)) expect(line).toMatch(/&seen=[A-Za-z0-9_-]+/);
  }, 120_000);

  it('130 on Ctrl-C while watching; the job goes on', async () => {
    const { cli, id } = await watched('scratch/cli-exit-interrupted', 'forever.py');
    await cli.waitFor(/partitions \d+%|\(waiting /); // watching: its first progress line is out
    cli.kill('SIGINT');
    const done = await cli.done;
    expect(done.code, done.stderr).toBe(EXIT.interrupted);
    expect(done.stderr).toContain(`stopped watching; job ${id} keeps running`);
    const status = JSON.parse((await run('alice', ['status', id, '--json'])).stdout) as { state: string };
    expect(['queued', 'running']).toContain(status.state);
    expect((await run('alice', ['cancel', id])).code).toBe(EXIT.ok);
  }, 120_000);

  it('4 when the gateway refuses: forbidden by policy (403), or over a quota', async () => {
    const forbidden = await run('alice', ['policy', 'reload']);
    expect(forbidden.code).toBe(EXIT.refused);
    expect(forbidden.stderr).toMatch(/^gatehouse policy reload: /);
    const quota = await run('alice', ['submit', '--input', 'scratch/cli-in', '--output', 'scratch/cli-exit-greedy', '--python', join(sources, 'fail.py'), '--cores', '16']);
    expect(quota.code).toBe(EXIT.refused);
    expect(quota.stderr).toContain('quota_exceeded: max_cores');
  });

  it('5 when the gateway cannot be reached: connection refused, or a certificate not trusted', async () => {
    const home = mkdtempSync(join(tmpdir(), 'gatehouse-home-none-'));
    const refused = await runCli(['login', '--sso', '--no-browser', '--url', 'https://127.0.0.1:1'], { env: { XDG_CONFIG_HOME: home } });
    expect(refused.code).toBe(EXIT.unreachable);
    expect(refused.stderr).toMatch(/^gatehouse login: cannot reach the gateway at https:\/\/127\.0\.0\.1:1 \(connection refused\)/);
    // From a folder with no certs/, no --ca and no saved CA: the system's CAs do not know ours.
    const untrusted = await runCli(['login', '--sso', '--no-browser', '--url', up.ready.gateway.url], { env: { XDG_CONFIG_HOME: home }, cwd: home });
    expect(untrusted.code).toBe(EXIT.unreachable);
    expect(untrusted.stderr).toMatch(/certificate .* is not trusted/);
  });
});

describe('can-i', () => {
  it('answers for oneself with one’s real groups: yes, exit 0, the allowing rule on stderr', async () => {
    const r = await run('alice', ['can-i', 'read', 'dataset:customers']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('yes\n');
    expect(r.stderr).toMatch(/^allowed by policy\.csv:\d+: p, role:analysts, dataset:customers, read, allow\n {2}for alice \(analysts\) via user:alice → group:analysts → role:analysts; policy version \S+\n$/);
  });

  it('no and exit 1 for a denial, with the deciding rule (labels from the dataset itself)', async () => {
    const r = await run('dave', ['can-i', 'read', 'dataset:customers']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('no\n');
    expect(r.stderr).toMatch(/^denied by policy\.csv:\d+: p, role:contractors, label:pii, read, deny\n/);
    expect((await run('dave', ['can-i', 'read', 'dataset:words'])).code).toBe(0);
    const json = await run('dave', ['can-i', 'write', 'dataset:words', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ allowed: false, user: 'dave', action: 'write', object: 'dataset:words', groups: ['contractors'] });
  });

  it('--as asks for someone else: with read on policy:files (their groups from their latest login), else refused with 4', async () => {
    const asBob = await run('bob', ['can-i', 'read', 'dataset:customers', '--as', 'dave']);
    expect(asBob.code).toBe(1);
    expect(asBob.stderr).toContain('for dave (contractors, as of their latest login)');
    const asAlice = await run('alice', ['can-i', 'read', 'dataset:customers', '--as', 'dave']);
    expect(asAlice.code).toBe(EXIT.refused);
  });
});

describe('policy status', () => {
  it('shows the serving version and the last reload; a refused reload names its problem and exits 1', async () => {
    const ok = await run('bob', ['policy', 'status']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^serving version \S+ since \S+ \(.+ on the gateway\)\n {2}\d+ rules, \d+ role links, \d+ label links, \d+ quota lines\nlast reload (loaded|unchanged) at /);
    expect((await run('alice', ['policy', 'status'])).code).toBe(EXIT.refused);

    const file = join(policies, 'policy.csv');
    const before = readFileSync(file, 'utf8');
    writeFileSync(file, before.replace('dataset:words, read, allow', 'dataset:words, raed, allow'));
    try {
      const refused = await until(async () => {
        const r = await run('bob', ['policy', 'status']);
        return r.code === 1 ? r : undefined;
      }, 30_000, 'the gateway to refuse the edit');
      expect(refused.stdout).toMatch(/last reload REFUSED at \S+ \(file-change\): version \S+ has errors; \S+ keeps serving/);
      expect(refused.stdout).toContain('unknown action "raed"');
    } finally {
      writeFileSync(file, before);
    }
    await until(async () => ((await run('bob', ['policy', 'status'])).code === 0 ? true : undefined), 30_000, 'the restored files to serve');
  }, 120_000);
});
