// Reading the trail: a page of events newest first (the auditor's question), and every matching
// event oldest first in chain order (an export). Both read in short statements, never one long
// read transaction, so the writer's checkpoints and retention are never held back.
//
// Matching rule for `action` and `object` (README "Audit"): a value with `*` or `?` is a glob
// (SQLite GLOB: case-sensitive, `[abc]` is a class); one ending in `.`, `:` or `/` is a prefix;
// anything else is exact. So `action=job.` is every job event, `action=auth.login` only logins
// (not auth.login_failed), `object=dataset:` every dataset, `object=dataset:scratch/*` a pattern.
// Prefixes and globs become a range on their literal part too, so they still use the index.
import type Database from 'better-sqlite3';
import { eventOf } from './chain.js';
import type { AuditEvent } from './event.js';
import { type AuditFilter, decodeCursor, encodeCursor } from './filter.js';
import type { AuditRow } from './schema.js';

export { type AuditFilter, parseFilter } from './filter.js';

export interface AuditPage {
  events: AuditEvent[];
  next_cursor: string | null;
}

/** An export takes every match: the page size and cursor of a query do not apply. */
export type ExportFilter = Omit<AuditFilter, 'limit' | 'cursor'>;

export type MatchKind = 'exact' | 'prefix' | 'glob';

export function matchKind(value: string): MatchKind {
  if (/[*?]/.test(value)) return 'glob';
  if (/[.:/]$/.test(value)) return 'prefix';
  return 'exact';
}

/** One page, newest first; next_cursor continues strictly after its last event. */
export function queryEvents(db: Database.Database, filter: AuditFilter): AuditPage {
  const { sql, params } = pageQuery(filter);
  const rows = statement(db, sql).all(...params) as AuditRow[];
  // One row more than asked tells whether a next page exists, so the last page has no cursor.
  const more = rows.length > filter.limit;
  if (more) rows.pop();
  const last = rows.at(-1);
  return { events: rows.map(eventOf), next_cursor: more && last ? encodeCursor(last.time, last.id) : null };
}

/** The SQL of one page (exported for EXPLAIN QUERY PLAN in tests): limit + 1 rows. */
export function pageQuery(filter: AuditFilter): { sql: string; params: (string | number)[] } {
  const after = filter.cursor !== undefined ? decodeCursor(filter.cursor) : undefined;
  const lookup = lookupOf(filter);
  if (!lookup) {
    const where = whereOf(filter, true);
    // A row value, which SQLite can use as an index range on (time, rowid) rather than an OR.
    if (after) {
      where.terms.push('(time, id) < (?, ?)');
      where.params.push(after.time, after.id);
    }
    return { sql: `select * from audit_events${clause(where.terms)} order by time desc, id desc limit ?`, params: [...where.params, filter.limit + 1] };
  }
  // The lookup table up to the watermark, newest first through its (key, time, id) order, and the
  // tail after it by the primary key; merged by SQLite's ordered UNION ALL.
  const indexed = lookupTerms(filter, lookup, 'k');
  // A lookup row that does not match its event's own columns finds nothing.
  indexed.terms.push(`+e.${lookup.key} = k.${lookup.key}`, '+e.time = k.time');
  const checked = whereOf(filter, false, 'e.');
  if (after) {
    indexed.terms.push('(k.time, k.id) < (?, ?)');
    indexed.params.push(after.time, after.id);
  }
  const tail = tailTerms(filter);
  if (after) {
    tail.terms.push('(+time, +id) < (?, ?)');
    tail.params.push(after.time, after.id);
  }
  // The first arm's id and time are the lookup row's (equal to the event's, checked), so SQLite sees
  // that the table's order already is the page's order and needs no sort; the tail is NOT INDEXED,
  // so it is read by the primary key from the watermark on, never through the time index.
  const sql =
    `select k.id as id, k.time as time, ${OTHER_COLUMNS.map((c) => `e.${c} as ${c}`).join(', ')} from ${lookup.table} k join audit_events e on e.id = k.id` +
    ` where ${[...indexed.terms, ...checked.terms].join(' and ')} and k.id <= ${WATERMARK}` +
    ` union all select id, time, ${OTHER_COLUMNS.join(', ')} from audit_events not indexed where id > ${WATERMARK}${tail.terms.map((t) => ` and ${t}`).join('')}` +
    ' order by time desc, id desc limit ?';
  return { sql, params: [...indexed.params, ...checked.params, ...tail.params, filter.limit + 1] };
}

const WATERMARK = '(select upto from audit_indexed where one = 1)';

/**
 * The filter's checks on the un-indexed tail; with an `until`, also that the tail begins before it
 * (audit_indexed.tail_from, kept by the writer): a constant SQLite tests once, so a query of an
 * earlier day does not scan the tail at all.
 */
