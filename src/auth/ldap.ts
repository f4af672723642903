// LDAP login: search the user with a service account, prove the password with a bind as the user,
// then read the groups. Works with OpenLDAP and Active Directory; the filters come from the configuration.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Client, type Entry, InvalidCredentialsError, ResultCodeError } from 'ldapts';
import { type Config, ConfigError } from '../config/index.js';
import { cleanGroups, isValidUsername, type LoginSubject, posixUserOf } from '../identity/index.js';
import { fillFilter, firstRdnValue } from './ldap-filter.js';
import { LoginError } from './login-error.js';

export type LdapSettings = Config['ldap'];

export interface LdapLogin {
  /** Resolves with who the person is, or rejects with a LoginError. */
  login(username: string, password: string): Promise<LoginSubject>;
  /**
   * The person as the directory has them now, without their password (for a refresh): null when no
   * entry matches the user filter any more, or the one that does names someone else. Rejects with a
   * LoginError when the directory cannot say (unreachable, refused the service account, ambiguous).
   */
  current(user: string): Promise<LoginSubject | null>;
}

// One message for both an unknown user and a wrong password, so the answer does not reveal who exists.
const INVALID = 'invalid username or password';
const UNAVAILABLE = 'the directory is not available; try again later';
const REFUSED = 'the directory refused the login';

export interface LdapLoginOptions {
  /** slurm.user_attribute: the attribute naming the person's POSIX account on the cluster (none: no account). */
  posixUserAttribute?: string;
}

/** Reads the files the settings name, once; throws a ConfigError naming the key if one is unreadable. */
export function createLdapLogin(settings: LdapSettings, options: LdapLoginOptions = {}): LdapLogin {
  if (settings.url === '') throw new ConfigError('ldap.url: not set (LDAP login is disabled)');
  const ca = settings.ca_file === '' ? undefined : readSetting('ldap.ca_file', settings.ca_file);
  const bindPassword =
    settings.bind_password_file === ''
      ? settings.bind_password
      : readSetting('ldap.bind_password_file', settings.bind_password_file).toString('utf8').replace(/\r?\n$/, '');
  // A DN without a password is an "unauthenticated bind" (RFC 4513 5.1.2): never what anyone means.
  if (settings.bind_dn !== '' && bindPassword === '') {
    throw new ConfigError('ldap.bind_password: required when ldap.bind_dn is set (or set ldap.bind_password_file)');
  }
  const tls: ConnectionOptions = { minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) };
  const connect = (): Promise<Client> => openClient(settings, tls);

  return {
    async login(username, password) {
      if (password === '') throw new LoginError('empty_password', 'a password is required');
      if (!isValidUsername(username)) throw new LoginError('invalid_username', 'not a valid username', 'the username has characters or a length a Gatehouse username may not have');

      const service = await connect();
      try {
        if (settings.bind_dn !== '') await step('service account bind', () => service.bind(settings.bind_dn, bindPassword));
        const entry = await findUser(service, settings, username, options.posixUserAttribute);
        await proveUser(connect, entry.dn, password);
        const user = usernameOf(entry, settings, username);
        const groups = await groupsOf(service, settings, entry, user);
        return subjectFrom(entry, user, groups);
      } finally {
        await close(service);
      }
    },

    async current(user) {
      if (!isValidUsername(user)) return null;
      const service = await connect();
      try {
        if (settings.bind_dn !== '') await step('service account bind', () => service.bind(settings.bind_dn, bindPassword));
        let entry: Entry;
        try {
          entry = await findUser(service, settings, user, options.posixUserAttribute);
        } catch (err) {
          // Deleted, or left out by the filter (a disabled account in Active Directory's usual filter).
          if (err instanceof LoginError && err.reason === 'invalid_credentials') return null;
          throw err;
        }
        // Renamed: the login was someone the directory now calls otherwise; never carried over.
        if (usernameOf(entry, settings, user) !== user) return null;
        return subjectFrom(entry, user, await groupsOf(service, settings, entry, user));
      } finally {
        await close(service);
      }
    },
  };

  function subjectFrom(entry: Entry, user: string, groups: string[]): LoginSubject {
    // Exactly one value, and a POSIX user name; anything else is no account (never a guess): a
    // directory returns values in no promised order, and one beside the person's may name another.
    const named = options.posixUserAttribute === undefined ? [] : values(entry, options.posixUserAttribute);
    const posixUser = named.length === 1 ? posixUserOf(named[0]) : undefined;
    return { user, groups, auth_method: 'ldap', ...(posixUser !== undefined ? { posix_user: posixUser } : {}) };
  }
}

