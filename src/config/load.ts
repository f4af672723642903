// Loads gatehouse.yaml, applies GATEHOUSE_<SECTION>_<KEY> overrides, fills defaults and validates.
// Every failure is a ConfigError whose one-line message names the key and what was expected.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Value } from 'typebox/value';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { crossKeyProblems } from './checks.js';
import { type Config, ConfigSchema, PATH_KEYS, SECRET_KEYS } from './schema.js';
import { configKeys, expected, type KeySpec, sectionNames } from './walk.js';
import { closest } from './closest.js';
import { readPrivateFile, SLURM_KEY_MIN_BYTES } from './private-file.js';

/** GATEHOUSE_* variables that are not configuration keys: the CLI client's, and the stack-trace switch every command reads. */
const CLIENT_VARIABLES = new Set(['GATEHOUSE_CONFIG', 'GATEHOUSE_URL', 'GATEHOUSE_CA', 'GATEHOUSE_CONTEXT', 'GATEHOUSE_DEBUG']);

export const DEFAULT_CONFIG_FILE = 'gatehouse.yaml';

export interface LoadOptions {
  /** --config; falls back to GATEHOUSE_CONFIG, then ./gatehouse.yaml when it exists. */
  path?: string | undefined;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

export interface LoadedConfig {
  config: Config;
  /** The file read, or null when only the built-in defaults apply. */
  file: string | null;
}

type Raw = Record<string, Record<string, unknown>>;

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = locate(options.path ?? env.GATEHOUSE_CONFIG, cwd);
  const raw = file ? readYaml(file) : {};
  const label = file ?? 'defaults';
  checkKnownKeys(raw, label);

  const fromEnv = applyEnvironment(raw, env);
  const config = Value.Default(ConfigSchema, raw) as Config;
  const errors = Value.Errors(ConfigSchema, config);
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const path = e.instancePath.slice(1).replaceAll('/', '.');
      const spec = configKeys().find((k) => k.path === path);
      const where = fromEnv.has(path) ? `${fromEnv.get(path)} (${path})` : `${label}: ${path}`;
      const value = (SECRET_KEYS as readonly string[]).includes(path) ? '(secret)' : path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], config);
      return `${where}: expected ${spec ? expected(spec.schema) : e.message}, got ${JSON.stringify(value)}`;
    });
    throw new ConfigError([...new Set(lines)].join('\n'));
  }
  const problems = crossKeyProblems(config, (path) => fromEnv.get(path) ?? `${label}: ${path}`);
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));

  const base = file ? dirname(file) : cwd;
  for (const path of PATH_KEYS) {
    const [section, key] = path.split('.') as [keyof Config, string];
    const values = config[section] as Record<string, string>;
    const value = values[key] as string;
    if (value !== '' && !isAbsolute(value)) values[key] = resolve(fromEnv.has(path) ? cwd : base, value);
  }
  return { config, file };
}

/**
 * The files only the gateway reads, checked when it starts (not by loadConfig: the engine and the
 * command-line client read the same configuration, maybe as another user or on another host).
 * Slurm's JWT key: a bad one stops the gateway here, naming slurm.jwt_key_file; the Slurm backend
 * reads it again, once, when it is built. Nothing of it is kept from this read.
 */
export function checkGatewayFiles(config: Config): void {
  if (config.slurm.url !== '') readPrivateFile('slurm.jwt_key_file', config.slurm.jwt_key_file, SLURM_KEY_MIN_BYTES).fill(0);
  if (config.store.password_file !== '') storePassword(config);
}

/** store.password_file's password (one line; a final newline is not part of it), or undefined without one. */
export function storePassword(config: Pick<Config, 'store'>): string | undefined {
  if (config.store.password_file === '') return undefined;
  const bytes = readPrivateFile('store.password_file', config.store.password_file, 1);
  const text = bytes.toString('utf8').replace(/\r?\n$/, '');
  bytes.fill(0);
  if (text === '' || text.includes('\n')) throw new ConfigError(`store.password_file ${config.store.password_file}: expected one line, the password`);
  return text;
}

function locate(path: string | undefined, cwd: string): string | null {
  if (path !== undefined && path !== '') {
    const full = resolve(cwd, path);
    if (!existsSync(full)) throw new ConfigError(`config file not found: ${full}`);
    return full;
  }
  const fallback = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(fallback) ? fallback : null;
}

function readYaml(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  const first = doc.errors[0];
  if (first) {
    const pos = lineCounter.linePos(first.pos[0]);
    const at = `${file}:${pos.line}:${pos.col}`;
    throw new ConfigError(`${at}: invalid YAML: ${first.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${file}: expected a mapping of sections (server:, engine:, ...) at the top level`);
  }
  return value as Raw;
}

function checkKnownKeys(raw: Raw, label: string): void {
  const sections = sectionNames();
  const keys = configKeys();
  for (const [section, body] of Object.entries(raw)) {
    if (!sections.includes(section)) {
      throw new ConfigError(`${label}: unknown section "${section}"${hint(section, sections)}; known sections: ${sections.join(', ')}`);
    }
    if (body === null) {
      raw[section] = {};
      continue;
    }
    if (typeof body !== 'object' || Array.isArray(body)) {
      throw new ConfigError(`${label}: ${section}: expected a mapping of keys, got ${JSON.stringify(body)}`);
    }
    const known = keys.filter((k) => k.section === section).map((k) => k.key);
    for (const key of Object.keys(body)) {
      if (!known.includes(key)) {
        throw new ConfigError(`${label}: unknown key ${section}.${key}${hint(key, known, `${section}.`)}; known keys: ${known.map((k) => `${section}.${k}`).join(', ')}`);
      }
    }
  }
}

/** Applies GATEHOUSE_<SECTION>_<KEY> variables onto raw; returns key path → variable name. */
function applyEnvironment(raw: Raw, env: Record<string, string | undefined>): Map<string, string> {
  const byEnv = new Map(configKeys().map((k) => [k.env, k]));
  const applied = new Map<string, string>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('GATEHOUSE_') || CLIENT_VARIABLES.has(name) || value === undefined) continue;
    const spec = byEnv.get(name);
    if (!spec) {
      throw new ConfigError(`unknown environment override ${name}${hint(name, [...byEnv.keys()])}; overrides are GATEHOUSE_<SECTION>_<KEY> for a key in gatehouse.yaml`);
    }
    (raw[spec.section] ??= {})[spec.key] = coerce(spec, name, value);
    applied.set(spec.path, name);
  }
  return applied;
}

function coerce(spec: KeySpec, name: string, value: string): unknown {
  const fail = () => new ConfigError(`${name} (${spec.path}): expected ${expected(spec.schema)}, got ${JSON.stringify(value)}`);
  switch (spec.schema.type) {
    case 'integer':
      if (!/^-?\d+$/.test(value.trim())) throw fail();
      return Number(value);
    case 'number':
      if (value.trim() === '' || Number.isNaN(Number(value))) throw fail();
      return Number(value);
    case 'boolean': {
      const v = value.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      throw fail();
    }
    case 'array':
      return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    default:
      return value;
  }
}

/** " (did you mean X?)" for a near miss: a typo should not cost a reader a trip to the docs. */
function hint(input: string, candidates: string[], prefix = ''): string {
  const best = closest(input, candidates);
  return best ? ` (did you mean ${prefix}${best}?)` : '';
}
