// Critical sections keyed by a name (a user's quota), exclusive across every gateway over the store.
//
// In this process a keyed queue lets one caller in at a time, so at most one connection per key waits
// on the database. Over PostgreSQL the section then runs under a transaction-scoped advisory lock:
// another replica asking for the same key waits until this transaction ends, and a replica that dies
// mid-section loses its connection, which ends the transaction and frees the lock at once. Advisory
// locks were chosen over SERIALIZABLE with retries because an admission also writes the audit trail,
// which cannot be rolled back and retried, and over row locks because a user may have no row yet.
// The embedded SQLite store belongs to one process, so the queue alone is exclusive there.
//
// The lock is only as good as its session: if that session dies mid-section (a network cut, a
// failover, an administrator) PostgreSQL frees the lock while this process goes on deciding. So the
// section's own writes (sectionDb) go through the locking transaction: they commit only if the lock
// was held to the end, and another replica let in early never sees a decision made without it.
import { AsyncLocalStorage } from 'node:async_hooks';
import { type Kysely, sql } from 'kysely';
import type { Store } from './store.js';
import type { Tables } from './tables.js';

export interface Exclusive {
  /** Runs fn alone among all sections of `key`, in every gateway over the store. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/** Distinct from other advisory locks of the gateway (signing keys use the one-argument form). */
const LOCK_CLASS = 0x47480001;

/**
 * Sections holding a database connection at once, at most: each keeps one connection of the pool
 * idle while the section's own statements need others, so they are capped below the pool's size.
 */
const MAX_HELD = 4;

/**
 * How long a section's transaction may sit idle before PostgreSQL ends its session, and so frees the
 * lock: a replica frozen mid-section (a stopped process, a host cut off without a reset) would
 * otherwise keep that user's admissions wedged on every replica until TCP gives up, hours later.
 * A section normally idles for milliseconds, and others wait at most the statement timeout (10 s)
 * for its lock anyway; a section cut by this commits nothing (see sectionDb), its request gets 503.
 */
const IDLE_SECTION_MS = 15_000;

/** The section this code runs in, if any: its store and its locking transaction (null once it ended). */
const current = new AsyncLocalStorage<{ store: Store; db: Kysely<Tables> | null }>();

/**
 * Where a write about `store` made inside a section must go: the transaction holding the section's
 * lock (so it lands only if the lock held throughout), else the store itself.
 */
export function sectionDb(store: Store): Kysely<Tables> {
  const s = current.getStore();
  return s !== undefined && s.store === store && s.db !== null ? s.db : store.db;
}

export function exclusive(store: Store): Exclusive {
  const tails = new Map<string, Promise<void>>();
  const held = new Semaphore(MAX_HELD);
  const locked =
    store.dialect === 'postgres'
      ? async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
          await held.take();
          try {
            return await store.db.transaction().execute(async (trx) => {
              await sql`select set_config('idle_in_transaction_session_timeout', ${String(IDLE_SECTION_MS)}, true), pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${key}))`.execute(trx);
              const section = { store, db: trx as Kysely<Tables> | null };
              try {
                return await current.run(section, fn);
              } finally {
                // Work the section started and left running (a handover) writes outside it from now on.
                section.db = null;
              }
            });
          } finally {
            held.give();
          }
        }
      : <T>(_key: string, fn: () => Promise<T>): Promise<T> => fn();
  return {
    run<T>(key: string, fn: () => Promise<T>): Promise<T> {
      const before = tails.get(key) ?? Promise.resolve();
      const result = before.then(() => locked(key, fn));
      const tail = result.then(
        () => undefined,
        () => undefined,
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
  };
}

class Semaphore {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {}

  async take(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free += 1;
  }
}
