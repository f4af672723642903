// The shared store: PostgreSQL, for several gateways over one database (store.url postgres://...).
// The password comes from store.password_file (or the URL, for an environment override), never from
// the configuration file in clear and never into a log: `location` is the URL without it.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { StoreError } from './errors.js';
import type { Tables } from './tables.js';

export interface PostgresOptions {
  /** postgres://user[:password]@host[:port]/database[?sslmode=...] */
  url: string;
  /** The password, read from store.password_file; overrides one in the URL. */
  password?: string;
  /** Connections this gateway keeps at most. */
  poolSize?: number;
  /** Milliseconds a statement may run before the database cancels it. */
  statementTimeoutMs?: number;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** The URL without its password: what messages, logs and /readyz may show. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** Server settings a dedicated session starts with (`-c name=value`), e.g. its TCP keepalives. */
export interface SessionOptions {
  settings?: Record<string, string | number>;
  /** Shown in pg_stat_activity, so an operator sees what the session is for. */
  applicationName?: string;
}

/** A new, unconnected client on the store's database: a session of its own, outside the pool. */
export type SessionFactory = (o?: SessionOptions) => pg.Client;

export function openPostgres(o: PostgresOptions): { db: Kysely<Tables>; location: string; session: SessionFactory } {
  let parsed: URL;
  try {
    parsed = new URL(o.url);
  } catch {
    throw new StoreError('store.url is not a valid postgres:// URL');
  }
  if (parsed.pathname.length <= 1) throw new StoreError(`store.url ${redactedUrl(o.url)} names no database (postgres://user@host:port/database)`);
  if (parsed.search !== '' && [...parsed.searchParams.keys()].some((k) => k !== 'sslmode')) throw new StoreError(`store.url ${redactedUrl(o.url)}: only the sslmode parameter is understood`);
  const sslmode = parsed.searchParams.get('sslmode') ?? 'disable';
  if (!['disable', 'require', 'verify-full'].includes(sslmode)) throw new StoreError(`store.url: sslmode must be disable, require or verify-full, got ${sslmode}`);
  const password = o.password ?? (parsed.password !== '' ? decodeURIComponent(parsed.password) : undefined);
  // What the pool and a dedicated session share; it holds the password, so it is never logged.
  const connection = {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port === '' ? 5432 : Number(parsed.port),
    database: decodeURIComponent(parsed.pathname.slice(1)),
    user: decodeURIComponent(parsed.username),
    ...(password !== undefined ? { password } : {}),
    // verify-full checks the server's certificate and name against the system's CAs; require only encrypts.
    ...(sslmode === 'disable' ? {} : { ssl: { rejectUnauthorized: sslmode === 'verify-full' } }),
    connectionTimeoutMillis: 5_000,
    statement_timeout: o.statementTimeoutMs ?? 10_000,
  };
  // Sessions read and write in UTC ISO text like the embedded store; nothing depends on the server's zone.
  const timeZone = '-c TimeZone=UTC';
  const pool = new pg.Pool({ ...connection, max: o.poolSize ?? 10, options: timeZone });
  // An idle connection the server dropped (a restart) must not crash the gateway: the next query reconnects.
  pool.on('error', () => undefined);
  // Nor one that dies while checked out and between statements (the connection holding a section's
  // lock, store/exclusive.ts): its next statement fails instead, and the pool drops it on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const session: SessionFactory = (so = {}) =>
    new pg.Client({
      ...connection,
      options: [timeZone, ...Object.entries(so.settings ?? {}).map(([k, v]) => serverSetting(k, v))].join(' '),
      ...(so.applicationName !== undefined ? { application_name: so.applicationName } : {}),
    });
  return { db: new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) }), location: redactedUrl(o.url), session };
}

// The startup options string is split on spaces by the server: a name or value that could carry another
// option is refused rather than escaped.
function serverSetting(name: string, value: string | number): string {
  if (!/^[a-z_]+$/.test(name) || !/^[A-Za-z0-9_.:/-]+$/.test(String(value))) throw new StoreError(`not a server setting: ${name}=${value}`);
  return `-c ${name}=${value}`;
}
