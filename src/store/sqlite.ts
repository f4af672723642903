// The embedded store: one SQLite file under state.dir, in WAL mode, fsync on every commit (but see
// commitSyncingOffLoop).
import { closeSync, constants, fsync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type CompiledQuery, Kysely, SqliteDialect } from 'kysely';
import { StoreError } from './errors.js';
import type { Tables } from './tables.js';

export const SQLITE_FILE = 'gatehouse.db';

/**
 * One statement committed at once, its fsync made on libuv's thread pool instead of on the event loop;
 * the promise settles when the commit is on disk. Null: it cannot be done so here now (inside a
 * transaction, closed), and the caller commits it the ordinary way.
 */
export type CommitSyncingOffLoop = (query: CompiledQuery) => Promise<void> | null;

export function openSqlite(stateDir: string): { db: Kysely<Tables>; file: string; commitsElsewhere: () => number | undefined; commitSyncingOffLoop: CommitSyncingOffLoop; closeWal: () => Promise<void> } {
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
  const { commitSyncingOffLoop, closeWal } = syncingOffLoop(sqlite, `${file}-wal`);
  return { db: new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) }), file, commitsElsewhere, commitSyncingOffLoop, closeWal };
}

/**
 * A commit at synchronous=NORMAL (in WAL mode: appended to the WAL, no fsync; durable against a crash
 * of the process at once) followed by an fsync of the WAL file through libuv's thread pool: as durable
 * as a FULL commit once the promise resolves (a FULL commit in WAL mode is the same append then an
 * fsync of the WAL; a checkpoint meanwhile syncs the WAL before it copies, and the database after), but
 * the event loop goes on meanwhile (a job's handover leaves while its record's fsync runs). Only this statement runs at NORMAL: the pragma is
 * set back before anything else can use the connection (better-sqlite3 is synchronous), so every
 * other write (revocations, logins) still commits at FULL. Inside a transaction (a Kysely one holds
 * the connection across awaits) this statement would join it: refused, the caller commits as usual.
 */
function syncingOffLoop(sqlite: Database.Database, walFile: string): { commitSyncingOffLoop: CommitSyncingOffLoop; closeWal: () => Promise<void> } {
  const normal = sqlite.prepare('PRAGMA synchronous = NORMAL');
  const full = sqlite.prepare('PRAGMA synchronous = FULL');
  const statements = new Map<string, Database.Statement>();
  // Opened once, not following a link (state.dir is the gateway's own 0700 folder; never trust a link
  // in it all the same). The WAL file stays while this connection is open, so the descriptor stays its file.
  let wal: number | undefined;
  // fsyncs queued on the thread pool: the descriptor is closed only after them (closed under one, it
  // fails EBADF, or its number, reused by the next open, fsyncs another file and says the WAL is synced).
  const syncing = new Set<Promise<void>>();
  const commitSyncingOffLoop: CommitSyncingOffLoop = (query) => {
    if (!sqlite.open || sqlite.inTransaction) return null;
    let statement = statements.get(query.sql);
    if (statement === undefined) {
      statement = sqlite.prepare(query.sql);
      if (statements.size < 16) statements.set(query.sql, statement);
    }
    normal.run();
    try {
      statement.run(query.parameters as unknown[]);
    } finally {
      full.run();
    }
    const synced = new Promise<void>((resolve, reject) => {
      try {
        wal ??= openSync(walFile, constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (err) {
        reject(err);
        return;
      }
      fsync(wal, (err) => (err === null ? resolve() : reject(err)));
    });
    syncing.add(synced);
    const settled = () => syncing.delete(synced);
    synced.then(settled, settled);
    return synced;
  };
  const closeWal = async (): Promise<void> => {
    await Promise.allSettled([...syncing]);
    const fd = wal;
    wal = undefined;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already gone: nothing to release
      }
    }
  };
  return { commitSyncingOffLoop, closeWal };
}
