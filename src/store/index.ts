// src/store's face: one schema, one migration set; SQLite embedded now, PostgreSQL to follow.
export { StoreError } from './errors.js';
export { type Exclusive, exclusive, sectionDb } from './exclusive.js';
export { type ChainEntry, type GatewayEntry, type GatewayRegistry, RegistryError, registerGateway } from './gateways.js';
export { type Leadership, type LeadershipLog, type LeadershipOptions, leadershipKey, openLeadership } from './leadership.js';
export { migrate, openStore, type Store } from './store.js';
export type { Tables } from './tables.js';
