// Opens the store, brings its schema up to date and answers readiness pings.
import { randomUUID } from 'node:crypto';
import { type Kysely, type MigrationResultSet, Migrator, sql } from 'kysely';
import { StoreError } from './errors.js';
import { migrations } from './migrations.js';
import { openSqlite } from './sqlite.js';
import type { Tables } from './tables.js';

export interface Store {
  db: Kysely<Tables>;
  /** Where the data lives, for people: a file path or a URL without credentials. */
  location: string;
  instanceId: string;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openStore(options: { stateDir: string }): Promise<Store> {
  const { db, file } = openSqlite(options.stateDir);
  try {
    await migrate(db);
    const instanceId = await ensureInstance(db);
    return {
      db,
      location: file,
      instanceId,
      ping: async () => {
        await sql`select 1`.execute(db);
      },
      close: () => db.destroy(),
    };
  } catch (err) {
    await db.destroy();
    throw err;
  }
}

export async function migrate(db: Kysely<Tables>): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
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
