import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_HASH } from '../src/audit/chain.js';
import { CSV_HEADER, csvCell, csvRecord } from '../src/audit/csv.js';
import type { AuditEvent } from '../src/audit/event.js';
import { type AuditFilter, exportEvents, exportPlan, pageQuery, parseFilter, queryEvents, successor } from '../src/audit/query.js';
import { type AuditRow, openAuditDb } from '../src/audit/schema.js';
import { append, freshTrail, lookupState, LOOKUP_STATES, MIN, removeTrails, type Spec, T0 } from './support/audit-trail.js';
import { GatehouseError } from '../src/wire/index.js';

afterAll(removeTrails);

const ids = (events: AuditEvent[]) => events.map((e) => e.id);
const filterOf = (query: Record<string, string>) => parseFilter(query, T0 + 1000 * MIN);
const q = (db: Database.Database, query: Record<string, string>) => ids(queryEvents(db, filterOf({ limit: '1000', ...query })).events);

function errorOf(fn: () => unknown): GatehouseError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error('expected a GatehouseError');
}

describe('parseFilter', () => {
  const now = Date.parse('2024-06-10T12:00:00Z');

  it('defaults the limit to 100 and reads each filter', () => {
    expect(parseFilter({}, now)).toEqual({ limit: 100 });
    expect(parseFilter({ user: 'alice', group: 'auditors', action: 'job.', object: 'dataset:*', decision: 'deny', request_id: 'r1', limit: '1000', user_unused: undefined }, now)).toEqual({
      user: 'alice',
      group: 'auditors',
      action: 'job.',
      object: 'dataset:*',
      decision: 'deny',
      request_id: 'r1',
      limit: 1000,
    });
  });

  it('reads ISO 8601 times with a zone, bare dates as UTC midnight, and ages as now minus them', () => {
    expect(parseFilter({ since: '2024-05-01' }, now).since).toBe(Date.parse('2024-05-01T00:00:00Z'));
    expect(parseFilter({ since: '2024-05-01T09:30:00Z' }, now).since).toBe(Date.parse('2024-05-01T09:30:00Z'));
    expect(parseFilter({ since: '2024-05-01T09:30:00.123456+02:00' }, now).since).toBe(Date.parse('2024-05-01T07:30:00.123Z'));
    expect(parseFilter({ since: '2024-05-01T09:30-0130' }, now).since).toBe(Date.parse('2024-05-01T11:00:00Z'));
    expect(parseFilter({ since: '30s' }, now).since).toBe(now - 30_000);
    expect(parseFilter({ since: '15m' }, now).since).toBe(now - 15 * 60_000);
    expect(parseFilter({ since: '24h' }, now).since).toBe(now - 24 * 3_600_000);
    expect(parseFilter({ since: '7d', until: '1h' }, now)).toEqual({ since: now - 7 * 86_400_000, until: now - 3_600_000, limit: 100 });
  });

  it.each([
    [{ users: 'alice' }, 'query.users', 'users: not a filter (filters: user, group, action, object, decision, since, until, request_id, limit, cursor)'],
    [{ user: '' }, 'query.user', 'user: empty; leave the filter out to match every value'],
    [{ object: 'dataset:a\nb' }, 'query.object', 'object: contains a control character'],
    [{ action: 'x'.repeat(513) }, 'query.action', 'action: longer than 512 characters'],
    [{ decision: 'maybe' }, 'query.decision', 'decision: "maybe" is not allow, deny or error'],
    [{ limit: '0' }, 'query.limit', 'limit: "0" is not a whole number from 1 to 1000'],
    [{ limit: '1001' }, 'query.limit', 'limit: "1001" is not a whole number from 1 to 1000'],
    [{ limit: '10.5' }, 'query.limit', 'limit: "10.5" is not a whole number from 1 to 1000'],
    [{ since: 'yesterday' }, 'query.since', 'since: "yesterday" is neither an ISO 8601 time (2024-05-01, 2024-05-01T09:30:00Z) nor an age (30s, 15m, 24h, 7d)'],
    [{ until: '7w' }, 'query.until', 'until: "7w" is neither an ISO 8601 time (2024-05-01, 2024-05-01T09:30:00Z) nor an age (30s, 15m, 24h, 7d)'],
    [{ since: '2024-05-01T09:30:00' }, 'query.since', 'since: "2024-05-01T09:30:00" has no time zone: add Z (UTC) or an offset such as +02:00'],
    [{ since: '2024-02-30' }, 'query.since', 'since: "2024-02-30" is not a real date and time'],
    [{ until: '2024-05-01T24:00:00Z' }, 'query.until', 'until: "2024-05-01T24:00:00Z" is not a real date and time'],
    [{ since: '2024-05-02', until: '2024-05-01' }, 'query.since', 'since: 2024-05-02T00:00:00.000Z is not before until (2024-05-01T00:00:00.000Z)'],
    [{ cursor: 'not-a-cursor' }, 'query.cursor', 'cursor: not a cursor this gateway gave out (pass next_cursor from the previous page as is)'],
  ])('refuses %j with invalid_request naming the field', (query, field, message) => {
    const err = errorOf(() => parseFilter(query as Record<string, string>, now));
    expect(err.code).toBe('invalid_request');
    expect(err.status).toBe(400);
    expect(err.details).toEqual({ field });
    expect(err.message).toBe(message);
  });
});

