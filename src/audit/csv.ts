// Events as CSV (RFC 4180: CRLF lines, a field with a comma, quote or line break in double quotes,
// quotes doubled) for auditors' spreadsheets. A cell that a spreadsheet would run as a formula
// (it starts with = + - @, a tab or a CR) gets a leading ' first: the trail holds what users typed
// (object names, reasons), and opening an export must not execute any of it. So CSV is for reading;
// JSONL keeps every field as hashed, for recomputing the chain.
import { canonicalJson } from './canonical.js';
import type { AuditEvent } from './event.js';

export const CSV_COLUMNS = ['id', 'time', 'user', 'groups', 'auth_method', 'ip', 'action', 'object', 'decision', 'reason', 'policy_version', 'request_id', 'details', 'prev_hash', 'hash'] as const;

export const CSV_HEADER = `${CSV_COLUMNS.join(',')}\r\n`;

/** One event as one CSV record, CRLF included. Null is an empty cell. */
export function csvRecord(e: AuditEvent): string {
  const cells = [
    String(e.id),
    e.time,
    e.actor.user,
    e.actor.groups.join(';'),
    e.actor.auth_method,
    e.actor.ip,
    e.action,
    e.object,
    e.decision,
    e.reason,
    e.policy_version,
    e.request_id,
    canonicalJson(e.details), // as stored and hashed
    e.prev_hash,
    e.hash,
  ];
  return `${cells.map(csvCell).join(',')}\r\n`;
}

export function csvCell(value: string | null): string {
  if (value === null) return '';
  const guarded = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(guarded) ? `"${guarded.replaceAll('"', '""')}"` : guarded;
}
