import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Database from 'better-sqlite3';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent, AuditInput } from '../src/audit/event.js';
import { installAuditRoutes } from '../src/audit/routes.js';
import { installPlumbing, serverOptions } from '../src/http/index.js';
import type { Identity } from '../src/identity/index.js';
import { installAuthorization, loadPolicy, policyAuthorizer, requireDeclaredAccess } from '../src/policy/index.js';
import { append, freshTrail, MIN, removeTrails, T0 } from './support/audit-trail.js';
import { TEST_POLICIES } from './support/gatehouse.js';
import { until } from './support/until.js';

const REPORT = { ok: false, events: 3, first_id: 1, last_id: 3, checkpoints: 0, last_checkpoint: null, unsigned_tail: 3, anchor: null, problems: [{ event_id: 2, kind: 'edited', message: 'hash does not match' }], elapsed_ms: 1 };

interface Harness {
  app: FastifyInstance;
  /** What the authorization stage recorded for each ask: the kind and the filter as given. */
  asked(): { kind: string; filter: Record<string, string> }[];
  reads: { count: number };
}

const identity = (user: string, groups: string[]): Identity => ({ user, groups, auth_method: 'ldap', credential: 'bearer', expires_at: new Date(Date.now() + 3_600_000) });

/**
 * The routes composed as the gateway composes them (declared access required, the authorization
 * stage on the demo policy), with the caller carol (auditors) or, sending x-deny, alice (analysts:
 * no read on audit:events). The stage's records are kept in memory.
 */
async function harness(db: Database.Database | (() => never)): Promise<Harness> {
  const recorded: AuditInput[] = [];
  const reads = { count: 0 };
  const policy = await loadPolicy(TEST_POLICIES);
  const app = Fastify({ ...serverOptions(), logger: false });
  installPlumbing(app);
  requireDeclaredAccess(app);
  app.decorateRequest('identity', undefined);
  app.addHook('onRequest', async (request) => {
    request.identity = request.headers['x-deny'] ? identity('alice', ['analysts']) : identity('carol', ['auditors']);
  });
  installAuthorization(app, { authorizer: policyAuthorizer(() => policy), audit: {
      record: async (event) => {
        recorded.push(event);
        return { ...event, id: recorded.length, time: new Date().toISOString() } as AuditEvent;
      },
    },
  });
  installAuditRoutes(app, {
    reader: () => {
      reads.count++;
      return typeof db === 'function' ? db() : db;
    },
    verify: async () => REPORT,
  });
  await app.ready();
  const asked = () => recorded.map((e) => ({ kind: e.details?.kind as string, filter: e.details?.filter as Record<string, string> }));
  return { app, asked, reads };
}

afterAll(removeTrails);

