import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Value } from 'typebox/value';
import { ConfigError, ConfigSchema, configKeys, loadConfig, withReference } from '../src/config/index.js';
import { ROOT, runCli } from './support/gatehouse.js';

const dirs: string[] = [];
function folder(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
afterEach(() => dirs.splice(0));

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('uses the built-in defaults when there is no file, with paths under the working folder', () => {
    const cwd = folder();
    const { config, file } = loadConfig({ cwd, env: {} });
    expect(file).toBeNull();
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8443 });
    expect(config.engine).toMatchObject({ host: '127.0.0.1', port: 8444 });
    expect(config.state.dir).toBe(join(cwd, 'var'));
    expect(config.certs.dir).toBe(join(cwd, 'certs'));
    expect(config.data.root).toBe(join(cwd, 'data'));
    expect(config.store.url).toBe('');
  });

  it('ships gatehouse.yaml with every key of the schema, equal to the built-in defaults but the development provider', () => {
    const text = shippedConfig();
    const raw = parse(text) as Record<string, Record<string, unknown>>;
    for (const key of configKeys()) expect(raw[key.section], key.path).toHaveProperty(key.key);
    // The embedded default is a demo: SSO works out of the box. A deployment's own file leaves it off.
    expect(raw.dev_idp?.enabled).toBe(true);
    expect(Value.Default(ConfigSchema, {})).toMatchObject({ dev_idp: { enabled: false } });
    expect(raw).toEqual(Value.Default(ConfigSchema, { dev_idp: { enabled: true } }));
    const copy = join(folder(), 'gatehouse.yaml');
    writeFileSync(copy, text);
    expect(() => loadConfig({ path: copy, env: {} })).not.toThrow();
  });

  it('reads a partial file, fills the rest with defaults and resolves paths against the file', () => {
    const dir = folder({ 'g.yaml': 'server:\n  port: 9443\nstate:\n  dir: state\n' });
    const { config, file } = loadConfig({ path: join(dir, 'g.yaml'), env: {}, cwd: '/' });
    expect(file).toBe(join(dir, 'g.yaml'));
    expect(config.server.port).toBe(9443);
    expect(config.server.host).toBe('127.0.0.1');
    expect(config.state.dir).toBe(join(dir, 'state'));
  });

  it('finds the file through GATEHOUSE_CONFIG', () => {
    const dir = folder({ 'other.yaml': 'engine:\n  port: 9444\n' });
    const { config } = loadConfig({ env: { GATEHOUSE_CONFIG: join(dir, 'other.yaml') } });
    expect(config.engine.port).toBe(9444);
  });

  it('refuses an unknown key, naming it and the near miss', () => {
    const dir = folder({ 'g.yaml': 'server:\n  prot: 9443\n' });
    const err = errorOf(() => loadConfig({ path: join(dir, 'g.yaml'), env: {} }));
    expect(err.message).toMatch(/unknown key server\.prot \(did you mean server\.port\?\)/);
    expect(err.message.split('\n')).toHaveLength(1);
  });

  it('refuses an unknown section', () => {
    const dir = folder({ 'g.yaml': 'sever:\n  port: 9443\n' });
    expect(errorOf(() => loadConfig({ path: join(dir, 'g.yaml'), env: {} })).message).toMatch(/unknown section "sever" \(did you mean server\?\)/);
  });

  it('refuses a wrong type with the key path and what was expected', () => {
    const dir = folder({ 'g.yaml': 'server:\n  port: "abc"\n' });
    const err = errorOf(() => loadConfig({ path: join(dir, 'g.yaml'), env: {} }));
    expect(err.message).toBe(`${join(dir, 'g.yaml')}: server.port: expected an integer from 0 to 65535, got "abc"`);
  });

  it('refuses a value out of range and a value outside an enumeration', () => {
    const dir = folder({ 'a.yaml': 'engine:\n  port: 70000\n', 'b.yaml': 'log:\n  level: loud\n' });
    expect(errorOf(() => loadConfig({ path: join(dir, 'a.yaml'), env: {} })).message).toMatch(/engine\.port: expected an integer from 0 to 65535, got 70000/);
    expect(errorOf(() => loadConfig({ path: join(dir, 'b.yaml'), env: {} })).message).toMatch(/log\.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"/);
  });

  it('refuses a missing file and a malformed one', () => {
    expect(errorOf(() => loadConfig({ path: '/nonexistent/gatehouse.yaml', env: {} })).message).toBe('config file not found: /nonexistent/gatehouse.yaml');
    const dir = folder({ 'g.yaml': 'server:\n  port: [1\n' });
    expect(errorOf(() => loadConfig({ path: join(dir, 'g.yaml'), env: {} })).message).toMatch(/g\.yaml:\d+:\d+: invalid YAML/);
  });

  it('takes a postgres:// store, and refuses any other, a URL without a database, unknown parameters, or a password file without it', () => {
    const ok = folder({ 'g.yaml': 'store:\n  url: postgres://gatehouse@db.example.org:5432/gatehouse?sslmode=verify-full\n' });
    expect(loadConfig({ path: join(ok, 'g.yaml'), env: {} }).config.store.url).toBe('postgres://gatehouse@db.example.org:5432/gatehouse?sslmode=verify-full');
    for (const bad of ['mysql://db/gatehouse', 'postgres://db', 'postgres://db/gatehouse?sslmode=prefer', 'postgres://db/gatehouse?application_name=x']) {
      const dir = folder({ 'g.yaml': `store:\n  url: ${bad}\n` });
      expect(errorOf(() => loadConfig({ path: join(dir, 'g.yaml'), env: {} })).message).toMatch(/store\.url: expected empty \(the embedded SQLite store\) or postgres:\/\//);
    }
    const orphan = folder({ 'g.yaml': 'store:\n  password_file: pw\n' });
    expect(errorOf(() => loadConfig({ path: join(orphan, 'g.yaml'), env: {} })).message).toMatch(/store\.password_file: only with a postgres:\/\/ store\.url/);
  });

  it('applies GATEHOUSE_<SECTION>_<KEY> overrides over the file, typed by the schema', () => {
    const dir = folder({ 'g.yaml': 'server:\n  port: 9443\n' });
    const { config } = loadConfig({
      path: join(dir, 'g.yaml'),
      cwd: '/tmp',
      env: { GATEHOUSE_SERVER_PORT: '10443', GATEHOUSE_SERVER_HOSTNAMES: 'gw.example.org, 10.0.0.5', GATEHOUSE_LOG_LEVEL: 'debug', GATEHOUSE_STATE_DIR: 'st' },
    });
    expect(config.server.port).toBe(10443);
    expect(config.server.hostnames).toEqual(['gw.example.org', '10.0.0.5']);
    expect(config.log.level).toBe('debug');
    expect(config.state.dir).toBe('/tmp/st'); // an override's relative path is relative to where it was typed
  });

  it('refuses a bad override value, naming the variable and the key', () => {
    const err = errorOf(() => loadConfig({ cwd: folder(), env: { GATEHOUSE_SERVER_PORT: 'eighty' } }));
    expect(err.message).toBe('GATEHOUSE_SERVER_PORT (server.port): expected an integer from 0 to 65535, got "eighty"');
    const range = errorOf(() => loadConfig({ cwd: folder(), env: { GATEHOUSE_ENGINE_PORT: '99999' } }));
    expect(range.message).toBe('GATEHOUSE_ENGINE_PORT (engine.port): expected an integer from 0 to 65535, got 99999');
  });

  it('refuses an override for a key that does not exist, and leaves the client variables alone', () => {
    expect(errorOf(() => loadConfig({ cwd: folder(), env: { GATEHOUSE_SERVER_PROT: '1' } })).message).toMatch(
      /unknown environment override GATEHOUSE_SERVER_PROT \(did you mean GATEHOUSE_SERVER_PORT\?\)/,
    );
    expect(() => loadConfig({ cwd: folder(), env: { GATEHOUSE_URL: 'https://x', GATEHOUSE_CA: '/ca.crt', GATEHOUSE_DEBUG: '1' } })).not.toThrow();
  });

  it('keeps the README configuration reference generated from the schema', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(withReference(readme), 'run npm run docs:config').toBe(readme);
  });
});

