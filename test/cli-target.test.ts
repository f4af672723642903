// Which CA the CLI trusts for a gateway named on the command line: the local certs/ca.crt vouches for
// the local gateway (gatehouse.yaml's) only; a --url naming another gateway does not inherit it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveTarget } from '../src/cli/client/target.js';

let dir: string;
const CA = '-----BEGIN CERTIFICATE-----\nlocal\n-----END CERTIFICATE-----\n';
const env = () => ({ XDG_CONFIG_HOME: join(dir, 'home') }) as NodeJS.ProcessEnv;
const config = () => join(dir, 'gatehouse.yaml');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gh-target-'));
  mkdirSync(join(dir, 'certs'));
  writeFileSync(join(dir, 'certs', 'ca.crt'), CA);
  writeFileSync(config(), 'server:\n  host: 127.0.0.1\n  port: 9443\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the CA for a gateway named on the command line', () => {
  it('is the local certs/ca.crt when no URL is named, or the URL is the local gateway', () => {
    for (const url of [undefined, 'https://127.0.0.1:9443', 'https://127.0.0.1:9443/']) {
      const t = resolveTarget({ url, config: config() }, env());
      expect(t.url).toBe('https://127.0.0.1:9443');
      expect(t.caFile, String(url)).toBe(join(dir, 'certs', 'ca.crt'));
      expect(t.caSource).toBe('the local certs/ca.crt');
    }
  });

  it('is not the local one for another gateway: none (the system CAs) unless one is given or saved for it', () => {
    for (const url of ['https://gatehouse.example:8443', 'https://127.0.0.1:9444']) {
      const t = resolveTarget({ url, config: config() }, env());
      expect(t.caFile, url).toBeUndefined();
      expect(t.ca).toBeUndefined();
    }
    const given = resolveTarget({ url: 'https://gatehouse.example:8443', ca: join(dir, 'certs', 'ca.crt'), config: config() }, env());
    expect(given.caSource).toBe('--ca');
    expect(resolveTarget({ url: 'https://gatehouse.example:8443', config: config() }, { ...env(), GATEHOUSE_CA: join(dir, 'certs', 'ca.crt') }).caSource).toBe('GATEHOUSE_CA');
  });
});