describe('GET /v1/audit', () => {
  let h: Harness;
  beforeAll(async () => {
    const db = freshTrail();
    append(db, [{ user: 'alice' }, { user: 'bob', action: 'job.submit', details: { job: 'j1', resources: { cores: 4 } } }, { user: 'alice', decision: 'deny' }]);
    h = await harness(db);
  });
  afterAll(() => h.app.close());

  it('answers a page newest first, and the next page by cursor; authorize sees the filter without the cursor', async () => {
    const first = await h.app.inject({ url: '/v1/audit?user=alice&limit=1' });
    expect(first.statusCode).toBe(200);
    const page = first.json() as { events: AuditEvent[]; next_cursor: string };
    expect(page.events.map((e) => e.id)).toEqual([3]);
    expect(page.events[0]).toMatchObject({ id: 3, actor: { user: 'alice', groups: ['scientists'] }, decision: 'deny', time: new Date(T0 + 3 * MIN).toISOString() });
    const second = await h.app.inject({ url: `/v1/audit?user=alice&limit=1&cursor=${page.next_cursor}` });
    expect(second.json()).toMatchObject({ events: [{ id: 1 }], next_cursor: null });
    expect(h.asked().slice(-2)).toEqual([
      { kind: 'query', filter: { user: 'alice', limit: '1' } },
      { kind: 'query', filter: { user: 'alice', limit: '1' } },
    ]);
  });

  it('keeps the open details object whole', async () => {
    const res = await h.app.inject({ url: '/v1/audit?action=job.' });
    expect(res.json()).toEqual({ events: [expect.objectContaining({ id: 2, details: { job: 'j1', resources: { cores: 4 } } })], next_cursor: null });
  });

  it('refuses a bad filter with 400 naming the field', async () => {
    const cases: [string, string, string][] = [
      ['bogus=1', 'query.bogus', 'query.bogus is not a known field'],
      ['limit=5000', 'query.limit', 'query.limit must be <= 1000'],
      ['decision=maybe', 'query.decision', 'query.decision must be equal to one of the allowed values'],
      ['since=yesterday', 'query.since', 'since: "yesterday" is neither an ISO 8601 time (2024-05-01, 2024-05-01T09:30:00Z) nor an age (30s, 15m, 24h, 7d)'],
      ['user=', 'query.user', 'user: empty; leave the filter out to match every value'],
      ['cursor=abc', 'query.cursor', 'cursor: not a cursor this gateway gave out (pass next_cursor from the previous page as is)'],
    ];
    for (const [query, field, message] of cases) {
      const res = await h.app.inject({ url: `/v1/audit?${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toEqual({ error: 'invalid_request', field, message });
    }
  });

  it('asks authorize before anything else: a refused caller gets 403 and the trail is not read', async () => {
    const before = h.reads.count;
    for (const url of ['/v1/audit?since=yesterday', '/v1/audit/export?format=csv', '/v1/audit/verify']) {
      const res = await h.app.inject({ url, headers: { 'x-deny': '1' } });
      expect(res.statusCode, url).toBe(403);
      expect(res.json()).toMatchObject({ error: 'forbidden', message: 'no rule grants read on audit:events to user:alice' });
    }
    expect(h.reads.count).toBe(before);
    expect(h.asked().slice(-3)).toEqual([
      { kind: 'query', filter: { since: 'yesterday' } },
      { kind: 'export', filter: {} },
      { kind: 'verify', filter: {} },
    ]);
  });

  it('returns the verify report as it is, with 200 also when the trail is not intact', async () => {
    const res = await h.app.inject({ url: '/v1/audit/verify' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(REPORT);
  });
});

describe('GET /v1/audit/export', () => {
  let h: Harness;
  beforeAll(async () => {
    const db = freshTrail();
    append(db, Array.from({ length: 2500 }, (_, i) => ({ user: i % 2 ? 'alice' : 'bob', reason: i === 4 ? '=cmd|"/c calc"!A1, said bob' : 'rule 3 grants read' })));
    h = await harness(db);
  });
  afterAll(() => h.app.close());

  it('streams JSON lines by default, oldest first, as an attachment', async () => {
    const res = await h.app.inject({ url: '/v1/audit/export?user=bob&action=dataset.' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="audit-\d{4}-\d{2}-\d{2}\.jsonl"$/);
    const lines = res.body.split('\n');
    expect(lines.pop()).toBe('');
    const events = lines.map((l) => JSON.parse(l) as AuditEvent);
    expect(events.length).toBe(1250);
    expect(events.map((e) => e.id)).toEqual(Array.from({ length: 1250 }, (_, i) => 2 * i + 1));
    expect(h.asked().at(-1)).toEqual({ kind: 'export', filter: { user: 'bob', action: 'dataset.' } });
  });

  it('streams CSV with a header and guarded cells', async () => {
    const res = await h.app.inject({ url: '/v1/audit/export?format=csv&until=2024-05-01T00:06:00Z' });
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/filename="audit-\d{4}-\d{2}-\d{2}\.csv"$/);
    const records = res.body.split('\r\n');
    expect(records[0]).toBe('id,time,user,groups,auth_method,ip,action,object,decision,reason,policy_version,request_id,details,prev_hash,hash');
    expect(records.length).toBe(1 + 5 + 1); // header, events 1-5, the empty string after the last CRLF
    expect(records[5]).toContain(`,"'=cmd|""/c calc""!A1, said bob",`);
    expect(h.asked().at(-1)).toEqual({ kind: 'export', filter: { until: '2024-05-01T00:06:00Z' } });
  });

  it('refuses the paging parameters of a query', async () => {
    const res = await h.app.inject({ url: '/v1/audit/export?limit=10' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ field: 'query.limit' });
  });
});

describe('an unreadable trail', () => {
  it('answers 503 audit_unavailable before any body starts', async () => {
    const h = await harness(() => {
      throw new Error('SQLITE_CANTOPEN: unable to open database file');
    });
    try {
      for (const url of ['/v1/audit', '/v1/audit/export', '/v1/audit/export?format=csv']) {
        const res = await h.app.inject({ url });
        expect(res.statusCode, url).toBe(503);
        expect(res.json()).toEqual({ error: 'audit_unavailable', message: 'the audit trail cannot be read' });
      }
    } finally {
      await h.app.close();
    }
  });
});

describe('export back-pressure', () => {
  it('reads the trail only as fast as the client takes the body', async () => {
    const db = freshTrail();
    // 20 pages of ~1.5 MB: far more than socket buffers hold.
    append(db, Array.from({ length: 20_000 }, () => ({ details: { note: 'x'.repeat(1000) } })));
    // Count the pages the export has read: each is one all() on a prepared statement.
    let pages = 0;
    const counted = new Proxy(db, {
      get(target, key) {
        if (key !== 'prepare') return Reflect.get(target, key, target);
        return (sql: string) => {
          const stmt = target.prepare(sql);
          return new Proxy(stmt, {
            get(s, k) {
              const v = Reflect.get(s, k, s) as unknown;
              if (k === 'all')
                return (...args: unknown[]) => {
                  pages++;
                  return stmt.all(...args);
                };
              return typeof v === 'function' ? v.bind(s) : v;
            },
          });
        };
      },
    });
    const h = await harness(counted);
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    let served: ServerResponse | undefined;
    h.app.server.on('request', (_req: IncomingMessage, r: ServerResponse) => (served = r));
    try {
      const { port } = h.app.server.address() as AddressInfo;
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/audit/export' });
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      expect(res.statusCode).toBe(200);
      let bytes = 0;
      let newlines = 0;
      const take = (c: Buffer) => {
        bytes += c.length;
        for (const b of c) if (b === 10) newlines++;
      };
      const [first] = (await once(res, 'data')) as [Buffer];
      take(first);
      res.pause();
      // We read no more, so once the kernel holds all it will take the socket keeps bytes it cannot
      // send and the response waits for a drain that cannot come: the export must stop there.
      await until(() => served?.writableNeedDrain === true && (served.socket?.writableLength ?? 0) > 0, 10_000, 'the export waiting on a full socket');
      const stalled = pages;
      // Event-loop turns in which an export that ignored the socket would go on reading pages.
      for (let turn = 0; turn < 20; turn++) await new Promise((r) => setImmediate(r));
      expect(pages).toBe(stalled);
      expect(pages).toBeLessThan(20);
      res.on('data', take);
      res.resume();
      await once(res, 'end');
      expect(newlines).toBe(20_000);
      expect(pages).toBe(21); // 20 full pages, then the empty one that ends the export
      expect(bytes).toBeGreaterThan(20_000 * 1000);
    } finally {
      h.app.server.closeAllConnections(); // a failed check leaves the export paused mid-body
      await h.app.close();
    }
  });
});
