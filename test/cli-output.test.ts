// `-o json|yaml|table` against a running gateway (real `up`): the same answer parses back from JSON
// and from YAML, the table is a table, --json is -o json, where --output is a destination (get,
// submit) it stays one and --json is the machine form, and a format nobody knows is a usage error.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { EXIT } from '../src/cli/exit-codes.js';
import { startCli } from './support/cli-process.js';
import { ROOT, runCli, sandbox, type Sandbox, startUp, type Up } from './support/gatehouse.js';
import { approveDevice } from './support/oidc-browser.js';

let box: Sandbox;
let up: Up;
let env: Record<string, string>;
const gh = (args: string[]) => runCli(args, { env, timeoutMs: 90_000 });


// Each step runs the real `gatehouse` several times (a second or more each on a loaded 2-core machine).
vi.setConfig({ testTimeout: 300_000 });
beforeAll(async () => {
  box = sandbox({ dev_idp: { enabled: true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') } });
  up = await startUp(box);
  env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'gatehouse-output-')), GATEHOUSE_URL: up.ready.gateway.url, GATEHOUSE_CA: up.ready.ca_file };
  const cli = startCli(['login', '--sso', '--no-browser'], env);
  const [, url] = await cli.waitFor(/or open (\S+)/);
  expect((await approveDevice(url!, { username: 'alice', password: 'alice-demo' })).outcome).toBe('approved');
  expect((await cli.done).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await up?.stop();
  box?.remove();
});

/** Cells of a plain table: columns two or more spaces apart. */
const cells = (line: string) => line.trim().split(/ {2,}/);

describe('-o json|yaml|table', () => {
  // Each verb that prints a result, and a field its answer must have.
  const verbs: [string[], string][] = [
    [['whoami'], 'user'],
    [['datasets'], 'datasets'],
    [['quota'], 'limits'],
    [['jobs'], 'jobs'],
    [['can-i', 'read', 'dataset:words'], 'allowed'],
  ];

  for (const [args, field] of verbs) {
    it(`${args.join(' ')}: JSON and YAML parse back to the same answer; --json is -o json`, async () => {
      const [json, yaml, flag] = await Promise.all([gh([...args, '-o', 'json']), gh([...args, '--output', 'yaml']), gh([...args, '--json'])]);
      for (const r of [json, yaml, flag]) expect(r.code, r.stderr).toBe(0);
      const fromJson = JSON.parse(json.stdout) as Record<string, unknown>;
      expect(fromJson).toHaveProperty(field);
      // Answers that carry the clock (a token's expiry) are compared without it.
      const timeless = (v: Record<string, unknown>) => ({ ...v, expires_at: undefined });
      expect(timeless(parse(yaml.stdout) as Record<string, unknown>)).toEqual(timeless(fromJson));
      expect(yaml.stdout.trimStart().startsWith('{')).toBe(false); // YAML's block form, not JSON (also YAML)
      expect(timeless(JSON.parse(flag.stdout) as Record<string, unknown>)).toEqual(timeless(fromJson));
    });
  }

  it('table is the text for people: a header and one row per item, as without -o', async () => {
    const [table, plain, json] = await Promise.all([gh(['datasets', '-o', 'table']), gh(['datasets']), gh(['datasets', '-o', 'json'])]);
    expect(table.stdout).toBe(plain.stdout);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(cells(header!)).toEqual(['dataset', 'you may', 'format', 'parts', 'rows', 'size', 'labels', 'owner']);
    const names = (JSON.parse(json.stdout) as { datasets: { name: string }[] }).datasets.map((d) => d.name);
    expect(rows.map((r) => cells(r)[0])).toEqual(names);
    const contexts = await gh(['config', 'get-contexts', '-o', 'yaml']);
    expect(parse(contexts.stdout)).toEqual({ current: null, contexts: [] });
  });

  it('an unknown format is a usage error naming the choices (exit 2), before anything is sent', async () => {
    const r = await gh(['whoami', '-o', 'xml']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("gatehouse whoami: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are json, yaml, table; run gatehouse whoami --help\n");
    expect((await gh(['jobs', '--output=csv'])).code).toBe(EXIT.usage);
  });

  it('where --output is a destination (get DIR) it stays one, and --json is the machine form', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'gatehouse-output-get-')), 'words');
    const got = await gh(['get', 'words', '-o', dir, '--json']);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ dataset: 'words', dir });
    expect(readdirSync(dir).some((f) => f.startsWith('part-'))).toBe(true);
    // submit --output names the dataset to write; a format there is not a format.
    const help = await gh(['submit', '--help']);
    const words = help.stdout.replace(/\s+/g, ' ');
    expect(words).toContain('--output <name> the dataset to write');
    expect(words).toContain('--json machine-readable output (JSON; --output here is a destination)');
    expect(words).not.toContain('-o, --output <format>');
  });
});