function tailTerms(f: ExportFilter): Where {
  const w = whereOf(f, false);
  if (f.until !== undefined) {
    w.terms.push('(select tail_from from audit_indexed where one = 1) < ?');
    w.params.push(f.until);
  }
  return w;
}
/** audit_events' columns after id and time, in their order. */
const OTHER_COLUMNS = ['user', 'groups', 'auth_method', 'ip', 'action', 'object', 'decision', 'reason', 'policy_version', 'request_id', 'details', 'prev_hash', 'hash'] as const;

interface Lookup {
  table: 'audit_by_user' | 'audit_by_object';
  key: 'user' | 'object';
}

/**
 * The lookup table (lookup-index.ts) that narrows this filter: the user's when it names a user,
 * else the object's when its object is exact or has a literal prefix; null when neither does.
 */
function lookupOf(f: ExportFilter): Lookup | null {
  if (f.user !== undefined) return { table: 'audit_by_user', key: 'user' };
  if (f.object !== undefined && !(matchKind(f.object) === 'glob' && /^[*?[]/.test(f.object))) return { table: 'audit_by_object', key: 'object' };
  return null;
}

/** The lookup table's own terms on alias `k`: its key and the time range. */
function lookupTerms(f: ExportFilter, lookup: Lookup, k: string): Where {
  const w: Where = { terms: [], params: [], narrow: true };
  const add: Add = (term, _narrows, ...params) => {
    w.terms.push(term);
    w.params.push(...params);
  };
  if (lookup.key === 'user') add(`${k}.user = ?`, true, f.user!);
  else matchTerms(`${k}.object`, f.object!, add);
  if (f.since !== undefined) add(`${k}.time >= ?`, true, f.since);
  if (f.until !== undefined) add(`${k}.time < ?`, true, f.until);
  return w;
}

export const EXPORT_PAGE = 1000;
/** Up to this many matches, an export sorts them by id through the filter's index. */
const FEW_MATCHES = 10_000;

/**
 * Every matching event, oldest first in chain order, `pageSize` at a time. Stops at the newest
 * event when the export began, so a busy trail does not keep it going.
 */
export function* exportEvents(db: Database.Database, filter: ExportFilter, pageSize = EXPORT_PAGE): Generator<AuditEvent[]> {
  const anchorOf = () => (statement(db, 'select event_id from audit_anchor').get() as { event_id: number } | undefined)?.event_id ?? 0;
  const startAnchor = anchorOf(); // before anything else: what retention archives from here on is caught below
  const newest = (statement(db, 'select max(id) as id from audit_events').get() as { id: number | null }).id;
  if (newest === null) return;
  const plan = exportPlan(db, filter, newest);
  let after = plan.from;
  for (;;) {
    const rows = statement(db, plan.sql).all(...plan.params(after, plan.to, pageSize)) as AuditRow[];
    // Retention may archive events between two pages (or before this one was read): an export that
    // silently lost them would look whole.
    const anchor = anchorOf();
    if (anchor !== startAnchor && anchor > after) throw new Error(`events up to #${anchor} were archived by retention while this export ran (it had reached #${after}); run it again, or read the archive`);
    if (rows.length === 0) return;
    yield rows.map(eventOf);
    if (rows.length < pageSize) return;
    after = rows.at(-1)!.id;
  }
}

export interface ExportPlan {
  sql: string;
  /** The statement's parameters for the page after event `after`, up to event `to`. */
  params: (after: number, to: number, pageSize: number) => (string | number)[];
  from: number;
  to: number;
}

/**
 * Through the filter's index (or lookup table), each page sorts what is left of the matches by id:
 * cheap for a few, quadratic for millions. So beyond FEW_MATCHES the export walks the chain by id
 * instead, checking each row (its columns as `+col`, which keeps SQLite off their indexes), from
 * the first event of `since` to the last of `until`: linear in the span walked.
 */
export function exportPlan(db: Database.Database, filter: ExportFilter, newest: number): ExportPlan {
  const pageSql = (terms: string[]) => `select * from audit_events where id > ? and id <= ?${terms.map((t) => ` and ${t}`).join('')} order by id limit ?`;
  const lookup = lookupOf(filter);
  const walk = whereOf(filter, false);
  if (lookup) {
    const tail = tailTerms(filter);
    const keyed = lookupTerms(filter, lookup, 'k');
    const probe =
      `select count(*) as n from (select 1 from ${lookup.table} k where ${keyed.terms.join(' and ')}` +
      ` union all select 1 from audit_events not indexed where id > ${WATERMARK}${tail.terms.map((t) => ` and ${t}`).join('')} limit ${FEW_MATCHES + 1})`;
    const { n } = statement(db, probe).get(...keyed.params, ...tail.params) as { n: number };
    if (n <= FEW_MATCHES) {
      // The ids the lookup table names up to the watermark, and the tail after it, both checked row by row.
      const checks = (w: Where) => w.terms.map((t) => ` and ${t}`).join('');
      const sql =
        `select * from audit_events where id in (select k.id from ${lookup.table} k where ${keyed.terms.join(' and ')}) and id > ? and id <= ? and id <= ${WATERMARK}${checks(walk)}` +
        ` union all select * from audit_events not indexed where id > ? and id <= ? and id > ${WATERMARK}${checks(tail)} order by id limit ?`;
      return { sql, params: (after, to, size) => [...keyed.params, after, to, ...walk.params, after, to, ...tail.params, size], from: 0, to: newest };
    }
  } else {
    const indexed = whereOf(filter, true);
    if (indexed.narrow) {
      const probe = `select count(*) as n from (select 1 from audit_events${clause(indexed.terms)} limit ${FEW_MATCHES + 1})`;
      const { n } = statement(db, probe).get(...indexed.params) as { n: number };
      if (n <= FEW_MATCHES) return { sql: pageSql(indexed.terms), params: (after, to, size) => [after, to, ...indexed.params, size], from: 0, to: newest };
    }
  }
  let from = 0;
  let to = newest;
  // Times are nearly, not strictly, in chain order (clocks step): take the extreme ids of the span.
  if (filter.since !== undefined) {
    const first = statement(db, 'select min(id) as id from audit_events indexed by audit_events_time where time >= ?').get(filter.since) as { id: number | null };
    from = first.id === null ? newest : first.id - 1;
  }
  if (filter.until !== undefined) {
    const last = statement(db, 'select max(id) as id from audit_events indexed by audit_events_time where time < ?').get(filter.until) as { id: number | null };
    to = Math.min(newest, last.id ?? 0);
  }
  return { sql: pageSql(walk.terms), params: (after, to2, size) => [after, to2, ...walk.params, size], from, to };
}

interface Where {
  terms: string[];
  params: (string | number)[];
  /** Some term can narrow the rows through an index (a range or an equality on its column). */
  narrow: boolean;
}

/**
 * The filter as SQL terms on audit_events (its columns prefixed with `table`, e.g. "e.");
 * `indexable` false writes `+col` so SQLite checks rows instead.
 */
function whereOf(f: ExportFilter, indexable: boolean, table = ''): Where {
  const w: Where = { terms: [], params: [], narrow: false };
  const col = (name: string) => (indexable ? `${table}${name}` : `+${table}${name}`);
  const add = (term: string, narrows: boolean, ...params: (string | number)[]) => {
    w.terms.push(term);
    w.params.push(...params);
    w.narrow ||= narrows;
  };
  if (f.user !== undefined) add(`${col('user')} = ?`, true, f.user);
  if (f.group !== undefined) add(`exists (select 1 from json_each(${table}groups) where value = ?)`, false, f.group);
  if (f.action !== undefined) matchTerms(col('action'), f.action, add);
  if (f.object !== undefined) matchTerms(col('object'), f.object, add);
  if (f.decision !== undefined) add(`${col('decision')} = ?`, false, f.decision);
  if (f.since !== undefined) add(`${col('time')} >= ?`, true, f.since);
  if (f.until !== undefined) add(`${col('time')} < ?`, true, f.until);
  if (f.request_id !== undefined) add(`${col('request_id')} = ?`, true, f.request_id);
  return w;
}

type Add = (term: string, narrows: boolean, ...params: (string | number)[]) => void;

function matchTerms(column: string, value: string, add: Add): void {
  const kind = matchKind(value);
  if (kind === 'exact') {
    add(`${column} = ?`, true, value);
    return;
  }
  const literal = kind === 'glob' ? value.slice(0, value.search(/[*?[]/)) : value;
  const upper = literal === '' ? null : successor(literal);
  if (literal !== '') add(`${column} >= ?`, true, literal);
  if (upper !== null) add(`${column} < ?`, true, upper);
  // The range alone is the prefix match; a glob, or a prefix without an upper bound, also needs GLOB.
  if (kind === 'glob') add(`${column} glob ?`, false, value);
  else if (upper === null) add(`${column} glob ?`, false, `${escapeGlob(literal)}*`);
}

/**
 * The least string above every string that starts with `prefix`, in SQLite's BINARY order (UTF-8
 * bytes, which is code point order): the last code point plus one. Null when there is none.
 */
export function successor(prefix: string): string | null {
  const points = [...prefix];
  while (points.length > 0) {
    const cp = points.pop()!.codePointAt(0)!;
    if (cp < 0x10ffff) return points.join('') + String.fromCodePoint(cp === 0xd7ff ? 0xe000 : cp + 1);
  }
  return null;
}

const escapeGlob = (s: string) => s.replace(/[*?[]/g, (c) => `[${c}]`);

const clause = (terms: string[]) => (terms.length ? ` where ${terms.join(' and ')}` : '');

// Prepared once per SQL text and connection. The texts are few (one per combination of filters
// and match kinds); the cap only guards against a surprise.
const STATEMENT_CACHE_MAX = 512;
const statements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function statement(db: Database.Database, sql: string): Database.Statement {
  let cache = statements.get(db);
  if (!cache) statements.set(db, (cache = new Map()));
  let stmt = cache.get(sql);
  if (!stmt) {
    if (cache.size >= STATEMENT_CACHE_MAX) cache.delete(cache.keys().next().value!);
    stmt = db.prepare(sql);
    cache.set(sql, stmt);
  }
  return stmt;
}
