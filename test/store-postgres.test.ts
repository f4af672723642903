// The store on a real PostgreSQL (test/support/postgres.ts): the same migrations as the embedded
// store, two gateways migrating one database at once, the password from its file and never shown,
// and clear errors for a wrong password or a database that does not answer.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/index.js';
import { type Postgres, startPostgres } from './support/postgres.js';
import { until } from './support/until.js';

let pg: Postgres;
const stateDir = () => mkdtempSync(join(tmpdir(), 'gatehouse-store-pg-'));

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);

afterAll(async () => {
  await pg?.stop();
});

describe('the store on PostgreSQL', () => {
  it('migrates a new database, answers pings, and shows its location without the password', async () => {
    const url = await pg.database();
    const store = await openStore({ stateDir: stateDir(), url, password: pg.password });
    try {
      expect(store.dialect).toBe('postgres');
      await store.ping();
      expect(store.location).toBe(url);
      expect(store.location).not.toContain(pg.password);
      const tables = (await store.db.introspection.getTables()).map((t) => t.name).sort();
      expect(tables).toEqual(expect.arrayContaining(['instance', 'signing_keys', 'token_families', 'refresh_tokens', 'client_certificates', 'jobs']));
      await store.db.insertInto('jobs').values({
        id: 'j1', seq: 1, user: 'ana', groups: '[]', auth_method: 'oidc', name: 'n', input: 'a', output: 'b', backend: 'bundled', backend_id: null, spec: '{}', spec_hash: 'h',
        cores: 1, memory_mb: 1, time_limit_s: 1, state: 'pending', held: 0, reason: null, error: null, status: null, core_seconds: 1234567.125, policy_version: 'v', created_at: '2026-12-02T00:00:00.000Z',
      } as never).execute();
      // Double precision, as in SQLite: usage is never rounded by the database.
      const row = await store.db.selectFrom('jobs').select('core_seconds').where('id', '=', 'j1').executeTakeFirstOrThrow();
      expect(row.core_seconds).toBe(1234567.125);
    } finally {
      await store.close();
    }
  });

  it('lets two gateways migrate the same database at once, and both see one instance', async () => {
    const url = await pg.database();
    const [a, b] = await Promise.all([openStore({ stateDir: stateDir(), url, password: pg.password }), openStore({ stateDir: stateDir(), url, password: pg.password })]);
    try {
      expect(a.instanceId).toBe(b.instanceId);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('refuses a wrong password with an error that does not contain it', async () => {
    const url = await pg.database();
    const err = await openStore({ stateDir: stateDir(), url, password: 'not-the-password-xyz' }).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/password authentication failed/);
    expect(err?.message).not.toContain('not-the-password-xyz');
  });

  it('fails its ping while the database is down, and answers again by itself once it is back', async () => {
    const url = await pg.database();
    const store = await openStore({ stateDir: stateDir(), url, password: pg.password });
    try {
      await store.ping();
      await pg.kill();
      await expect(store.ping()).rejects.toThrow();
      await pg.start();
      await until(() => store.ping().then(() => true, () => undefined), 30_000, 'the store answering again');
      expect((await store.db.selectFrom('instance').select('id').executeTakeFirstOrThrow()).id).toBe(store.instanceId);
    } finally {
      await store.close();
    }
  });
});
