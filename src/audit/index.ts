// src/audit's face: `record(event)` through an AuditRecorder (the AuditTrail), `query(filter)`,
// export, verify and retention of the hash-chained trail; the closed list of audit actions and the
// schema of what a room may record.
export type { AuditEvent, AuditRecorder } from './event.js';
export { AUDIT_ACTION_NAMES, AUDIT_ACTIONS, type AuditAction, isAuditAction } from './actions.js';
export { type AuditActor, type AuditDecision, type AuditInput, AuditInputError, AuditInputSchema, assertAuditInput } from './input.js';
export { redactSecrets, secretKind } from './secrets.js';
export { actorOf, recordOrFail, SYSTEM_ACTOR } from './record.js';
export { AuditOutbox, type OutboxLog, type OutboxOptions } from './outbox.js';
export { type DecisionActor, type DecisionEntry, type DecisionOrigin, type RecordedDecision, recordDecision } from './record-decision.js';
export { AuditTrail, AuditUnavailableError, type TrailHealth, type TrailOptions } from './trail.js';
export { type AuditSigningKey, loadAuditKey, publicKeyOfJwk, readAuditPublicKeys, rotateAuditKey } from './signing-key.js';
export { type VerifyOptions, type VerifyProblem, type VerifyReport, verifyTrail } from './verify.js';
export { TrailTamperedError } from './writer.js';
export { readWitness, witnessFileOf } from './witness.js';
export { type ArchiveReport, verifyArchive } from './archive-verify.js';
export type { ArchiveResult } from './retention.js';
export { openAuditDb } from './schema.js';
export type { AuditPeers, Peer } from './across.js';
export { installAuditRoutes } from './routes.js';
export { type ChainPosition, eventWithPosition, jobEvents, lastCheckpoint } from './lookup.js';
export { admissionOnTrail, type TrailAdmission, UNENDED_WINDOW_MS, unendedSubmissions } from './unended.js';
