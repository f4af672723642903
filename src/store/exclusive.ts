// Critical sections keyed by a name (a user's quota), exclusive across every gateway over the store.
//
// In this process a keyed queue lets one caller in at a time, so at most one connection per key waits
// on the database. Over PostgreSQL the section then runs under a transaction-scoped advisory lock:
// another replica asking for the same key waits until this transaction ends, and a replica that dies
// mid-section loses its connection, which ends the transaction and frees the lock at once. Advisory
// locks were chosen over SERIALIZABLE with retries because an admission also writes the audit trail,
// which cannot be rolled back and retried, and over row locks because a user may have no row yet.
// The embedded SQLite store belongs to one process, so the queue alone is exclusive there.
import { sql } from 'kysely';
import type { Store } from './store.js';

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

export function exclusive(store: Store): Exclusive {
  const tails = new Map<string, Promise<void>>();
  const held = new Semaphore(MAX_HELD);
  const locked =
    store.dialect === 'postgres'
      ? async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
          await held.take();
          try {
            return await store.db.transaction().execute(async (trx) => {
              await sql`select pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${key}))`.execute(trx);
              return fn();
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
