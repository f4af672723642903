// Where the CLI keeps what a login gave it: tokens per context (`context:NAME`) or per gateway URL,
// and client certificates, under the user's config folder ($XDG_CONFIG_HOME/gatehouse or
// ~/.config/gatehouse), folder 0700, files 0600.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Target } from './api.js';

export interface SavedLogin {
  /** The gateway the tokens are for: a context moved to another URL does not send them there. */
  url?: string;
  user: string;
  auth_method: string;
  access_token: string;
  refresh_token: string;
  /** When the access token expires (ISO). */
  expires_at: string;
}

export function configHome(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'gatehouse');
}

export function ensureHome(): string {
  const dir = configHome();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

const credentialsFile = () => join(configHome(), 'credentials.json');

function readAll(): Record<string, SavedLogin> {
  const file = credentialsFile();
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, SavedLogin>;
  } catch {
    return {}; // a damaged file is as good as no login: the user logs in again
  }
}

/** Writes a private file atomically: never a moment where it exists with a wider mode. */
export function writePrivate(file: string, content: string): void {
  // A fresh name opened exclusively and without following links: nothing planted at the temporary
  // name (a link to another file) can receive the login.
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** Where a target's login is kept: under its context when one named the gateway, else under the gateway's URL. */
export const loginKey = (target: Pick<Target, 'url' | 'context'>) => (target.context === undefined ? target.url : `context:${target.context}`);

export function loadLogin(target: Pick<Target, 'url' | 'context'>): SavedLogin | undefined {
  const login = readAll()[loginKey(target)];
  // Tokens go only to the gateway that issued them, even when a context now names another one.
  if (login?.url !== undefined && login.url !== target.url) return undefined;
  return login;
}

export function saveLogin(target: Pick<Target, 'url' | 'context'>, login: SavedLogin): void {
  ensureHome();
  const all = readAll();
  all[loginKey(target)] = { ...login, url: target.url };
  writePrivate(credentialsFile(), `${JSON.stringify(all, null, 2)}\n`);
}

export function forgetLogin(target: Pick<Target, 'url' | 'context'>): boolean {
  const all = readAll();
  const key = loginKey(target);
  if (!all[key]) return false;
  delete all[key];
  writePrivate(credentialsFile(), `${JSON.stringify(all, null, 2)}\n`);
  return true;
}

/** Forgets a deleted context's login (its tokens stay valid at the gateway until they expire or a logout). */
export function forgetContextLogin(name: string): boolean {
  const all = readAll();
  if (!all[`context:${name}`]) return false;
  delete all[`context:${name}`];
  writePrivate(credentialsFile(), `${JSON.stringify(all, null, 2)}\n`);
  return true;
}

/**
 * The CA `gatehouse cert` saved for this gateway, when there is one (nothing is created): the
 * context's own folder first, then the gateway's.
 */
export function savedCaFile(url: string, context?: string): string | undefined {
  for (const folder of [...(context === undefined ? [] : [contextFolderName(context)]), certificateFolderName(url)]) {
    const file = join(configHome(), 'certs', folder, 'ca.crt');
    if (existsSync(file)) return file;
  }
  return undefined;
}

/** A context's certificates are its person's: certs/@NAME/, apart from another context's on the same gateway. */
const contextFolderName = (name: string) => `@${name}`;

function certificateFolderName(url: string): string {
  const { hostname, port } = new URL(url);
  return `${hostname.replace(/[^A-Za-z0-9.-]/g, '_')}_${port || '443'}`;
}

/** The folder for one login's client certificates: certs/@<context>/ or certs/<host>_<port>/. */
export function certificateDir(target: Pick<Target, 'url' | 'context'>): string {
  const dir = join(ensureHome(), 'certs', target.context === undefined ? certificateFolderName(target.url) : contextFolderName(target.context));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function removeCertificates(url: string): void {
  const { hostname, port } = new URL(url);
  rmSync(join(configHome(), 'certs', `${hostname.replace(/[^A-Za-z0-9.-]/g, '_')}_${port || '443'}`), { recursive: true, force: true });
}
