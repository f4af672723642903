// The postgres project's global set-up: one PostgreSQL server for the whole run, its port and password
// file handed to the tests (test-store.ts makes a database per store from it), stopped at the end.
import type { TestProject } from 'vitest/node';
import { postgresBin, startPostgres } from './postgres.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pg = await startPostgres();
  project.provide('postgres', { port: pg.port, passwordFile: pg.passwordFile, bin: postgresBin() as string });
  return () => pg.stop();
}