function readSetting(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** A connected client: implicit TLS for ldaps://, StartTLS before anything else when asked. */
async function openClient(settings: LdapSettings, tls: ConnectionOptions): Promise<Client> {
  const secure = settings.url.startsWith('ldaps:');
  const client = new Client({
    url: settings.url,
    timeout: settings.timeout_ms,
    connectTimeout: settings.timeout_ms,
    // Only for ldaps://: ldapts treats tlsOptions as "use TLS", even on ldap:// URLs.
    ...(secure ? { tlsOptions: tls } : {}),
  });
  try {
    // ldapts connects lazily; StartTLS connects itself, a plain or ldaps:// client on its first operation.
    // The TLS handshake after StartTLS has no timer of its own in ldapts. `host` is what the certificate
    // is checked against (the socket is handed over, so tls.connect would not know it).
    if (settings.start_tls) await step('StartTLS', () => withTimeout(client.startTLS({ ...tls, host: hostOf(settings.url) }), settings.timeout_ms));
    return client;
  } catch (err) {
    await close(client);
    throw err;
  }
}

async function findUser(client: Client, settings: LdapSettings, username: string, posixUserAttribute: string | undefined): Promise<Entry> {
  const filter = fillFilter(settings.user_filter, { username });
  const { searchEntries } = await step('user search', () =>
    client.search(settings.user_base, {
      scope: 'sub',
      filter,
      // Two are enough to know the name is ambiguous.
      sizeLimit: 2,
      attributes: [settings.posix_user_attribute, settings.group_attribute, ...(posixUserAttribute !== undefined ? [posixUserAttribute] : [])],
    }),
  );
  const [entry, second] = searchEntries;
  if (entry === undefined) throw new LoginError('invalid_credentials', INVALID, 'no directory entry matches the user filter');
  if (second !== undefined) throw new LoginError('ambiguous_user', REFUSED, `several directory entries match the user filter (${entry.dn}, ${second.dn}, ...)`);
  return entry;
}

/** Binds as the user on a connection of its own, so the service account's stays the service account's. */
async function proveUser(connect: () => Promise<Client>, dn: string, password: string): Promise<void> {
  const client = await connect();
  try {
    await client.bind(dn, password);
  } catch (err) {
    if (err instanceof InvalidCredentialsError) throw new LoginError('invalid_credentials', INVALID, `the directory refused the password for ${dn}`);
    throw asLoginError('user bind', err);
  } finally {
    await close(client);
  }
}

function usernameOf(entry: Entry, settings: LdapSettings, input: string): string {
  const value = values(entry, settings.posix_user_attribute)[0];
  if (value === undefined) return input;
  if (!isValidUsername(value)) {
    throw new LoginError('provider_error', REFUSED, `${entry.dn} has ${settings.posix_user_attribute} ${JSON.stringify(value)}, not a usable Gatehouse username`);
  }
  return value;
}

/** The user's group attribute (memberOf) if it lists any; otherwise a group search, when configured. */
async function groupsOf(client: Client, settings: LdapSettings, entry: Entry, user: string): Promise<string[]> {
  const dns = values(entry, settings.group_attribute);
  if (dns.length > 0) return cleanGroups(dns.map(firstRdnValue).filter((v): v is string => v !== undefined));
  if (settings.group_base === '') return [];
  const { searchEntries } = await step('group search', () =>
    client.search(settings.group_base, {
      scope: 'sub',
      filter: fillFilter(settings.group_filter, { dn: entry.dn, username: user }),
      attributes: ['cn'],
    }),
  );
  return cleanGroups(searchEntries.flatMap((g) => values(g, 'cn')));
}

/** An attribute's string values; attribute names are case-insensitive (memberOf, memberof). */
function values(entry: Entry, attribute: string): string[] {
  const wanted = attribute.toLowerCase();
  const key = Object.keys(entry).find((k) => k.toLowerCase() === wanted && k !== 'dn');
  const raw = key === undefined ? undefined : entry[key];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
}

/** Runs one directory step; anything but a LoginError becomes one, saying which step failed. */
async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw asLoginError(what, err);
  }
}

function asLoginError(what: string, err: unknown): LoginError {
  if (err instanceof LoginError) return err;
  const detail = `${what}: ${explain(err)}`;
  // An LDAP result code is an answer: the directory is there but said no (a bad service password, a bad base).
  // busy (51) and unavailable (52) are the directory saying it cannot serve right now.
  if (err instanceof ResultCodeError && err.code !== 51 && err.code !== 52) return new LoginError('provider_error', REFUSED, detail);
  // No answer at all: refused or reset connections, TLS failures, timeouts.
  return new LoginError('provider_unavailable', UNAVAILABLE, detail);
}

function explain(err: unknown): string {
  if (err instanceof ResultCodeError) return `${err.name} (LDAP result ${err.code}): ${err.message}`;
  if (err instanceof Error) return `${(err as NodeJS.ErrnoException).code ?? err.name}: ${err.message.split('\n')[0]}`;
  return String(err);
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

/** Unbinds and closes; a connection that is already gone is fine. */
async function close(client: Client): Promise<void> {
  try {
    await client.unbind();
  } catch {
    // The socket is destroyed by unbind either way; nothing left to clean.
  }
}

