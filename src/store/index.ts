// src/store's face: one schema, one migration set; SQLite embedded now, PostgreSQL to follow.
export { StoreError } from './errors.js';
export { migrate, openStore, type Store } from './store.js';
export type { Tables } from './tables.js';
