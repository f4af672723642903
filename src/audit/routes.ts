// The auditor's API: GET /v1/audit (a page, newest first), /v1/audit/export (everything that
// matches, streamed in chain order) and /v1/audit/verify. Each declares what it needs (read on
// audit:events, recorded as audit.query with what was asked and the filter as given): the gateway's
// authorization stage decides and records it before the handler runs.
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { PolicyNeed } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';
import { CSV_HEADER, csvCell, csvRecord } from './csv.js';
import type { AuditEvent } from './event.js';
import { LIMIT_MAX, parseFilter } from './filter.js';
import { AuditActorSchema, AuditDecisionSchema } from './input.js';
import { askAll, type AuditPeers, cursorFor, decodeMergedCursor, forwardable, isAuditEvent, isAuditPage, isMergedCursor, isVerifyReport, mergePages, type Peer, peerGet, type Reached } from './across.js';
import { eventWithPosition } from './lookup.js';
import { type AuditPage, exportEvents, queryEvents } from './query.js';

export interface AuditRouteDeps {
  /** A read-only connection to the trail. */
  reader: () => Database.Database;
  /** The verify report: `{ ok, ... }`. */
  verify: () => Promise<{ ok: boolean }>;
  /** The other gateways over a shared store, whose trails a question spans (across.ts). */
  peers?: AuditPeers;
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
const Scope = Type.Optional(Type.Enum(['all', 'local'], { description: 'all (default): every gateway over the store; local: this gateway\'s own trail' }));
const QueryString = Type.Object(
  {
    ...FILTERS,
    scope: Scope,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMIT_MAX, description: 'events per page (default 100)' })),
    cursor: Text('next_cursor of the previous page'),
  },
  { additionalProperties: false },
);
const ExportQueryString = Type.Object({ ...FILTERS, scope: Scope, format: Type.Optional(Type.Enum(['jsonl', 'csv'], { description: 'jsonl (default) or csv' })) }, { additionalProperties: false });

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
    gateway: Type.Optional(Type.String({ description: 'the gateway whose chain holds it (in answers that span several gateways)' })),
  },
  { additionalProperties: false },
);
const PositionSchema = Type.Object(
  {
    chain_id: Type.String(),
    sequence: Type.Integer(),
    prev_hash: Type.String(),
    hash: Type.String(),
    checkpoint: Type.Union([
      Type.Object({ seq: Type.Union([Type.Integer(), Type.Null()]), event_id: Type.Integer(), hash: Type.String(), time: Type.String(), kid: Type.String(), jws: Type.String() }, { additionalProperties: false }),
      Type.Null(),
    ]),
    anchor: Type.Union([Type.Object({ event_id: Type.Integer(), file: Type.String() }, { additionalProperties: false }), Type.Null()]),
  },
  { additionalProperties: false },
);
const GatewaysSchema = Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), error: Type.Optional(Type.String()) }, { additionalProperties: false }), {
  description: 'each gateway asked, and why one could not answer (its events are then missing)',
});
const PageSchema = Type.Object(
  { events: Type.Array(AuditEventSchema), next_cursor: Nullable('pass as cursor for the next page; null on the last'), gateways: Type.Optional(GatewaysSchema) },
  { additionalProperties: false },
);
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
      const asked = given(request.query, ['scope']);
      const peers = request.query.scope === 'local' || deps.peers === undefined ? [] : await peerList(deps.peers, request);
      if (deps.peers === undefined || (asked.cursor !== undefined && !isMergedCursor(asked.cursor))) return queryEvents(reader(request), parseFilter(asked, Date.now()));
      if (peers.length === 0) {
        // This gateway alone now (or scope=local): a merged cursor still says where its own trail goes on.
        const { cursor, ...rest } = asked;
        const local = cursor === undefined ? rest : { ...rest, cursor: cursorFor(deps.peers.self, decodeMergedCursor(cursor)) };
        return queryEvents(reader(request), parseFilter(local, Date.now()));
      }
      // Every gateway's page after the same point of the merged order, then one page of them all.
      const after = asked.cursor !== undefined ? decodeMergedCursor(asked.cursor) : null;
      const askedOf = (gateway: string): Record<string, string> => {
        const { cursor: _, ...rest } = asked;
        return after === null ? rest : { ...rest, cursor: cursorFor(gateway, after) };
      };
      const filter = parseFilter(askedOf(deps.peers.self), Date.now());
      const own = queryEvents(reader(request), filter);
      const answers = await Promise.all(
        peers.map(async (p) => (await askAll<AuditPage>([p], `/v1/audit?${new URLSearchParams({ ...askedOf(p.name), scope: 'local' })}`, forwardable(request.headers, request.id), deps.peers!.ca, isAuditPage))[0]!),
      );
      const pages = [{ gateway: deps.peers.self, page: own }, ...answers.flatMap((a) => (a.ok ? [{ gateway: a.gateway, page: a.value }] : []))];
      return { ...mergePages(pages, filter.limit), gateways: [{ name: deps.peers.self, ok: true }, ...answers.map(reachedOf)] };
    },
  );

  // One event with its place in this gateway's chain: what the auditor opens from a page of results.
  app.get(
    '/v1/audit/events/:id',
    {
      config: { authorize: { object: 'audit:events', action: 'read', audit: 'audit.query', denial: 403, details: (r) => ({ kind: 'event', id: Number(r.params.id) }) } },
      schema: {
        summary: "One audit event of this gateway's trail with its chain position (chain id, sequence, prev hash, hash, the checkpoint that covers it)",
        params: Type.Object({ id: Type.Integer({ minimum: 1, description: "the event's number in the chain" }) }, { additionalProperties: false }),
        querystring: Type.Object({}, { additionalProperties: false }),
        response: { 200: Type.Object({ event: AuditEventSchema, chain: PositionSchema }, { additionalProperties: false }) },
      },
    },
    async (request) => {
      const found = eventWithPosition(reader(request), request.params.id);
      if (!found) throw new GatehouseError('not_found', `no event #${request.params.id} in this gateway's trail (never written, or archived by retention)`);
      return { event: found.event, chain: found.position };
    },
  );

  app.get(
    '/v1/audit/export',
    { config: auditorsOnly('export', ['format']), schema: { summary: 'Every audit event that matches, oldest first in chain order, streamed as JSON lines or CSV', querystring: ExportQueryString } },
    async (request, reply) => {
      const filters = given(request.query, ['format', 'scope']);
      const filter = parseFilter(filters, Date.now());
      const format = request.query.format === 'csv' ? 'csv' : 'jsonl';
      const peers = request.query.scope === 'local' || deps.peers === undefined ? [] : await peerList(deps.peers, request);
      // Every other gateway's export is opened before the answer starts: one that cannot be asked is
      // an error status naming it, never an export that silently lacks its chain.
      const streams = peers.length === 0 ? [] : await openPeerExports(peers, filters, request, deps.peers!.ca);
      // The first page is read before the answer starts, so an unreadable trail is an error status,
      // not a 200 with a cut body. Not object mode: the stream holds ~16 KiB, not 16 pages.
      let pages: ReturnType<typeof exportEvents>;
      let first: IteratorResult<AuditEvent[]>;
      try {
        pages = exportEvents(reader(request), filter);
        first = pages.next();
      } catch (err) {
        for (const s of streams) s.res.destroy();
        throw err;
      }
      const body =
        streams.length === 0
          ? Readable.from(exportBody(first.done ? [] : [first.value], pages, format), { objectMode: false })
          : Readable.from(exportAcross(first.done ? [] : [first.value], pages, format, deps.peers!.self, streams), { objectMode: false });
      reply.raw.once('close', () => {
        body.destroy(); // a client that leaves stops the reads
        for (const s of streams) s.res.destroy();
      });
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
    { config: auditorsOnly('verify', []), schema: { summary: 'Check the whole trail: hashes, links, checkpoints and anchor (every gateway\'s chain); 200 with ok false when one is not intact', querystring: Type.Object({ scope: Scope }, { additionalProperties: false }), response: { 200: VerifySchema } } },
    async (request) => {
      const own = await deps.verify();
      const peers = request.query.scope === 'local' || deps.peers === undefined ? [] : await peerList(deps.peers, request);
      if (deps.peers === undefined || peers.length === 0) return own;
      // Each chain is verified where it is, by the gateway that writes it; a chain that could not be asked is not ok.
      const answers = await askAll(peers, '/v1/audit/verify?scope=local', forwardable(request.headers, request.id), deps.peers.ca, isVerifyReport);
      // Each report is labelled by who was asked, after its own fields: a peer cannot name itself otherwise.
      return {
        ...own,
        ok: own.ok && answers.every((a) => a.ok && a.value.ok === true),
        gateways: [{ ...own, name: deps.peers.self }, ...answers.map((a) => (a.ok ? { ...a.value, name: a.gateway } : { name: a.gateway, ok: false, error: a.error }))],
      };
    },
  );
}

