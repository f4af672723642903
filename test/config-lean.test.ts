// The client's reading of gatehouse.yaml (src/config/local-gateway.ts, through the lean face) against the full loader: the same
// gateway URL and certs folder for the same file, overrides and working directory.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { upSettings } from '../src/config/boot.js';
import { localGateway } from '../src/config/lean.js';
import { httpsUrl } from '../src/http/index.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-config-lean-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function both(yaml: string | null, env: Record<string, string> = {}, path?: string) {
  const dir = join(root, String(++n));
  mkdirSync(join(dir, 'sub'), { recursive: true });
  if (yaml !== null) writeFileSync(join(dir, 'sub', 'gatehouse.yaml'), yaml);
  const cwd = path === undefined ? join(dir, 'sub') : dir;
  const full = loadConfig({ path, cwd, env });
  const lean = localGateway(path, cwd, env);
  return { full: full.file ? { file: full.file, url: full.config.server.public_url || httpsUrl(full.config.server.host, full.config.server.port), certsDir: full.config.certs.dir } : null, lean };
}

describe("the client's lean read of gatehouse.yaml agrees with loadConfig", () => {
  const cases: [string, string | null, Record<string, string>, string | undefined][] = [
    ['no file', null, {}, undefined],
    ['defaults in an empty file', '', {}, undefined],
    ['host, port and a relative certs.dir', 'server:\n  host: 0.0.0.0\n  port: 9443\ncerts:\n  dir: ../pki\n', {}, undefined],
    ['public_url wins', 'server:\n  public_url: https://gate.example.com\n  port: 9443\n', {}, undefined],
    ['overrides, a relative certs dir from the cwd', 'server:\n  port: 9443\n', { GATEHOUSE_SERVER_PORT: '7443', GATEHOUSE_SERVER_HOST: '::', GATEHOUSE_CERTS_DIR: 'elsewhere' }, undefined],
    ['--config from another folder', 'server:\n  port: 9000\ncerts:\n  dir: c\n', {}, 'sub/gatehouse.yaml'],
    ['GATEHOUSE_CONFIG', 'server:\n  port: 9001\n', { GATEHOUSE_CONFIG: 'gatehouse.yaml' }, undefined],
  ];
  it.each(cases)('%s', (_name, yaml, env, path) => {
    const { full, lean } = both(yaml, env, path);
    expect(lean).toEqual(full);
  });

  it('a value it cannot read is an error, as for the full loader', () => {
    expect(() => both('server:\n  port: high\n')).toThrow();
    const dir = join(root, 'bad');
    mkdirSync(dir);
    writeFileSync(join(dir, 'gatehouse.yaml'), 'server:\n  port: high\n');
    expect(() => localGateway(undefined, dir, {})).toThrow(/server.port/);
  });
});

// up-settings.ts: what `up` reads before the full loader to fork its children early (their logs' folder,
// whether the development provider runs). `up` checks it against the loaded configuration anyway; here
// it is held to agree in the cases people have, and to say null (not a wrong guess) where it is unsure.
describe("up's quick read of gatehouse.yaml agrees with loadConfig", () => {
  const full = (cwd: string, env: Record<string, string>, path?: string) => {
    const { config } = loadConfig({ path, cwd, env });
    return { stateDir: config.state.dir, devIdp: config.dev_idp.enabled && config.oidc.issuer === '', certsDir: config.certs.dir };
  };
  const cases: [string, string | null, Record<string, string>, string | undefined][] = [
    ['no file', null, {}, undefined],
    ['the repository default (provider on, state.dir var)', 'dev_idp:\n  enabled: true\nstate:\n  dir: var\n', {}, undefined],
    ['an external issuer', 'dev_idp:\n  enabled: true\noidc:\n  issuer: https://sso.example.com\n  client_id: gh\n', {}, undefined],
    ['overrides: provider off, a relative state dir from the cwd', 'dev_idp:\n  enabled: true\n', { GATEHOUSE_DEV_IDP_ENABLED: 'off', GATEHOUSE_STATE_DIR: 'elsewhere' }, undefined],
    ['an override turns it on', '', { GATEHOUSE_DEV_IDP_ENABLED: 'yes' }, undefined],
    ['--config from another folder, an absolute state dir, a relative certs dir', 'state:\n  dir: /srv/gatehouse\ncerts:\n  dir: pki\n', {}, 'sub/gatehouse.yaml'],
    ['a certs dir from the environment', '', { GATEHOUSE_CERTS_DIR: 'elsewhere/pki' }, undefined],
    ['GATEHOUSE_CONFIG', 'state:\n  dir: ../st\n', { GATEHOUSE_CONFIG: 'gatehouse.yaml' }, undefined],
  ];
  it.each(cases)('%s', (_name, yaml, env, path) => {
    const dir = join(root, `up-${++n}`);
    mkdirSync(join(dir, 'sub'), { recursive: true });
    if (yaml !== null) writeFileSync(join(dir, 'sub', 'gatehouse.yaml'), yaml);
    const cwd = path === undefined ? join(dir, 'sub') : dir;
    expect(upSettings(path, cwd, env)).toEqual(full(cwd, env, path));
  });

  it('is null, not a guess, for what it cannot read simply (the loader then says what is wrong)', () => {
    const dir = join(root, 'up-unsure');
    mkdirSync(dir);
    writeFileSync(join(dir, 'gatehouse.yaml'), 'dev_idp:\n  enabled: [\n');
    expect(upSettings(undefined, dir, {})).toBeNull();
    expect(upSettings('missing.yaml', dir, {})).toBeNull();
    expect(upSettings(undefined, root, { GATEHOUSE_DEV_IDP_ENABLED: 'maybe' })).toBeNull();
  });
});
