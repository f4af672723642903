// The hash chain: each event's `hash` is the SHA-256 (hex) of the RFC 8785 canonical JSON of the
// event without its `hash` field, `prev_hash` (the previous event's hash) and `id` included. So an
// edit changes the hash, a move changes the id, and a deletion or insertion breaks the link.
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import type { AuditDecision, AuditEvent } from './event.js';
import type { AuditRow } from './schema.js';

/** The prev_hash of the very first event. */
export const GENESIS_HASH = '0'.repeat(64);

const str = (s: string | null): string => (s === null ? 'null' : JSON.stringify(s));

/**
 * The canonical encoding of a stored row, written out in JCS key order by hand: verify runs it on
 * every event of the trail. `groups` and `details` are stored already canonical, and are used as
 * stored, so a re-encoded column also breaks the hash. Equal to canonicalJson(eventOf(row) - hash).
 */
export function canonicalRow(r: Omit<AuditRow, 'hash'>): string {
  return (
    `{"action":${str(r.action)},"actor":{"auth_method":${str(r.auth_method)},"groups":${r.groups},"ip":${str(r.ip)},"user":${str(r.user)}}` +
    `,"decision":${str(r.decision)},"details":${r.details},"id":${r.id},"object":${str(r.object)},"policy_version":${str(r.policy_version)}` +
    `,"prev_hash":${str(r.prev_hash)},"reason":${str(r.reason)},"request_id":${str(r.request_id)},"time":${str(new Date(r.time).toISOString())}}`
  );
}

export function hashRow(r: Omit<AuditRow, 'hash'>): string {
  return createHash('sha256').update(canonicalRow(r)).digest('hex');
}

/** The hash of an event as JSON (an archive line, an export): the reference definition. */
export function hashEvent(event: Omit<AuditEvent, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...rest } = event;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** A stored row as the public contract names the event. */
export function eventOf(r: AuditRow): AuditEvent {
  return {
    id: r.id,
    time: new Date(r.time).toISOString(),
    actor: { user: r.user, groups: JSON.parse(r.groups) as string[], auth_method: r.auth_method, ip: r.ip },
    action: r.action,
    object: r.object,
    decision: r.decision as AuditDecision,
    reason: r.reason,
    policy_version: r.policy_version,
    request_id: r.request_id,
    details: JSON.parse(r.details) as Record<string, unknown>,
    prev_hash: r.prev_hash,
    hash: r.hash,
  };
}
