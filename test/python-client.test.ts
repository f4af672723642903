// The Python client (issue 20, point 5) against the real stack: engine, development IdP and gateway
// as separate processes (test/support/stack.ts). This suite prepares what a person would have (alice
// and dave logged in with the CLI, datasets to read, the package installed with
// `python3 clients/python/install.py`), then runs Debian's python3-pytest over clients/python/tests
// with the stack in its environment. The pytest cases walk the client: the CLI's login used by Python
// and Python's by the CLI, a refresh saved, datasets, reads byte- and row-exact against the API, a
// notebook function submitted, waited for, its logs, a cancel, the quota, every error class, a CA
// that is not the gateway's refused. A device login started in Python is approved here, in the
// development provider, through a small approver server the pytest cases call.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { startCli } from './support/cli-process.js';
import { CLI, cleanEnv, ROOT } from './support/gatehouse.js';
import { approveDevice } from './support/oidc-browser.js';
import { Stack } from './support/stack.js';
import { testCa } from './support/test-ca.js';

const PYTHON = '/usr/bin/python3';
const TESTS = join(ROOT, 'clients', 'python', 'tests');

let stack: Stack;
let approver: Server;
let scratch: string;
let installed: string;
const homes: Record<string, string> = {};
let env: Record<string, string>;

/** A CLI config folder with the user's login, as `gatehouse login --sso` leaves it. */
async function cliLogin(user: string): Promise<string> {
  const home = mkdtempSync(join(scratch, `home-${user}-`));
  const cli = startCli(['login', '--sso', '--no-browser', '--json'], { XDG_CONFIG_HOME: home, GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.certsDir, 'ca.crt') });
  const [, url] = await cli.waitFor(/or open (\S+)/);
  expect((await approveDevice(url!, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
  expect((await cli.done).code).toBe(0);
  return home;
}

/** POST {url, user}: approves a device login the Python client started, as that user in the provider. */
function startApprover(): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { url, user } = JSON.parse(body) as { url: string; user: string };
      approveDevice(url, { username: user, password: `${user}-demo` }).then(
        (r) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ outcome: r.outcome })),
        (err: Error) => res.writeHead(500).end(JSON.stringify({ outcome: 'error', message: err.message })),
      );
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function run(command: string, args: string[], extra: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...cleanEnv(), ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A CSV partition whose fields need quoting now and then (a comma, a quote, a newline, non-ASCII). */
function csv(from: number, rows: number): { text: string; rows: number } {
  let text = 'id,word,note\n';
  for (let i = from; i < from + rows; i++) text += i % 5 === 0 ? `${i},Wörd${i},"a, ""quoted""\nnote ${i}"\n` : `${i},word${i},plain ${i}\n`;
  return { text, rows };
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'gatehouse-python-'));
  stack = await Stack.start();
  const base = { format: 'csv' as const, columns: ['id', 'word', 'note'], produced_by: 'python-client test' };
  await writeDataset(stack.dataRoot, 'scratch/py-words', { ...base, owner: 'alice', labels: [], partitions: [csv(0, 40), csv(40, 25)] });
  await writeDataset(stack.dataRoot, 'words', { ...base, owner: 'platform', labels: [], partitions: [csv(0, 10)] });
  await writeDataset(stack.dataRoot, 'customers', { ...base, owner: 'platform', labels: ['pii'], partitions: [csv(0, 5)] });
  await writeDataset(stack.dataRoot, 'scratch/py-events', { format: 'jsonl', columns: ['id', 'kind'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: '{"id":1,"kind":"a"}\nnot json\n{"id":3,"kind":"ç"}\n', rows: 3 }] });
  for (const user of ['alice', 'dave']) homes[user] = await cliLogin(user);
  approver = await startApprover();
  // The package as a person installs it: the one documented command, into a folder of its own here.
  installed = join(scratch, 'site');
  const install = await run(PYTHON, [join(ROOT, 'clients', 'python', 'install.py'), '--target', installed], {}, 30_000);
  expect(install.code, install.stderr).toBe(0);
  expect(install.stdout).toContain(`installed gatehouse (`);
  const ca = testCa(mkdtempSync(join(scratch, 'other-ca-')));
  env = {
    PYTHONPATH: installed,
    PYTHONDONTWRITEBYTECODE: '1',
    GATEHOUSE_URL: stack.url,
    GATEHOUSE_CA: join(stack.certsDir, 'ca.crt'),
    XDG_CONFIG_HOME: homes.alice!,
    GATEHOUSE_TEST_INSTALLED: installed,
    GATEHOUSE_TEST_APPROVER: `http://127.0.0.1:${(approver.address() as AddressInfo).port}`,
    GATEHOUSE_TEST_HOME_ALICE: homes.alice!,
    GATEHOUSE_TEST_HOME_DAVE: homes.dave!,
    GATEHOUSE_TEST_NODE: process.execPath,
    GATEHOUSE_TEST_CLI: CLI,
    GATEHOUSE_TEST_OTHER_CA: ca.otherCaFile,
  };
}, 180_000);

afterAll(async () => {
  approver?.close();
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The pytest cases in clients/python/tests: each `def test_` counted, so a lost file or case fails here. */
function casesOnDisk(): number {
  return readdirSync(TESTS)
    .filter((f) => /^test_.*\.py$/.test(f))
    .reduce((n, f) => n + (readFileSync(join(TESTS, f), 'utf8').match(/^def test_/gm) ?? []).length, 0);
}

describe('the Python client', () => {
  it('passes its whole walk under Debian’s python3-pytest against the running stack', async () => {
    const result = await run(PYTHON, ['-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', TESTS], env, 600_000);
    const output = `${result.stdout}\n${result.stderr}`;
    const summary = /^=*\s*(.*\b(?:passed|failed|error|skipped)\b.*) in [\d.]+s/m.exec(result.stdout)?.[1] ?? '';
    const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(summary)?.[1] ?? 0);
    expect(result.code, output).toBe(0);
    expect(count('failed') + count('errors?'), output).toBe(0);
    // Only the pandas and tqdm cases may skip (when those packages are not installed), each saying why.
    const skips = [...result.stdout.matchAll(/^SKIPPED \[\d+\] .*?: (.*)$/gm)].map((m) => m[1]!);
    for (const reason of skips) expect(reason).toMatch(/^(pandas|tqdm) is not installed/);
    expect(count('skipped')).toBe(skips.length);
    expect(count('passed') + count('skipped'), output).toBe(casesOnDisk());
    expect(count('passed')).toBeGreaterThanOrEqual(casesOnDisk() - 2);
  }, 660_000);

  it('was decided and recorded like any client: Python’s reads in the trail, dave’s refusals as denies', () => {
    const events = stack.auditEvents();
    const reads = events.filter((e) => e.action === 'dataset.read' && e.object === 'dataset:scratch/py-words' && e.actor.user === 'alice');
    expect(reads.length).toBeGreaterThan(0);
    const refused = events.filter((e) => e.action === 'dataset.authorize' && e.actor.user === 'dave' && e.decision === 'deny');
    expect(refused.map((e) => e.object)).toEqual(expect.arrayContaining(['dataset:customers', 'dataset:no-such-dataset']));
  });
});
