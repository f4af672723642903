// What `gatehouse up` needs of the configuration before it has loaded it: where its children's logs go
// (state.dir/log), whether it starts the development provider (dev_idp.enabled without an
// oidc.issuer), and where the CA is (certs.dir). With them it forks its children at once, and they load their code while it loads and
// validates the configuration (the schema library alone is most of a second of CPU on a first start).
// A guess, not a second loader: `up` compares it with the loaded configuration and forks again where
// they differ. Same file lookup, overrides and path rule as the loader (load.ts); null where this
// simple reading is unsure (the full loader then decides, and says what is wrong).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import type * as Yaml from 'yaml';

export interface UpSettings {
  /** state.dir, absolute. */
  stateDir: string;
  /** dev_idp.enabled and oidc.issuer empty: `up` starts the development provider. */
  devIdp: boolean;
  /** certs.dir, absolute: a first start (no CA there yet) makes the CA's key ahead. */
  certsDir: string;
}

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

export function upSettings(path: string | undefined, cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): UpSettings | null {
  try {
    const asked = path ?? env.GATEHOUSE_CONFIG;
    const file = asked !== undefined && asked !== '' ? resolve(cwd, asked) : resolve(cwd, 'gatehouse.yaml');
    let raw: Record<string, Record<string, unknown> | null | undefined> = {};
    if (existsSync(file)) {
      const { parse } = createRequire(import.meta.url)('yaml') as typeof Yaml;
      raw = (parse(readFileSync(file, 'utf8')) ?? {}) as typeof raw;
    } else if (asked !== undefined && asked !== '') return null;
    const base = existsSync(file) ? dirname(file) : cwd;
    const fromFile = (section: string, key: string) => raw[section]?.[key];

    const dirEnv = env.GATEHOUSE_STATE_DIR;
    const dir = dirEnv ?? fromFile('state', 'dir') ?? 'var';
    if (typeof dir !== 'string' || dir === '') return null;

    const enabledEnv = env.GATEHOUSE_DEV_IDP_ENABLED?.trim().toLowerCase();
    const enabled = enabledEnv === undefined ? (fromFile('dev_idp', 'enabled') ?? false) : TRUE.includes(enabledEnv) ? true : FALSE.includes(enabledEnv) ? false : undefined;
    const issuer = env.GATEHOUSE_OIDC_ISSUER ?? fromFile('oidc', 'issuer') ?? '';
    if (typeof enabled !== 'boolean' || typeof issuer !== 'string') return null;

    const certsEnv = env.GATEHOUSE_CERTS_DIR;
    const certs = certsEnv ?? fromFile('certs', 'dir') ?? 'certs';
    if (typeof certs !== 'string' || certs === '') return null;

    const absolute = (path: string, fromEnv: boolean) => (isAbsolute(path) ? path : resolve(fromEnv ? cwd : base, path));
    return { stateDir: absolute(dir, dirEnv !== undefined), devIdp: enabled && issuer === '', certsDir: absolute(certs, certsEnv !== undefined) };
  } catch {
    return null;
  }
}
