// Where the CLI keeps what a login gave it: tokens per gateway URL, and client certificates, under
// the user's config folder ($XDG_CONFIG_HOME/gatehouse or ~/.config/gatehouse), folder 0700, files 0600.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface SavedLogin {
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

function ensureHome(): string {
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
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function loadLogin(url: string): SavedLogin | undefined {
  return readAll()[url];
}

export function saveLogin(url: string, login: SavedLogin): void {
  ensureHome();
  const all = readAll();
  all[url] = login;
  writePrivate(credentialsFile(), `${JSON.stringify(all, null, 2)}\n`);
}

export function forgetLogin(url: string): boolean {
  const all = readAll();
  if (!all[url]) return false;
  delete all[url];
  writePrivate(credentialsFile(), `${JSON.stringify(all, null, 2)}\n`);
  return true;
}

/** The folder for one gateway's client certificates: certs/<host>_<port>/. */
/** The CA `gatehouse cert` saved for this gateway, when there is one (nothing is created). */
export function savedCaFile(url: string): string | undefined {
  const file = join(configHome(), 'certs', certificateFolderName(url), 'ca.crt');
  return existsSync(file) ? file : undefined;
}

function certificateFolderName(url: string): string {
  const { hostname, port } = new URL(url);
  return `${hostname.replace(/[^A-Za-z0-9.-]/g, '_')}_${port || '443'}`;
}

export function certificateDir(url: string): string {
  const dir = join(ensureHome(), 'certs', certificateFolderName(url));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function removeCertificates(url: string): void {
  const { hostname, port } = new URL(url);
  rmSync(join(configHome(), 'certs', `${hostname.replace(/[^A-Za-z0-9.-]/g, '_')}_${port || '443'}`), { recursive: true, force: true });
}
