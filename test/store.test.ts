import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrate, openStore } from '../src/store/index.js';

describe('the embedded store', () => {
  it('creates one SQLite file under the state folder, in WAL mode with full fsync', async () => {
    const stateDir = join(mkdtempSync(join(tmpdir(), 'gatehouse-store-')), 'var');
    const store = await openStore({ stateDir });
    try {
      expect(store.location).toBe(join(stateDir, 'gatehouse.db'));
      expect(existsSync(store.location)).toBe(true);
      const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store.db);
      expect(mode.rows[0]?.journal_mode).toBe('wal');
      const sync = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
      expect(sync.rows[0]?.synchronous).toBe(2); // FULL
      await expect(store.ping()).resolves.toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('runs each migration once and keeps its identity across restarts', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
    const first = await openStore({ stateDir });
    const id = first.instanceId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const again = await migrate(first.db);
    expect(again.results).toEqual([]); // nothing left to run
    await first.close();

    const second = await openStore({ stateDir });
    try {
      expect(second.instanceId).toBe(id);
      const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(second.db);
      expect(applied.rows.map((r) => r.name)).toEqual(['0001_instance', '0002_identity', '0003_jobs', '0004_oidc_binding', '0005_posix_user', '0006_job_posix_user', '0007_login_throttle', '0008_jobs_user_finished', '0009_gateways', '0010_audit_chains', '0011_slurm_jobs', '0012_jobs_cancelled_by', '0013_policy_versions', '0014_jobs_login', '0015_jobs_end_owed']);
    } finally {
      await second.close();
    }
  });

  it('stops with a clear error when the state folder cannot be used', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
    writeFileSync(join(parent, 'a-file'), 'not a folder');
    const stateDir = join(parent, 'a-file', 'var');
    await expect(openStore({ stateDir })).rejects.toThrow(`cannot open the store ${join(stateDir, 'gatehouse.db')} (state.dir): ENOTDIR`);
  });

  // A job's record is committed this way while its handover leaves (JobRecords.insert):
  // only that statement may run without the commit's own fsync, every other write stays FULL.
  describe('a commit with its fsync on the thread pool', () => {
    const row = (id: string) => ({ id, created_at: '2026-12-04T00:00:00.000Z' });

    it('is committed at once, for another connection too, and leaves the connection at FULL', async () => {
      const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
      const store = await openStore({ stateDir });
      const other = new Database(store.location, { readonly: true });
      try {
        const synced = store.commitSyncingOffLoop!(store.db.insertInto('instance').values(row('x')).compile());
        expect(synced).not.toBeNull();
        // Committed before the fsync resolves: the write itself was synchronous.
        expect(other.prepare("select id from instance where id = 'x'").get()).toEqual({ id: 'x' });
        await synced;
        const sync = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
        expect(sync.rows[0]?.synchronous).toBe(2); // FULL again for every other statement
      } finally {
        other.close();
        await store.close();
      }
    });

    it('leaves the connection at FULL when the statement fails, and throws as the insert would', async () => {
      const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
      const store = await openStore({ stateDir });
      try {
        const again = store.db.insertInto('instance').values({ id: store.instanceId, created_at: 'again' }).compile();
        expect(() => store.commitSyncingOffLoop!(again)).toThrow(/UNIQUE constraint failed/);
        const sync = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
        expect(sync.rows[0]?.synchronous).toBe(2);
      } finally {
        await store.close();
      }
    });

    // review34: the store closed right after such a commit (a gateway stopping while a submission's
    // record is on its way to disk) closed the WAL's descriptor under the queued fsync: it failed with
    // EBADF (the submission answered 503 though its record was committed), or fsync'd whatever file
    // reused the number and said the WAL was on disk. About one close in three did so here.
    it('is on disk before the store closes, however soon after it the store is closed', async () => {
      for (let i = 0; i < 30; i++) {
        const store = await openStore({ stateDir: mkdtempSync(join(tmpdir(), 'gatehouse-store-')) });
        const synced = store.commitSyncingOffLoop!(store.db.insertInto('instance').values(row(`closing-${i}`)).compile());
        const closing = store.close();
        await expect(synced).resolves.toBeUndefined();
        await closing;
      }
    });

    it('is refused inside a transaction, which the statement would otherwise join (and leave with its rollback)', async () => {
      const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
      const store = await openStore({ stateDir });
      try {
        const insert = store.db.insertInto('instance').values(row('inside')).compile();
        await expect(
          store.db.transaction().execute(async (trx) => {
            await trx.selectFrom('instance').select('id').execute();
            expect(store.commitSyncingOffLoop!(insert)).toBeNull();
            throw new Error('rolled back');
          }),
        ).rejects.toThrow('rolled back');
        expect(await store.db.selectFrom('instance').select('id').where('id', '=', 'inside').execute()).toEqual([]);
        // Outside it, the same statement is committed so.
        await store.commitSyncingOffLoop!(insert);
        expect(await store.db.selectFrom('instance').select('id').where('id', '=', 'inside').execute()).toEqual([{ id: 'inside' }]);
      } finally {
        await store.close();
      }
    });
  });
});
