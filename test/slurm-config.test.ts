// The slurm.* section: empty slurm.url (the default) means no Slurm backend; once it is set, every key
// is checked at start-up with errors naming it, and Slurm's JWT key file must be private, long enough
// and is never shown.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkGatewayFiles, ConfigError, loadConfig } from '../src/config/index.js';
import { runCli } from './support/gatehouse.js';

// Recognisable bytes, so any copy of them (raw, hex or base64) in an error would be found.
const KEY = Buffer.from('slurm-jwt-key-0123456789-abcdefghijklmnop-ZYXW');

function folder(files: Record<string, string | Buffer> = {}, modes: Record<string, number> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-config-'));
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), modes[name] ?? 0o600);
  }
  return dir;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

function expectNoKey(text: string, key: Buffer = KEY): void {
  for (const form of [key.toString('utf8'), key.toString('hex'), key.toString('base64'), key.toString('base64url')]) {
    expect(text).not.toContain(form);
  }
}

const SLURM = 'slurm:\n  url: http://127.0.0.1:6820\n  jwt_key_file: jwt.key\n';

describe('slurm configuration', () => {
  it('has no Slurm backend by default, with the documented defaults', () => {
    const { config } = loadConfig({ cwd: folder(), env: {} });
    expect(config.slurm).toEqual({
      url: '',
      api_version: 'v0.0.38',
      jwt_key_file: '',
      token_ttl: '5m',
      partition: '',
      account: '',
      user_attribute: 'uid',
      user_claim: '',
      timeout_ms: 10000,
      jobs_dir: '',
      min_uid: 1000,
      max_uid: 59999,
      install_dir: '',
      node: '',
      default: false,
      status_user: 'nobody',
    });
  });

  it('accepts a slurm section, resolving the key file against the config file', () => {
    const dir = folder({ 'g.yaml': `${SLURM}  partition: debug\n  account: science\n  token_ttl: 2m\n  user_claim: posix_username\n`, 'jwt.key': KEY });
    const { config } = loadConfig({ path: join(dir, 'g.yaml'), env: {}, cwd: '/' });
    expect(config.slurm).toMatchObject({ url: 'http://127.0.0.1:6820', jwt_key_file: join(dir, 'jwt.key'), partition: 'debug', account: 'science', token_ttl: '2m', user_claim: 'posix_username' });
  });

  it('takes every slurm key from its GATEHOUSE_SLURM_* variable', () => {
    const dir = folder({ 'jwt.key': KEY });
    const { config } = loadConfig({
      cwd: dir,
      env: {
        GATEHOUSE_SLURM_URL: 'https://slurm.example.org:6820',
        GATEHOUSE_SLURM_API_VERSION: 'v0.0.39',
        GATEHOUSE_SLURM_JWT_KEY_FILE: 'jwt.key',
        GATEHOUSE_SLURM_TOKEN_TTL: '90s',
        GATEHOUSE_SLURM_PARTITION: 'batch',
        GATEHOUSE_SLURM_ACCOUNT: 'lab',
        GATEHOUSE_SLURM_USER_ATTRIBUTE: 'uidNumberName',
        GATEHOUSE_SLURM_USER_CLAIM: 'unix_user',
        GATEHOUSE_SLURM_TIMEOUT_MS: '3000',
        GATEHOUSE_SLURM_JOBS_DIR: '/shared/gatehouse-jobs',
        GATEHOUSE_SLURM_MIN_UID: '2000',
        GATEHOUSE_SLURM_MAX_UID: '900000',
        GATEHOUSE_SLURM_INSTALL_DIR: '/opt/gatehouse',
        GATEHOUSE_SLURM_NODE: '/usr/bin/node',
        GATEHOUSE_SLURM_DEFAULT: 'true',
        GATEHOUSE_SLURM_STATUS_USER: 'gatehouse',
      },
    });
    expect(config.slurm).toEqual({
      url: 'https://slurm.example.org:6820',
      api_version: 'v0.0.39',
      jwt_key_file: join(dir, 'jwt.key'),
      token_ttl: '90s',
      partition: 'batch',
      account: 'lab',
      user_attribute: 'uidNumberName',
      user_claim: 'unix_user',
      timeout_ms: 3000,
      jobs_dir: '/shared/gatehouse-jobs',
      min_uid: 2000,
      max_uid: 900000,
      install_dir: '/opt/gatehouse',
      node: '/usr/bin/node',
      default: true,
      status_user: 'gatehouse',
    });
  });

  it('accepts Slurm with a shared store: its job records live in the store, so any gateway serves them', () => {
    const dir = folder({ 'g.yaml': `${SLURM}store:\n  url: postgres://gatehouse@127.0.0.1:5432/gatehouse\n`, 'jwt.key': KEY });
    const { config } = loadConfig({ path: join(dir, 'g.yaml'), env: {} });
    expect(config.slurm.url).not.toBe('');
    expect(config.store.url).toBe('postgres://gatehouse@127.0.0.1:5432/gatehouse');
  });

  it('ignores the key file while slurm.url is empty', () => {
    expect(() => loadConfig({ cwd: folder(), env: { GATEHOUSE_SLURM_JWT_KEY_FILE: '/nonexistent/jwt.key' } })).not.toThrow();
  });

  for (const [what, yaml, env, message] of [
    ['a URL that is not http(s)://host[:port]', 'slurm:\n  url: ftp://slurm:6820\n  jwt_key_file: jwt.key\n', {}, /slurm\.url: expected http:\/\/host\[:port\] or https:\/\/host\[:port\], got "ftp:\/\/slurm:6820"/],
    ['a URL with a path', 'slurm:\n  url: http://slurm:6820/slurm/v0.0.38\n  jwt_key_file: jwt.key\n', {}, /slurm\.url: expected http:\/\/host\[:port\]/],
    ['an api version Slurm does not name so', `${SLURM}  api_version: "0.0.38"\n`, {}, /slurm\.api_version: expected/],
    ['a token lifetime over an hour', `${SLURM}  token_ttl: 2h\n`, {}, /slurm\.token_ttl: must be from 30s to 1h, got "2h"/],
    ['a token lifetime under 30 seconds', `${SLURM}  token_ttl: 10s\n`, {}, /slurm\.token_ttl: must be from 30s to 1h, got "10s"/],
    ['a token lifetime that is not a duration', `${SLURM}  token_ttl: soon\n`, {}, /slurm\.token_ttl: expected/],
    ['an LDAP attribute name with a filter in it', `${SLURM}  user_attribute: "uid)(cn=*"\n`, {}, /slurm\.user_attribute: expected/],
    ['an OIDC claim name with a space', `${SLURM}  user_claim: "unix user"\n`, {}, /slurm\.user_claim: expected/],
    ['a partition name with a comma', `${SLURM}  partition: "a,b"\n`, {}, /slurm\.partition: expected/],
    ['an account with a space', `${SLURM}  account: "a b"\n`, {}, /slurm\.account: expected/],
    ['no key file', 'slurm:\n  url: http://127.0.0.1:6820\n', {}, /slurm\.jwt_key_file: required when slurm\.url is set/],
    ['a bad override', '', { GATEHOUSE_SLURM_TIMEOUT_MS: 'soon' }, /^GATEHOUSE_SLURM_TIMEOUT_MS \(slurm\.timeout_ms\): expected an integer/],
  ] as const) {
    it(`refuses ${what}, naming the key`, () => {
      const dir = folder({ 'g.yaml': yaml, 'jwt.key': KEY });
      const err = errorOf(() => loadConfig({ path: join(dir, 'g.yaml'), env: { ...env } }));
      expect(err.message).toMatch(message);
      expectNoKey(err.message);
    });
  }

  for (const [what, key, mode, message] of [
    ['missing', null, 0o600, /slurm\.jwt_key_file: cannot read .*nope\.key \(ENOENT\)/],
    ['empty', Buffer.alloc(0), 0o600, /slurm\.jwt_key_file: .*jwt\.key is empty/],
    ['too short', KEY.subarray(0, 31), 0o600, /slurm\.jwt_key_file: .*jwt\.key is too short \(31 bytes; a key needs at least 32\)/],
    ['readable by others', KEY, 0o604, /slurm\.jwt_key_file: .*jwt\.key is readable by group or others \(mode 0604\); make it 0600/],
    ['readable by its group', KEY, 0o640, /slurm\.jwt_key_file: .*jwt\.key is readable by group or others \(mode 0640\); make it 0600/],
    ['writable by its group', KEY, 0o620, /slurm\.jwt_key_file: .*jwt\.key is readable by group or others \(mode 0620\)/],
  ] as const) {
    it(`refuses a key file that is ${what}, naming slurm.jwt_key_file and never showing the key`, () => {
      const dir = folder(key === null ? {} : { 'jwt.key': key }, { 'jwt.key': mode });
      const file = key === null ? 'nope.key' : 'jwt.key';
      const { config } = loadConfig({ cwd: dir, env: { GATEHOUSE_SLURM_URL: 'http://127.0.0.1:6820', GATEHOUSE_SLURM_JWT_KEY_FILE: file } });
      const err = errorOf(() => checkGatewayFiles(config));
      expect(err.message).toMatch(message);
      expect(err.message.split('\n')).toHaveLength(1);
      if (key !== null && key.length > 0) expectNoKey(err.message, key);
    });
  }

  it('refuses a key file that is a folder', () => {
    const dir = folder();
    const { config } = loadConfig({ cwd: dir, env: { GATEHOUSE_SLURM_URL: 'http://127.0.0.1:6820', GATEHOUSE_SLURM_JWT_KEY_FILE: dir } });
    expect(errorOf(() => checkGatewayFiles(config)).message).toMatch(/slurm\.jwt_key_file: .* is not a regular file/);
  });

  it('accepts a private key of 32 bytes or more at the gateway’s start, and ignores it while slurm.url is empty', () => {
    const dir = folder({ 'jwt.key': KEY, 'open.key': KEY }, { 'open.key': 0o644 });
    const on = loadConfig({ cwd: dir, env: { GATEHOUSE_SLURM_URL: 'http://127.0.0.1:6820', GATEHOUSE_SLURM_JWT_KEY_FILE: 'jwt.key' } }).config;
    expect(() => checkGatewayFiles(on)).not.toThrow();
    const off = loadConfig({ cwd: dir, env: { GATEHOUSE_SLURM_JWT_KEY_FILE: 'open.key' } }).config;
    expect(() => checkGatewayFiles(off)).not.toThrow();
  });

  it('leaves the key to the gateway: loading the configuration (the engine, the command-line client) does not read it', () => {
    const dir = folder({ 'g.yaml': SLURM, 'jwt.key': KEY }, { 'jwt.key': 0o644 });
    expect(() => loadConfig({ path: join(dir, 'g.yaml'), env: {} })).not.toThrow();
  });

  it('stops the gateway at start-up on a key file others can read, in one line naming the key and without it', async () => {
    const dir = folder({ 'g.yaml': SLURM, 'jwt.key': KEY }, { 'jwt.key': 0o644 });
    const result = await runCli(['gateway', '--config', join(dir, 'g.yaml')], { env: {}, cwd: dir });
    expect(result.code).not.toBe(0);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^gatehouse gateway: config error: .*slurm\.jwt_key_file: .*jwt\.key is readable by group or others \(mode 0644\)/);
    expectNoKey(result.stdout + result.stderr);
  });
});
