// The hash chain: each event's `hash` is the SHA-256 (hex) of the RFC 8785 canonical JSON of the
// event without its `hash` field, `prev_hash` (the previous event's hash) and `id` included. So an
// edit changes the hash, a move changes the id, and a deletion or insertion breaks the link.
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.js';
import type { AuditDecision, AuditEvent } from './event.js';
import type { AuditRow } from './schema.js';

/** The prev_hash of the very first event. */
export const GENESIS_HASH = '0'.repeat(64);

const str = (s: string | null): string => (s === null ? 'null' : JSON.stringify(s));

/**
 * An event time (ms) as the event carries it (ISO 8601): the last one remembered, as the events of
 * one group commit mostly share their millisecond (a Date and its formatting cost more than the
 * hash of the row). `time` is a whole number of ms: the trail stores integers.
 */
let isoMs = Number.NaN;
let isoText = '';
export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

/** SHA-256 (hex) of a text: crypto.hash (Node 20.12+) where it exists, a Hash object otherwise. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
export const sha256Hex: (text: string) => string = oneShot ? (text) => oneShot('sha256', text, 'hex') : (text) => createHash('sha256').update(text).digest('hex');

/** A stored row's content: what the gateway's thread knows before the writer numbers and chains it. */
export type RowContent = Omit<AuditRow, 'id' | 'prev_hash' | 'hash'>;

/**
 * The canonical encoding (below) in three parts, around the two values only the writer thread
 * knows: `beforeId + id + beforePrev + JSON(prev_hash) + afterPrev`. The gateway's thread makes the
 * parts with the row (pendingRowOf), so the writer thread, the busier of the two, only joins and
 * hashes them; verify joins the same parts, so the two cannot drift apart.
 */
export function beforeId(r: RowContent): string {
  return `{"action":${str(r.action)},"actor":{"auth_method":${str(r.auth_method)},"groups":${r.groups},"ip":${str(r.ip)},"user":${str(r.user)}},"decision":${str(r.decision)},"details":${r.details},"id":`;
}
export function beforePrev(r: RowContent): string {
  return `,"object":${str(r.object)},"policy_version":${str(r.policy_version)},"prev_hash":`;
}
export function afterPrev(r: RowContent): string {
  return `,"reason":${str(r.reason)},"request_id":${str(r.request_id)},"time":${str(isoTime(r.time))}}`;
}

/** The hash of the event whose parts are given, numbered `id`, after the event hashed `prev`. */
export function hashParts(beforeIdPart: string, id: number, beforePrevPart: string, prev: string, afterPrevPart: string): string {
  return sha256Hex(`${beforeIdPart}${id}${beforePrevPart}${str(prev)}${afterPrevPart}`);
}

/**
 * The canonical encoding of a stored row, written out in JCS key order by hand: verify runs it on
 * every event of the trail. `groups` and `details` are stored already canonical, and are used as
 * stored, so a re-encoded column also breaks the hash. Equal to canonicalJson(eventOf(row) - hash).
 */
export function canonicalRow(r: Omit<AuditRow, 'hash'>): string {
  return `${beforeId(r)}${r.id}${beforePrev(r)}${str(r.prev_hash)}${afterPrev(r)}`;
}

export function hashRow(r: Omit<AuditRow, 'hash'>): string {
  return sha256Hex(canonicalRow(r));
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