// Each suite runs with its events all in the un-indexed tail, half in the lookup tables, and all in them.
describe.each(LOOKUP_STATES)('queryEvents filters (lookup tables: %s)', (state) => {
  let db: Database.Database;
  beforeAll(() => {
    db = freshTrail();
    append(db, [
      /* 1 */ { action: 'auth.login', object: 'user:alice', user: 'alice', groups: ['scientists'] },
      /* 2 */ { action: 'auth.login_failed', object: 'user:bob', user: null, groups: [], decision: 'deny', auth_method: null },
      /* 3 */ { action: 'job.submit', object: 'dataset:customers', user: 'bob', groups: ['scientists', 'auditors'] },
      /* 4 */ { action: 'job.finish', object: 'dataset:customers_eu', user: 'bob', groups: ['auditors'] },
      /* 5 */ { action: 'jobs.list', object: 'job:all', user: 'carol', groups: ['admins'] },
      /* 6 */ { action: 'dataset.read', object: 'dataset:scratch/alice', decision: 'deny' },
      /* 7 */ { action: 'dataset.read', object: 'dataset:scratch/bob/tmp', decision: 'error', request_id: 'shared-req' },
      /* 8 */ { action: 'dataset.write', object: 'dataset:Scratch/x', request_id: 'shared-req' },
      /* 9 */ { action: 'policy.reload', object: 'policy:files', user: null, auth_method: 'system', groups: [], request_id: null },
      /* 10 */ { action: 'dataset.read', object: 'dataset:é/ü', user: 'zoë', groups: ['scientists'] },
    ]);
    lookupState(db, state);
  });

  it('returns everything newest first, as AuditEvents', () => {
    const page = queryEvents(db, filterOf({}));
    expect(ids(page.events)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(page.next_cursor).toBeNull();
    expect(page.events[7]).toMatchObject({
      id: 3,
      time: new Date(T0 + 3 * MIN).toISOString(),
      actor: { user: 'bob', groups: ['scientists', 'auditors'], auth_method: 'oidc', ip: '10.0.0.1' },
      action: 'job.submit',
      object: 'dataset:customers',
      decision: 'allow',
      request_id: 'req-3',
      details: {},
    });
  });

  it('filters by user, group, decision and request id', () => {
    expect(q(db, { user: 'bob' })).toEqual([4, 3]);
    expect(q(db, { group: 'auditors' })).toEqual([4, 3]);
    expect(q(db, { group: 'scientist' })).toEqual([]); // a group is a whole value, not a substring
    expect(q(db, { decision: 'deny' })).toEqual([6, 2]);
    expect(q(db, { decision: 'error' })).toEqual([7]);
    expect(q(db, { request_id: 'shared-req' })).toEqual([8, 7]);
    expect(q(db, { user: 'alice', decision: 'deny' })).toEqual([6]);
  });

  it('takes since as inclusive and until as exclusive', () => {
    const at = (n: number) => new Date(T0 + n * MIN).toISOString();
    expect(q(db, { since: at(8) })).toEqual([10, 9, 8]);
    expect(q(db, { until: at(3) })).toEqual([2, 1]);
    expect(q(db, { since: at(3), until: at(5) })).toEqual([4, 3]);
  });

  it('matches action and object exactly unless they end in . : / (a prefix) or hold * ? (a glob)', () => {
    expect(q(db, { action: 'auth.login' })).toEqual([1]);
    expect(q(db, { action: 'auth.' })).toEqual([2, 1]);
    expect(q(db, { action: 'auth.login*' })).toEqual([2, 1]);
    expect(q(db, { action: 'job.' })).toEqual([4, 3]); // not jobs.list
    expect(q(db, { action: 'job' })).toEqual([]);
    // Not limited to today's AUDIT_ACTIONS (src/audit/actions.ts): a name an older version recorded stays searchable.
    expect(q(db, { action: 'jobs.list' })).toEqual([5]);
    expect(q(db, { action: '*.read' })).toEqual([10, 7, 6]);
    expect(q(db, { action: 'dataset.?rite' })).toEqual([8]);
    expect(q(db, { object: 'dataset:customers' })).toEqual([3]);
    expect(q(db, { object: 'dataset:' })).toEqual([10, 8, 7, 6, 4, 3]);
    expect(q(db, { object: 'dataset:scratch/' })).toEqual([7, 6]);
    expect(q(db, { object: 'dataset:scratch/*' })).toEqual([7, 6]);
    expect(q(db, { object: 'dataset:scratch/?????' })).toEqual([6]);
    expect(q(db, { object: 'dataset:[Ss]cratch/*' })).toEqual([8, 7, 6]);
    expect(q(db, { object: 'DATASET:*' })).toEqual([]); // case-sensitive
    expect(q(db, { object: 'dataset:é/' })).toEqual([10]);
    expect(q(db, { object: 'user:' })).toEqual([2, 1]);
    expect(q(db, { action: 'dataset.', object: 'dataset:scratch/*', decision: 'deny' })).toEqual([6]);
  });

  it('bounds a prefix by the next code point, so non-ASCII and the last code point still work', () => {
    expect(successor('job.')).toBe('job/');
    expect(successor('dataset:')).toBe('dataset;');
    expect(successor('a\u{d7ff}')).toBe('a\u{e000}');
    expect(successor('ab\u{10ffff}')).toBe('ac');
    expect(successor('\u{10ffff}')).toBeNull();
    const other = freshTrail();
    append(other, [{ object: 'x\u{10ffff}1' }, { object: 'x\u{10ffff}' }, { object: 'y' }, { object: '\u{10ffff}:a' }]);
    lookupState(other, state);
    expect(q(other, { object: 'x\u{10ffff}' })).toEqual([2]);
    expect(q(other, { object: '\u{10ffff}:' })).toEqual([4]);
  });
});

describe.each(LOOKUP_STATES)('queryEvents paging (lookup tables: %s)', (state) => {
  it('walks every page by cursor with no duplicate and no gap, also across equal times', () => {
    const db = freshTrail();
    // Five events per millisecond, and one clock step back: order is by time, then id.
    const specs: Spec[] = Array.from({ length: 250 }, (_, i) => ({ time: T0 + Math.floor(i / 5) * 1000 - (i === 200 ? 60_000 : 0), user: i % 3 === 0 ? 'bob' : 'alice' }));
    const rows = append(db, specs);
    lookupState(db, state);
    const expected = [...rows].sort((a, b) => b.time - a.time || b.id - a.id).map((r) => r.id);

    for (const limit of [7, 50, 250, 1000]) {
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = queryEvents(db, filterOf({ limit: String(limit), ...(cursor ? { cursor } : {}) }));
        expect(page.events.length).toBeLessThanOrEqual(limit);
        expect(page.events.length).toBeGreaterThan(0); // never an empty last page
        seen.push(...ids(page.events));
        cursor = page.next_cursor;
        pages++;
      } while (cursor);
      expect(seen).toEqual(expected);
      expect(pages).toBe(Math.ceil(250 / limit));
    }

    // Paging a filtered query keeps the filter.
    const bob = rows.filter((r) => r.user === 'bob').sort((a, b) => b.time - a.time || b.id - a.id).map((r) => r.id);
    const first = queryEvents(db, filterOf({ user: 'bob', limit: '40' }));
    const second = queryEvents(db, filterOf({ user: 'bob', limit: '100', cursor: first.next_cursor! }));
    expect([...ids(first.events), ...ids(second.events)]).toEqual(bob);
    expect(second.next_cursor).toBeNull();
  });
});