/** The other gateways now; without the store to ask, this gateway's trail alone would pass for all of it, so refuse. */
async function peerList(peers: AuditPeers, request: FastifyRequest): Promise<Peer[]> {
  try {
    return await peers.list();
  } catch (err) {
    request.log.error({ err: (err as Error).message }, 'the gateways over the store cannot be listed');
    throw new GatehouseError('not_ready', 'the other gateways cannot be listed (the store is out of reach); ask with scope=local for this gateway\'s trail alone');
  }
}

function reachedOf(a: Reached<unknown>): { name: string; ok: boolean; error?: string } {
  return a.ok ? { name: a.gateway, ok: true } : { name: a.gateway, ok: false, error: a.error };
}

/** Each peer's own export (JSON lines, its chain order), opened as the caller; all or none. */
async function openPeerExports(peers: Peer[], filters: Record<string, string>, request: FastifyRequest, ca: string): Promise<{ name: string; res: IncomingMessage }[]> {
  const headers = forwardable(request.headers, request.id);
  if (headers === null) throw new GatehouseError('invalid_request', 'an export across gateways forwards your token to each of them, and a client certificate cannot be forwarded: log in for a token, or export each gateway with scope=local', { field: 'querystring.scope' });
  const path = `/v1/audit/export?${new URLSearchParams({ ...filters, scope: 'local', format: 'jsonl' })}`;
  const opened = await Promise.allSettled(peers.map(async (p) => ({ name: p.name, res: await peerGet(p, path, headers, ca) })));
  const failed = opened.findIndex((o) => o.status === 'rejected');
  if (failed < 0) return opened.map((o) => (o as PromiseFulfilledResult<{ name: string; res: IncomingMessage }>).value);
  for (const o of opened) if (o.status === 'fulfilled') o.value.res.destroy();
  const why = ((opened[failed] as PromiseRejectedResult).reason as Error).message;
  throw new GatehouseError('not_ready', `gateway ${peers[failed]!.name} could not be asked for its trail (${why}); nothing was exported. Export each gateway with scope=local meanwhile`);
}

