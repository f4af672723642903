// The embedded store: one SQLite file under state.dir, in WAL mode, fsync on every commit.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { StoreError } from './errors.js';
import type { Tables } from './tables.js';

export const SQLITE_FILE = 'gatehouse.db';

export function openSqlite(stateDir: string): { db: Kysely<Tables>; file: string; commitsElsewhere: () => number | undefined } {
  const file = join(stateDir, SQLITE_FILE);
  let sqlite: Database.Database;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    sqlite = new Database(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new StoreError(`cannot open the store ${file} (state.dir): ${reason}`);
  }
  sqlite.pragma('journal_mode = WAL');
  // FULL: a commit is on disk when it returns; the audit trail will depend on that.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  // PRAGMA data_version moves whenever another connection (another gateway process over this file)
  // commits, never for this connection's own commits. Inside a transaction of ours it may not have
  // seen such a commit yet, and a closed database cannot say: both answer undefined ("cannot tell").
  const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
  const commitsElsewhere = (): number | undefined => {
    if (!sqlite.open || sqlite.inTransaction) return undefined;
    try {
      return dataVersion.get() as number;
    } catch {
      return undefined;
    }
  };
  return { db: new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) }), file, commitsElsewhere };
}