describe('query plans', () => {
  let db: Database.Database;
  beforeAll(() => {
    db = freshTrail();
    append(db, Array.from({ length: 50 }, (_, i) => ({ user: `u${i % 5}`, object: `dataset:d${i % 7}` })));
  });
  const plan = (filter: AuditFilter) => {
    const { sql, params } = pageQuery(filter);
    return (db.prepare(`explain query plan ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join(' | ');
  };

  it('walks the user lookup table for a user between two times, also on later pages, with no sort; the tail by the primary key', () => {
    const f = filterOf({ user: 'u1', since: '2024-05-01', until: '2024-05-02', limit: '10' });
    const expected = /^MERGE \(UNION ALL\) \| LEFT \| SEARCH k USING PRIMARY KEY \(user=\? AND time>\? AND time<\?\) \| .*SEARCH e USING INTEGER PRIMARY KEY \(rowid=\?\) \| RIGHT \| SEARCH audit_events USING INTEGER PRIMARY KEY \(rowid>\?\)/;
    expect(plan(f)).toMatch(expected);
    expect(plan(f).split(' | RIGHT | ')[0]).not.toContain('TEMP B-TREE');
    const next = queryEvents(db, { ...f, limit: 2 }).next_cursor!;
    expect(next).not.toBeNull();
    expect(plan({ ...f, cursor: next })).toMatch(expected);
  });

  it('uses the object lookup table for an object, a prefix and the literal part of a glob', () => {
    expect(plan(filterOf({ object: 'dataset:' }))).toContain('SEARCH k USING PRIMARY KEY (object>? AND object<?)');
    expect(plan(filterOf({ object: 'dataset:d1*' }))).toContain('SEARCH k USING PRIMARY KEY (object>? AND object<?)');
    expect(plan(filterOf({ action: 'job.' }))).toContain('SEARCH audit_events USING INDEX audit_events_action_time (action>? AND action<?)');
    expect(plan(filterOf({ object: 'dataset:d1' }))).toMatch(/^MERGE \(UNION ALL\) \| LEFT \| SEARCH k USING PRIMARY KEY \(object=\?\)/);
    // No literal part: nothing to look up, the time index is walked.
    expect(plan(filterOf({ object: '*x' }))).toBe('SCAN audit_events USING INDEX audit_events_time');
  });

  it('uses the request index for a request id', () => {
    expect(plan(filterOf({ request_id: 'req-4' }))).toContain('SEARCH audit_events USING INDEX audit_events_request (request_id=?)');
  });

  it('walks the time index, newest first, when nothing narrows the query', () => {
    expect(plan(filterOf({}))).toBe('SCAN audit_events USING INDEX audit_events_time');
    expect(plan(filterOf({ since: '1h' }))).toBe('SEARCH audit_events USING INDEX audit_events_time (time>?)');
  });
});

describe('CSV', () => {
  it('writes RFC 4180: quotes a field with a comma, quote or line break, doubling quotes', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell('cr\rhere')).toBe('"cr\rhere"');
    expect(csvCell(null)).toBe('');
    expect(csvCell('')).toBe('');
  });

  it('guards cells a spreadsheet would run as a formula with a leading quote', () => {
    expect(csvCell('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('-2+3')).toBe("'-2+3");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell('\tcmd')).toBe("'\tcmd");
    expect(csvCell('\rcmd')).toBe(`"'\rcmd"`);
    expect(csvCell('a=b')).toBe('a=b');
  });

  it('writes one record per event under the header, in the column order of the header', () => {
    expect(CSV_HEADER).toBe('id,time,user,groups,auth_method,ip,action,object,decision,reason,policy_version,request_id,details,prev_hash,hash\r\n');
    const db = freshTrail();
    const [row] = append(db, [{ user: null, groups: ['-b', 'a'], reason: 'no rule grants read, "dataset:x"', details: { z: 1, a: 'x,y' }, request_id: null }]);
    const [event] = queryEvents(db, filterOf({})).events;
    expect(csvRecord(event!)).toBe(
      `1,${event!.time},,'-b;a,oidc,10.0.0.1,dataset.read,dataset:customers,allow,"no rule grants read, ""dataset:x""",v1,,"{""a"":""x,y"",""z"":1}",${GENESIS_HASH},${row!.hash}\r\n`,
    );
  });
});

