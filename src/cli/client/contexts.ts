// Named gateways, as kubectl's contexts: each a URL and the CA to trust there, one of them current.
// Kept in contexts.json beside the saved logins (config folder 0700, file 0600); a login made
// through a context is saved under that context, so two contexts hold two people's logins.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../fail.js';
import { configHome, ensureHome, writePrivate } from './credentials.js';

export interface Context {
  /** The gateway's origin, https://host:port. */
  url: string;
  /** An absolute path to the CA that signed the gateway's certificate; none: the saved one, else the system's. */
  ca?: string | undefined;
}

export interface Contexts {
  current: string | null;
  contexts: Record<string, Context>;
}

/** A name that is safe in a file name, a JSON key and a shell word. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A name set-context would accept: the only ones completion offers (bash expands what compgen -W is given). */
export const isContextName = (name: string) => NAME.test(name);

export function checkContextName(name: string): string {
  if (!NAME.test(name)) throw new UsageError(`context name ${JSON.stringify(name)}: letters, digits, . _ - (at most 63, starting with a letter or digit)`);
  return name;
}

export const contextsFile = () => join(configHome(), 'contexts.json');

export function readContexts(): Contexts {
  const file = contextsFile();
  if (!existsSync(file)) return { current: null, contexts: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // Unlike a damaged login (log in again), a damaged context list would silently send calls elsewhere.
    throw new UsageError(`${file} is not valid JSON: fix it, or remove it and set the contexts again`);
  }
  const p = parsed as Partial<Contexts>;
  const contexts = p.contexts !== null && typeof p.contexts === 'object' ? p.contexts : {};
  return { current: typeof p.current === 'string' ? p.current : null, contexts: Object.fromEntries(Object.entries(contexts).filter(([, c]) => c !== null && typeof c === 'object' && typeof c.url === 'string')) };
}

export function writeContexts(all: Contexts): void {
  ensureHome();
  writePrivate(contextsFile(), `${JSON.stringify(all, null, 2)}\n`);
}

/** A context that must exist: named on the command line or in GATEHOUSE_CONTEXT. */
export function namedContext(all: Contexts, name: string, where: string): Context {
  const context = all.contexts[name];
  if (!context) {
    const known = Object.keys(all.contexts);
    throw new UsageError(`no context ${JSON.stringify(name)} (${where}); ${known.length > 0 ? `known: ${known.join(', ')}` : 'none is set: gatehouse config set-context NAME --url URL'}`);
  }
  return context;
}
