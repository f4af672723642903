// src/audit's face: `record(event)` through an AuditRecorder. The hash-chained store, its query and
// verify arrive with the audit issue; every room already emits through this door.
export type { AuditActor, AuditDecision, AuditEvent, AuditInput, AuditRecorder } from './event.js';
export { type AuditLog, logRecorder } from './recorder.js';
export { AuditSecretError, assertNoSecrets } from './secrets.js';
export { actorOf, recordOrFail, SYSTEM_ACTOR } from './record.js';
