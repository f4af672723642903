// The one switch that runs a suite's store on PostgreSQL: vitest's `postgres` project (vitest.config.ts)
// starts one server for the run (test/support/postgres-setup.ts) and sets GATEHOUSE_TEST_STORE=postgres;
// then every store a test opens through these helpers is a fresh database of that server, and every
// gateway a test configures through storeConfig() is pointed at one. In the `sqlite` project they give
// the embedded store, as before.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { type Config, loadConfig, storePassword } from '../../src/config/index.js';
import { openStore, type Store } from '../../src/store/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: { port: number; passwordFile: string; bin: string } | null;
  }
}

let databases = 0;

export function onPostgres(): boolean {
  return process.env.GATEHOUSE_TEST_STORE === 'postgres';
}

/** A fresh database's URL and password on the run's server; null in the sqlite project. */
export function testDatabase(): { url: string; password: string; passwordFile: string } | null {
  if (!onPostgres()) return null;
  const server = inject('postgres');
  if (!server) throw new Error('GATEHOUSE_TEST_STORE=postgres but no PostgreSQL was started (run through the postgres project)');
  const password = readFileSync(server.passwordFile, 'utf8');
  const name = `t${process.pid}_${Date.now().toString(36)}_${++databases}`;
  execFileSync(join(server.bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(server.port), '-U', 'gatehouse', name], { env: { ...process.env, PGPASSWORD: password } });
  return { url: `postgres://gatehouse@127.0.0.1:${server.port}/${name}`, password, passwordFile: server.passwordFile };
}

/** openStore for a test: the embedded store in stateDir, or a fresh PostgreSQL database. */
export async function openTestStore(stateDir: string): Promise<Store> {
  const db = testDatabase();
  return openStore(db ? { stateDir, url: db.url, password: db.password } : { stateDir });
}

/** The `store` section of a gateway's configuration for a test: empty, or a fresh PostgreSQL database. */
export function storeConfig(): { store?: { url: string; password_file: string } } {
  const db = testDatabase();
  return db ? { store: { url: db.url, password_file: db.passwordFile } } : {};
}

/** The store a gateway with this configuration file uses, opened as the gateway opens it (src/gateway/start.ts). */
export function openConfiguredStore(configFile: string): Promise<Store> {
  return openStoreOf(loadConfig({ path: configFile, env: {} }).config);
}

/** The store of a loaded configuration: its state.dir's embedded store, or its store.url with store.password_file. */
export function openStoreOf(config: Config): Promise<Store> {
  const password = storePassword(config);
  return openStore({ stateDir: config.state.dir, url: config.store.url, ...(password !== undefined ? { password } : {}) });
}