describe('configuration errors at start-up', () => {
  for (const [what, args, env, pattern] of [
    ['an unknown key', ['gateway', '--config', 'BAD'], {}, /^gatehouse gateway: config error: .*unknown key server\.colour/],
    ['a bad environment override', ['engine'], { GATEHOUSE_ENGINE_PORT: 'x' }, /^gatehouse engine: config error: GATEHOUSE_ENGINE_PORT \(engine\.port\): expected an integer/],
    ['a missing file', ['up', '--config', '/nonexistent.yaml'], {}, /^gatehouse up: config error: config file not found: \/nonexistent\.yaml$/],
  ] as const) {
    it(`stops with one line and a non-zero exit on ${what}`, async () => {
      const dir = folder({ 'bad.yaml': 'server:\n  colour: blue\n' });
      const result = await runCli(args.map((a) => (a === 'BAD' ? join(dir, 'bad.yaml') : a)), { env: { ...env }, cwd: dir });
      expect(result.code).not.toBe(0);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(pattern);
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  }
});

/**
 * gatehouse.yaml as committed: what ships, not what an admin may have edited in this working tree;
 * the file itself where there is no git (an unpacked release).
 */
function shippedConfig(): string {
  try {
    return execFileSync('git', ['show', 'HEAD:gatehouse.yaml'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return readFileSync(join(ROOT, 'gatehouse.yaml'), 'utf8');
  }
}

