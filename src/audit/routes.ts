// The auditor's API: GET /v1/audit (a page, newest first), /v1/audit/export (everything that
// matches, streamed in chain order) and /v1/audit/verify. Each declares what it needs (read on
// audit:events, recorded as audit.query with what was asked and the filter as given): the gateway's
// authorization stage decides and records it before the handler runs.
import { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { NoQuery } from '../http/index.js';
import type { PolicyNeed } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';
import { CSV_HEADER, csvRecord } from './csv.js';
import type { AuditEvent } from './event.js';
import { LIMIT_MAX, parseFilter } from './filter.js';
import { AuditActorSchema, AuditDecisionSchema } from './input.js';
import { exportEvents, queryEvents } from './query.js';

export interface AuditRouteDeps {
  /** A read-only connection to the trail. */
  reader: () => Database.Database;
  /** The verify report: `{ ok, ... }`. */
  verify: () => Promise<{ ok: boolean }>;
}

const Text = (description: string) => Type.Optional(Type.String({ description }));
const FILTERS = {
  user: Text('the acting user, exactly'),
  group: Text('a group the actor had'),
  action: Text('exact (auth.login); a prefix when it ends in . : or / (job.); a glob with * or ? (auth.login*)'),
  object: Text('as action: dataset:customers exactly, dataset: every dataset, dataset:scratch/* a pattern'),
  decision: Type.Optional(Type.Enum(['allow', 'deny', 'error'])),
  since: Text('events at or after: ISO 8601 (2024-05-01, 2024-05-01T09:30:00Z) or an age (30s, 15m, 24h, 7d)'),
  until: Text('events before: ISO 8601 or an age'),
  request_id: Text('the request that caused the event'),
};
const QueryString = Type.Object(
  {
    ...FILTERS,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMIT_MAX, description: 'events per page (default 100)' })),
    cursor: Text('next_cursor of the previous page'),
  },
  { additionalProperties: false },
);
const ExportQueryString = Type.Object({ ...FILTERS, format: Type.Optional(Type.Enum(['jsonl', 'csv'], { description: 'jsonl (default) or csv' })) }, { additionalProperties: false });

const Nullable = (description?: string) => Type.Union([Type.String(), Type.Null()], description ? { description } : {});
export const AuditEventSchema = Type.Object(
  {
    id: Type.Integer({ description: 'position in the chain' }),
    time: Type.String({ format: 'date-time' }),
    actor: AuditActorSchema,
    action: Type.String(),
    object: Type.String(),
    decision: AuditDecisionSchema,
    reason: Type.String(),
    policy_version: Nullable(),
    request_id: Nullable(),
    details: Type.Object({}, { additionalProperties: true }),
    prev_hash: Type.String(),
    hash: Type.String(),
  },
  { additionalProperties: false },
);
const PageSchema = Type.Object({ events: Type.Array(AuditEventSchema), next_cursor: Nullable('pass as cursor for the next page; null on the last') }, { additionalProperties: false });
// The report's fields belong to verify; the route promises only `ok`.
const VerifySchema = Type.Object({ ok: Type.Boolean() }, { additionalProperties: true });

/** The querystring as strings, without the keys that are not filters. */
function given(query: Readonly<Record<string, unknown>>, drop: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) if (v !== undefined && !drop.includes(k)) out[k] = String(v);
  return out;
}

export function installAuditRoutes(server: FastifyInstance, deps: AuditRouteDeps): void {
  // Handler types come from the route schemas (the ones Ajv validates with), never restated.
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  /** Read on audit:events, recorded as audit.query with `kind` and the filter as the caller gave it (strings; no cursor or format). */
  const auditorsOnly = (kind: 'query' | 'export' | 'verify', notFilters: string[]): { authorize: PolicyNeed } => ({
    authorize: { object: 'audit:events', action: 'read', audit: 'audit.query', denial: 403, details: (r) => ({ kind, filter: kind === 'verify' ? {} : given(r.query, notFilters) }) },
  });
  const reader = (request: FastifyRequest) => {
    try {
      return deps.reader();
    } catch (err) {
      request.log.error({ err }, 'audit trail unreadable');
      throw new GatehouseError('audit_unavailable', 'the audit trail cannot be read');
    }
  };

  app.get(
    '/v1/audit',
    { config: auditorsOnly('query', ['cursor']), schema: { summary: 'Audit events that match the filters, newest first, a page at a time', querystring: QueryString, response: { 200: PageSchema } } },
    async (request) => {
      return queryEvents(reader(request), parseFilter(given(request.query, []), Date.now()));
    },
  );

  app.get(
    '/v1/audit/export',
    { config: auditorsOnly('export', ['format']), schema: { summary: 'Every audit event that matches, oldest first in chain order, streamed as JSON lines or CSV', querystring: ExportQueryString } },
    async (request, reply) => {
      const filters = given(request.query, ['format']);
      const filter = parseFilter(filters, Date.now());
      const format = request.query.format === 'csv' ? 'csv' : 'jsonl';
      // The first page is read before the answer starts, so an unreadable trail is an error status,
      // not a 200 with a cut body. Not object mode: the stream holds ~16 KiB, not 16 pages.
      const pages = exportEvents(reader(request), filter);
      const first = pages.next();
      const body = Readable.from(exportBody(first.done ? [] : [first.value], pages, format), { objectMode: false });
      reply.raw.once('close', () => body.destroy()); // a client that leaves stops the reads
      const date = new Date().toISOString().slice(0, 10);
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="audit-${date}.${format}"`)
        .header('cache-control', 'no-store')
        .send(body);
    },
  );

  app.get(
    '/v1/audit/verify',
    { config: auditorsOnly('verify', []), schema: { summary: 'Check the whole trail: hashes, links, checkpoints and anchor; 200 with ok false when it is not intact', querystring: NoQuery, response: { 200: VerifySchema } } },
    async () => deps.verify(),
  );
}

function* exportBody(first: AuditEvent[][], rest: Iterator<AuditEvent[]>, format: 'csv' | 'jsonl'): Generator<string> {
  const text = (page: AuditEvent[]) => page.map((e) => (format === 'csv' ? csvRecord(e) : `${JSON.stringify(e)}\n`)).join('');
  if (format === 'csv') yield CSV_HEADER;
  for (const page of first) yield text(page);
  if (first.length === 0) return;
  for (let next = rest.next(); !next.done; next = rest.next()) yield text(next.value);
}
