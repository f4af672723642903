// A CLI that answers at once: help and the client verbs load the command definition and the little
// each verb uses, never the server side (fastify, casbin, the OIDC provider, the stores, the schema
// library behind the configuration). Counted by what the process resolves, not by timing it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/version.js';

const MAIN = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
const REGISTER = join(PACKAGE_ROOT, 'test', 'support', 'module-trace', 'register.mjs');
const HEAVY = ['fastify', 'casbin', 'oidc-provider', 'typebox', 'kysely', 'better-sqlite3', 'pg', 'jose', 'ldapts', 'openid-client', 'pino', 'prom-client'];
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The packages (node_modules/<name>) and our own modules a command resolves. */
function loads(args: string[], n: number, cwd = dir): { packages: Set<string>; own: string[]; builtins: Set<string> } {
  const out = join(dir, `trace-${n}`);
  // A folder with no gatehouse.yaml and a home with no login: the verb fails to connect, after loading what it needs.
  const run = spawnSync(process.execPath, ['--import', REGISTER, MAIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: dir, TRACE_OUT: out },
    encoding: 'utf8',
  });
  expect(run.error).toBeUndefined();
  const urls = readFileSync(out, 'utf8').split('\n').filter((u) => u.startsWith('file://'));
  const packages = new Set(urls.map((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1]).filter((p): p is string => p !== undefined));
  const builtins = new Set(readFileSync(out, 'utf8').split('\n').filter((u) => u.startsWith('node:')));
  return { packages, own: urls.filter((u) => u.includes('/dist/src/')), builtins };
}

describe('the CLI loads only what a verb uses', () => {
  const cases: [string, string[]][] = [
    ['--help', ['--help']],
    ['a verb\'s help', ['submit', '--help']],
    ['whoami', ['whoami', '--url', 'https://127.0.0.1:9']],
    ['jobs', ['jobs', '--url', 'https://127.0.0.1:9']],
    ['datasets', ['datasets', '--url', 'https://127.0.0.1:9']],
    ['quota', ['quota', '--url', 'https://127.0.0.1:9']],
  ];
  it.each(cases.map(([name, args], i) => [name, args, i] as const))('%s loads no server-side package', (_name, args, i) => {
    const { packages, own } = loads(args, i);
    expect(packages.has('commander')).toBe(true); // the trace saw the process: the hook works
    expect([...packages].filter((p) => HEAVY.includes(p))).toEqual([]);
    expect(own.filter((u) => /\/dist\/src\/(gateway|compute|proxy|store|audit|auth|identity|quota)\//.test(u))).toEqual([]);
    // No gatehouse.yaml in the folder (and --url given): nothing to parse, so not the YAML library either.
    expect(packages.has('yaml')).toBe(false);
  });

  it('help loads no HTTPS client, and a verb that stops before the network neither', () => {
    expect(loads(['--help'], 50).builtins.has('node:https')).toBe(false);
    expect(loads(['whoami', '--url', 'https://127.0.0.1:9'], 51).builtins.has('node:https')).toBe(false);
  });

  it('with a gatehouse.yaml to read, a client verb loads the YAML library (the trace would see it)', () => {
    const folder = join(dir, 'with-config');
    mkdirSync(folder);
    writeFileSync(join(folder, 'gatehouse.yaml'), 'server:\n  port: 9\n');
    expect(loads(['whoami'], 52, folder).packages.has('yaml')).toBe(true);
  });

  it('a server verb does load the server (the trace would see it)', () => {
    const { packages } = loads(['config', 'check'], 99);
    expect(packages.has('typebox')).toBe(true);
  });
});
