// Opens the store, brings its schema up to date and answers readiness pings.
import { randomUUID } from 'node:crypto';
import { type Kysely, type MigrationResultSet, Migrator, sql } from 'kysely';
import { StoreError } from './errors.js';
import { migrations } from './migrations.js';
import { isPostgresUrl, openPostgres, type SessionFactory } from './postgres.js';
import { type CommitSyncingOffLoop, openSqlite } from './sqlite.js';
import type { Tables } from './tables.js';

export interface Store {
  db: Kysely<Tables>;
  /** Where the data lives, for people: a file path or a URL without credentials. */
  location: string;
  dialect: Dialect;
  instanceId: string;
  /** PostgreSQL only: a new session outside the pool, for state that must live exactly as long as one
   *  connection (a session-level advisory lock). The caller connects and ends it. */
  session?: SessionFactory;
  /**
   * The embedded store only: a number that changes whenever another connection to the file (another
   * gateway process) has committed since it was last read; undefined when it cannot tell (inside one
   * of our transactions, closed). Lets a reader keep what it read until anyone else writes.
   * PostgreSQL has no such counter: absent there.
   */
  commitsElsewhere?: () => number | undefined;
  /**
   * The embedded store only: one statement committed with its fsync on the thread pool, not on the
   * event loop (sqlite.ts); null when it cannot be (inside a transaction). PostgreSQL: absent.
   */
  commitSyncingOffLoop?: CommitSyncingOffLoop;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** state.dir: the embedded store's folder. */
  stateDir: string;
  /** store.url: empty for the embedded SQLite store, postgres://... for a shared one. */
  url?: string;
  /** The database password (store.password_file's content). */
  password?: string;
}

/** The store's SQL dialect, for the few statements that differ. */
export type Dialect = 'sqlite' | 'postgres';

export async function openStore(options: StoreOptions): Promise<Store> {
  const url = options.url ?? '';
  if (url !== '' && !isPostgresUrl(url)) throw new StoreError('store.url: expected empty (the embedded SQLite store) or postgres://user@host:port/database');
  const { db, location, session, commitsElsewhere, commitSyncingOffLoop, closeWal } =
    url === ''
      ? (({ db, file, commitsElsewhere, commitSyncingOffLoop, closeWal }) => ({ db, location: file, session: undefined, commitsElsewhere, commitSyncingOffLoop, closeWal }))(openSqlite(options.stateDir))
      : { ...openPostgres({ url, ...(options.password !== undefined ? { password: options.password } : {}) }), commitsElsewhere: undefined, commitSyncingOffLoop: undefined, closeWal: async () => {} };
  try {
    await migrate(db);
    const instanceId = await ensureInstance(db);
    return {
      db,
      dialect: url === '' ? 'sqlite' : 'postgres',
      location,
      instanceId,
      ...(session !== undefined ? { session } : {}),
      ...(commitsElsewhere !== undefined ? { commitsElsewhere } : {}),
      ...(commitSyncingOffLoop !== undefined ? { commitSyncingOffLoop } : {}),
      ping: async () => {
        await sql`select 1`.execute(db);
      },
      close: async () => {
        await closeWal();
        await db.destroy();
      },
    };
  } catch (err) {
    await closeWal();
    await db.destroy();
    throw err;
  }
}

export async function migrate(db: Kysely<Tables>): Promise<MigrationResultSet> {
  // Migration numbers are handed out ahead to parallel work, so 0013 may land (and run on a store)
  // before 0012: a store that ran a later one still gets an earlier one added after it.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations }, allowUnorderedMigrations: true });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error');
    throw new StoreError(`migration ${failed?.migrationName ?? '?'} failed: ${String((result.error as Error).message ?? result.error)}`);
  }
  return result;
}

async function ensureInstance(db: Kysely<Tables>): Promise<string> {
  const row = await db.selectFrom('instance').select('id').executeTakeFirst();
  if (row) return row.id;
  const id = randomUUID();
  await db.insertInto('instance').values({ id, created_at: new Date().toISOString() }).onConflict((c) => c.doNothing()).execute();
  return (await db.selectFrom('instance').select('id').executeTakeFirstOrThrow()).id;
}
