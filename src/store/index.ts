// src/store's face: one schema, one migration set; SQLite embedded now, PostgreSQL to follow.
export { migrate, openStore, type Store, StoreError } from './store.js';
export type { Tables } from './tables.js';