describe.each(LOOKUP_STATES)('exportEvents (lookup tables: %s)', (state) => {
  let db: Database.Database;
  let rows: AuditRow[];
  beforeAll(() => {
    db = freshTrail();
    // 12,000 events: alice has most of them (an export walks the chain), bob a few (through his index).
    rows = append(
      db,
      Array.from({ length: 12_000 }, (_, i) => ({
        time: T0 + i * 1000 + (i % 10 === 3 ? -5000 : 0), // a clock that sometimes steps back
        user: i % 100 === 7 ? 'bob' : 'alice',
        action: i % 2 ? 'job.submit' : 'dataset.read',
        decision: i % 11 === 0 ? 'deny' : 'allow',
        groups: i % 3 === 0 ? ['auditors'] : ['scientists'],
      })),
    );
    lookupState(db, state);
  });
  const exported = (filter: Parameters<typeof exportEvents>[1], pageSize?: number) => {
    const pages = [...exportEvents(db, filter, pageSize)];
    return { pages, ids: pages.flatMap(ids) };
  };
  const matching = (pred: (r: AuditRow) => boolean) => rows.filter(pred).map((r) => r.id);

  it('yields every event in chain order, in pages of 1000', () => {
    const { pages, ids: all } = exported({});
    expect(pages.map((p) => p.length)).toEqual(Array(12).fill(1000));
    expect(all).toEqual(rows.map((r) => r.id));
    // The events are complete and chained: each prev_hash is the previous hash.
    const events = pages.flat();
    expect(events.every((e, i) => e.prev_hash === (i === 0 ? GENESIS_HASH : events[i - 1]!.hash))).toBe(true);
  });

  it('fails an export that retention overtakes, rather than leave out what it archived', () => {
    const pages = exportEvents(db, {}, 1000);
    expect(pages.next().value).toHaveLength(1000);
    db.prepare("insert into audit_anchor (one, event_id, hash, file, jws) values (1, 2000, 'h', 'f', 'j')").run(); // as retention would, after deleting #1..#2000
    try {
      expect(() => pages.next()).toThrow(/archived by retention while this export ran \(it had reached #1000\)/);
      expect([...exportEvents(db, {}, 1000)].flat()).toHaveLength(12_000); // an anchor there before the export began is no problem
    } finally {
      db.prepare('delete from audit_anchor').run();
    }
  });

  it('exports the same set whether it walks an index (few matches) or the chain (many)', () => {
    expect(exported({ user: 'bob' }).ids).toEqual(matching((r) => r.user === 'bob'));
    expect(exported({ user: 'alice' }).ids).toEqual(matching((r) => r.user === 'alice'));
    expect(exported({ user: 'alice', action: 'job.', decision: 'deny' }).ids).toEqual(matching((r) => r.user === 'alice' && r.action.startsWith('job.') && r.decision === 'deny'));
    expect(exported({ group: 'auditors', action: '*.read' }).ids).toEqual(matching((r) => r.groups === '["auditors"]' && r.action === 'dataset.read'));
    const since = T0 + 3000 * 1000;
    const until = T0 + 9000 * 1000;
    expect(exported({ since, until }).ids).toEqual(matching((r) => r.time >= since && r.time < until));
    expect(exported({ since, until, user: 'bob' }).ids).toEqual(matching((r) => r.time >= since && r.time < until && r.user === 'bob'));
    expect(exported({ since: T0 + 11_000 * 1000 }).ids).toEqual(matching((r) => r.time >= T0 + 11_000 * 1000));
    expect(exported({ since: T0 + 20_000 * 1000 }).ids).toEqual([]);
    expect(exported({ until: T0 }).ids).toEqual([4]); // its clock stepped back before T0
    expect(exported({ until: T0 - 60_000 }).ids).toEqual([]);
    expect(exported({ request_id: 'req-77' }).ids).toEqual([77]);
  });

  it('uses the filter index for few matches and the primary key for many', () => {
    const planOf = (filter: Parameters<typeof exportEvents>[1]) => {
      const { sql, params, from, to } = exportPlan(db, filter, 12_000);
      return (db.prepare(`explain query plan ${sql}`).all(...params(from, to, 1000)) as { detail: string }[]).map((r) => r.detail).join(' | ');
    };
    expect(planOf({ user: 'bob' })).toContain('SEARCH k USING PRIMARY KEY (user=?)');
    expect(planOf({ user: 'alice' })).toBe('SEARCH audit_events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)');
    expect(planOf({ decision: 'deny' })).toBe('SEARCH audit_events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)');
  });

  it('reads page by page: no read transaction stays open between pages, and later events are left out', () => {
    const pages = exportEvents(db, {}, 500);
    const first = pages.next();
    expect(first.done).toBe(false);
    // A writer can checkpoint the whole WAL (it could not under an open read transaction) and append.
    const writer = openAuditDb(dirname(db.name));
    const added = append(writer, [{ user: 'late' }]);
    const checkpoint = writer.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    expect(checkpoint[0]!.busy).toBe(0);
    writer.close();
    const rest = [...pages].flat();
    expect(rest.length).toBe(12_000 - 500);
    expect(rest.some((e) => e.id === added[0]!.id)).toBe(false);
    rows.push(...added);
  });

  it('yields nothing for an empty trail', () => {
    expect([...exportEvents(freshTrail(), {})]).toEqual([]);
  });
});
