// What an auditor asks the trail for, checked once at the edge: every bad value is a 400 that
// names its field, so a typo never silently widens or narrows what an auditor sees.
import { GatehouseError } from '../wire/index.js';
import type { AuditDecision } from './event.js';

export interface AuditFilter {
  user?: string;
  /** Events whose actor had this group at the time. */
  group?: string;
  /** Exact, prefix (ends in `.`, `:` or `/`) or glob (has `*` or `?`): see matchKind. */
  action?: string;
  object?: string;
  decision?: AuditDecision;
  /** ms since the epoch, inclusive. */
  since?: number;
  /** ms since the epoch, exclusive. */
  until?: number;
  request_id?: string;
  limit: number;
  /** Opaque: where the previous page ended. */
  cursor?: string;
}

export const LIMIT_DEFAULT = 100;
export const LIMIT_MAX = 1000;
/** Longer than any user, group, object or request id we issue; keeps SQL parameters bounded. */
const TEXT_MAX = 512;

export const FILTER_FIELDS = ['user', 'group', 'action', 'object', 'decision', 'since', 'until', 'request_id', 'limit', 'cursor'] as const;
const DECISIONS: readonly AuditDecision[] = ['allow', 'deny', 'error'];

const invalid = (field: string, message: string) => new GatehouseError('invalid_request', `${field}: ${message}`, { field: `query.${field}` });

/** Turns the querystring (strings as given) into a filter; `now` resolves relative ages. */
export function parseFilter(query: Record<string, string | undefined>, now: number): AuditFilter {
  for (const key of Object.keys(query)) {
    if (query[key] !== undefined && !(FILTER_FIELDS as readonly string[]).includes(key)) throw invalid(key, `not a filter (filters: ${FILTER_FIELDS.join(', ')})`);
  }
  const filter: AuditFilter = { limit: LIMIT_DEFAULT };
  for (const field of ['user', 'group', 'action', 'object', 'request_id'] as const) {
    const value = query[field];
    if (value !== undefined) filter[field] = text(field, value);
  }
  if (query.decision !== undefined) {
    if (!(DECISIONS as readonly string[]).includes(query.decision)) throw invalid('decision', `"${query.decision}" is not allow, deny or error`);
    filter.decision = query.decision as AuditDecision;
  }
  if (query.since !== undefined) filter.since = parseTime('since', query.since, now);
  if (query.until !== undefined) filter.until = parseTime('until', query.until, now);
  if (filter.since !== undefined && filter.until !== undefined && filter.since >= filter.until) {
    throw invalid('since', `${new Date(filter.since).toISOString()} is not before until (${new Date(filter.until).toISOString()})`);
  }
  if (query.limit !== undefined) {
    const n = /^[0-9]{1,7}$/.test(query.limit) ? Number(query.limit) : NaN;
    if (!(n >= 1 && n <= LIMIT_MAX)) throw invalid('limit', `"${query.limit}" is not a whole number from 1 to ${LIMIT_MAX}`);
    filter.limit = n;
  }
  if (query.cursor !== undefined) {
    decodeCursor(query.cursor); // throws when it is not one of ours
    filter.cursor = query.cursor;
  }
  return filter;
}

function text(field: string, value: string): string {
  if (value === '') throw invalid(field, 'empty; leave the filter out to match every value');
  if (value.length > TEXT_MAX) throw invalid(field, `longer than ${TEXT_MAX} characters`);
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalid(field, 'contains a control character');
  return value;
}

const AGE_UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const AGE = /^([0-9]{1,9})([smhd])$/;
// A date, or a date and time with its zone: a time without one would mean the server's zone.
const ISO = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?$/;

/** An ISO 8601 date or time (UTC midnight for a bare date), or an age such as 15m (now minus it). */
export function parseTime(field: string, value: string, now: number): number {
  const age = AGE.exec(value);
  if (age) return now - Number(age[1]) * AGE_UNIT_MS[age[2]!]!;
  const m = ISO.exec(value);
  if (!m) throw invalid(field, `"${value}" is neither an ISO 8601 time (2024-05-01, 2024-05-01T09:30:00Z) nor an age (30s, 15m, 24h, 7d)`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  if (h !== undefined && zone === undefined) throw invalid(field, `"${value}" has no time zone: add Z (UTC) or an offset such as +02:00`);
  const ms = Number((frac ?? '').padEnd(3, '0').slice(0, 3));
  // setUTC* (not Date.UTC, which reads year 0050 as 1950) rolls 2024-02-30 over into March:
  // reading the fields back finds a field out of range, a typo rather than a date.
  const back = new Date(0);
  back.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  back.setUTCHours(Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), ms);
  const local = back.getTime();
  const fieldsHold =
    back.getUTCFullYear() === Number(y) && back.getUTCMonth() === Number(mo) - 1 && back.getUTCDate() === Number(d) && back.getUTCHours() === Number(h ?? 0) && back.getUTCMinutes() === Number(mi ?? 0) && back.getUTCSeconds() === Number(s ?? 0);
  if (!fieldsHold) throw invalid(field, `"${value}" is not a real date and time`);
  return local - offsetMs(zone);
}

function offsetMs(zone: string | undefined): number {
  if (zone === undefined || zone === 'Z' || zone === 'z') return 0;
  const digits = zone.slice(1).replace(':', '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2));
  return (zone[0] === '-' ? -1 : 1) * minutes * 60_000;
}

/** The cursor is base64url of "time.id" of the last event of a page; opaque to clients. */
export function encodeCursor(time: number, id: number): string {
  return Buffer.from(`${time}.${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { time: number; id: number } {
  const m = /^(-?[0-9]{1,16})\.([0-9]{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const time = Number(m?.[1]);
  const id = Number(m?.[2]);
  if (!m || !Number.isSafeInteger(time) || !Number.isSafeInteger(id) || encodeCursor(time, id) !== cursor) {
    throw invalid('cursor', 'not a cursor this gateway gave out (pass next_cursor from the previous page as is)');
  }
  return { time, id };
}
