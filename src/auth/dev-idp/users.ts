// DEVELOPMENT ONLY: the demo users of the development OIDC provider, read from dev_idp.users_file
// and checked entry by entry, so a typo stops start-up with the file and the entry named.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { constantTimeEqual } from '../constant-time.js';
import { cleanGroups, isValidUsername, posixUserOf } from '../../identity/index.js';

export interface DevUser {
  username: string;
  password: string;
  name: string;
  email: string;
  groups: string[];
  /** The `posix_user` claim (point slurm.user_claim at it): the account Slurm jobs run as. */
  posix_user?: string;
}

const FIELDS = new Set(['username', 'password', 'name', 'email', 'groups', 'posix_user']);

export function readDevUsers(file: string): DevUser[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`dev_idp.users_file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new Error(`dev_idp.users_file ${file}: not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const list = (doc as { users?: unknown } | null)?.users;
  if (!Array.isArray(list) || list.length === 0) throw new Error(`dev_idp.users_file ${file}: expected a non-empty list under "users:"`);

  const seen = new Set<string>();
  return list.map((entry: unknown, i) => {
    const where = (name?: unknown) => `dev_idp.users_file ${file}: users[${i}]${typeof name === 'string' ? ` (${name})` : ''}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Error(`${where()}: expected a mapping with username, password, name, email, groups`);
    const e = entry as Record<string, unknown>;
    const unknown = Object.keys(e).filter((k) => !FIELDS.has(k));
    if (unknown.length > 0) throw new Error(`${where(e.username)}: unknown field ${unknown.join(', ')}`);
    if (typeof e.username !== 'string' || !isValidUsername(e.username)) throw new Error(`${where(e.username)}: username must be letters, digits and . _ @ - (at most 128)`);
    if (seen.has(e.username)) throw new Error(`${where(e.username)}: username appears twice`);
    seen.add(e.username);
    if (typeof e.password !== 'string' || e.password === '') throw new Error(`${where(e.username)}: password must be a non-empty string`);
    if (typeof e.name !== 'string' || e.name.trim() === '') throw new Error(`${where(e.username)}: name must be a non-empty string`);
    if (typeof e.email !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(e.email)) throw new Error(`${where(e.username)}: email must look like name@domain`);
    const groups = e.groups ?? [];
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) throw new Error(`${where(e.username)}: groups must be a list of names`);
    const clean = cleanGroups(groups as string[]);
    if (clean.length !== new Set(groups as string[]).size) throw new Error(`${where(e.username)}: group names must be non-empty, without commas or control characters`);
    if (e.posix_user !== undefined && posixUserOf(e.posix_user) === undefined) throw new Error(`${where(e.username)}: posix_user must be a POSIX user name (lower-case letters, digits, _ and -; not root)`);
    return { username: e.username, password: e.password, name: e.name, email: e.email, groups: clean, ...(typeof e.posix_user === 'string' ? { posix_user: e.posix_user } : {}) };
  });
}

/**
 * The user whose password matches, or undefined. The comparison is constant-time whatever the lengths,
 * and an unknown username still costs one comparison, so timing tells nothing either way.
 */
export function checkPassword(users: DevUser[], username: string, password: string): DevUser | undefined {
  const user = users.find((u) => u.username === username);
  const ok = constantTimeEqual(user?.password ?? '\0unknown user', password);
  return user && ok ? user : undefined;
}
