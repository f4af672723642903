// Where this host's gateway is, read from gatehouse.yaml without the full loader: the command-line
// client needs four keys of it (server.public_url, server.host, server.port, certs.dir) to default
// its target, and the full loader's schema costs it most of a second per call. Same file lookup
// (--config, GATEHOUSE_CONFIG, ./gatehouse.yaml), same overrides (GATEHOUSE_SERVER_HOST, ...), same
// defaults and path rule (a relative certs.dir is the file's folder's, an override's the cwd's);
// test/config-lean.test.ts holds it to loadConfig. A value it cannot read is an error, as there.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import type * as Yaml from 'yaml';
import { httpsUrl } from '../http/lean.js';

export interface LocalGateway {
  /** The configuration file it came from. */
  file: string;
  /** server.public_url, else https://server.host:server.port. */
  url: string;
  /** certs.dir, absolute. */
  certsDir: string;
}

const DEFAULTS = { host: '127.0.0.1', port: 8443, certsDir: 'certs' };

/** The gateway a configuration file names, or null when there is no file to read. */
export function localGateway(path: string | undefined, cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): LocalGateway | null {
  const asked = path ?? env.GATEHOUSE_CONFIG;
  const file = asked !== undefined && asked !== '' ? resolve(cwd, asked) : resolve(cwd, 'gatehouse.yaml');
  if (!existsSync(file)) return null;
  // The YAML library is loaded only when there is a file to read: it is the largest thing a client
  // verb would load (about 70 modules, a third of `gatehouse --help`'s time), and --url, a context
  // or a folder without gatehouse.yaml never need it.
  const { parse } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  const raw = (parse(readFileSync(file, 'utf8')) ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const server = raw.server ?? {};
  const certs = raw.certs ?? {};
  const text = (v: unknown, key: string, fallback: string): string => {
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw new Error(`${file}: ${key}: expected a string`);
    return v;
  };
  const host = env.GATEHOUSE_SERVER_HOST ?? text(server.host, 'server.host', DEFAULTS.host);
  const portText = env.GATEHOUSE_SERVER_PORT ?? (server.port === undefined ? String(DEFAULTS.port) : String(server.port));
  if (!/^\d{1,5}$/.test(portText.trim()) || Number(portText) > 65_535) throw new Error(`${file}: server.port: expected a port, got ${portText}`);
  const publicUrl = env.GATEHOUSE_SERVER_PUBLIC_URL ?? text(server.public_url, 'server.public_url', '');
  const dirFromEnv = env.GATEHOUSE_CERTS_DIR;
  const dir = dirFromEnv ?? text(certs.dir, 'certs.dir', DEFAULTS.certsDir);
  return {
    file,
    url: publicUrl || httpsUrl(host, Number(portText)),
    certsDir: isAbsolute(dir) ? dir : resolve(dirFromEnv !== undefined ? cwd : dirname(file), dir),
  };
}