/**
 * An export across gateways: this gateway's chain, then each other's, each in its own chain order
 * (a chain is verified in that order); every event names its gateway (CSV: a first column).
 */
async function* exportAcross(first: AuditEvent[][], rest: Iterator<AuditEvent[]>, format: 'csv' | 'jsonl', self: string, peers: { name: string; res: IncomingMessage }[]): AsyncGenerator<string> {
  const line = (e: AuditEvent, gateway: string) => (format === 'csv' ? `${csvCell(gateway)},${csvRecord(e)}` : `${JSON.stringify({ ...e, gateway })}\n`);
  try {
    if (format === 'csv') yield `gateway,${CSV_HEADER}`;
    for (const page of first) yield page.map((e) => line(e, self)).join('');
    if (first.length > 0) for (let next = rest.next(); !next.done; next = rest.next()) yield next.value.map((e) => line(e, self)).join('');
    for (const { name, res } of peers) {
      let batch = '';
      for await (const text of createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY })) {
        if (text === '') continue;
        // A line that is not an event cuts the export (no complete 200) rather than pass for one.
        const event: unknown = JSON.parse(text);
        if (!isAuditEvent(event)) throw new Error(`gateway ${name} exported a line that is not an audit event`);
        batch += line(event, name);
        if (batch.length >= 16_384) {
          yield batch;
          batch = '';
        }
      }
      if (batch !== '') yield batch;
    }
  } finally {
    for (const p of peers) p.res.destroy();
  }
}

function* exportBody(first: AuditEvent[][], rest: Iterator<AuditEvent[]>, format: 'csv' | 'jsonl'): Generator<string> {
  const text = (page: AuditEvent[]) => page.map((e) => (format === 'csv' ? csvRecord(e) : `${JSON.stringify(e)}\n`)).join('');
  if (format === 'csv') yield CSV_HEADER;
  for (const page of first) yield text(page);
  if (first.length === 0) return;
  for (let next = rest.next(); !next.done; next = rest.next()) yield text(next.value);
}
