// The trail across gateways. Each gateway over a shared store keeps its own hash chain on its own
// disk (fail-closed per gateway: one that cannot write refuses, the others go on), so an auditor's
// question is asked of every gateway and the answers merged, newest first, each event naming the
// gateway whose chain holds it. Chosen over one chain serialized in PostgreSQL because every
// decision would then wait on a lock across the network, and the trail's durability, signed
// checkpoints and witness stay what they are on one gateway.
//
// A peer is asked with the caller's own credential (bearer token or session cookie, forwarded over
// TLS to a gateway certificate of our CA): it authenticates, authorizes and records the question in
// its own trail as for any request, so no gateway reads another's trail on its own authority.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { checkServerIdentity } from 'node:tls';
import { GatehouseError } from '../wire/index.js';
import type { AuditEvent } from './event.js';
import { encodeCursor } from './filter.js';
import type { AuditPage } from './query.js';

export interface Peer {
  name: string;
  url: string;
  /** Set when the registry knows this chain cannot be asked (gateways.ts): never asked, reported as not answering. */
  problem?: string;
}

export interface AuditPeers {
  /** This gateway's name, as events of its chain are labelled. */
  self: string;
  /** The other gateways over the store now. */
  list(): Promise<Peer[]>;
  /** Our CA, which every gateway's certificate is issued by. */
  ca: string;
}

/** What a gateway's chain said, or why it could not be asked. */
export type Reached<T> = { gateway: string; ok: true; value: T } | { gateway: string; ok: false; error: string };

const PEER_TIMEOUT_MS = 10_000;
const PEER_BODY_MAX = 64 * 1024 * 1024;
/** The common name of gateway certificates: a peer must present one (not the engine's, also of our CA). */
const GATEWAY_CN = 'gatehouse-gateway';

/**
 * The caller's credential to forward, or null (a client certificate cannot be forwarded), with this
 * request's own id: the one this gateway answers and records, so every gateway's audit.query of one
 * question carries the same request id (the caller's X-Request-Id only when we kept it).
 */
export function forwardable(headers: Readonly<Record<string, string | string[] | undefined>>, requestId: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  if (typeof headers.authorization === 'string') out.authorization = headers.authorization;
  else if (typeof headers.cookie === 'string') out.cookie = headers.cookie;
  else return null;
  out['x-request-id'] = requestId;
  return out;
}

/**
 * GET path on a peer as the caller: the response once it answers 200 (its body not yet read), or
 * why not. Only a gateway certificate of our CA, for the peer's own host, is trusted with the credential.
 */
export function peerGet(peer: Peer, path: string, headers: Record<string, string>, ca: string, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (peer.problem !== undefined) {
      reject(new Error(peer.problem));
      return;
    }
    const req = request(
      new URL(path, peer.url),
      {
        method: 'GET',
        ca,
        headers,
        timeout: PEER_TIMEOUT_MS,
        ...(signal !== undefined ? { signal } : {}),
        checkServerIdentity: (host: string, cert: PeerCertificate) => {
          const wrongName = checkServerIdentity(host, cert);
          if (wrongName) return wrongName;
          if (cert.subject?.CN !== GATEWAY_CN) return new Error(`${peer.url} is not a gateway (certificate ${cert.subject?.CN ?? 'without a name'})`);
          return undefined;
        },
      },
      (res) => {
        if (res.statusCode === 200) {
          req.setTimeout(0); // a long export streams for as long as it takes (an ask is bounded by its signal)
          resolve(res);
          return;
        }
        readJson(res, req)
          .then((body) => {
            const e = body as { error?: string; message?: string };
            reject(new Error(`answered ${res.statusCode} ${e.error ?? ''}: ${e.message ?? ''}`.trim()));
          })
          .catch(() => reject(new Error(`answered ${res.statusCode}`)));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PEER_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * GET path on a peer as the caller; its JSON answer once `check` accepts it, or why not. The whole
 * answer, body included, is bounded in time: a peer that sends its headers then stalls (or trickles)
 * is left out rather than waited on.
 */
export async function askPeer<T>(peer: Peer, path: string, headers: Record<string, string>, ca: string, check: (v: unknown) => v is T): Promise<T> {
  const signal = AbortSignal.timeout(PEER_TIMEOUT_MS);
  try {
    const value = await readJson(await peerGet(peer, path, { ...headers, accept: 'application/json' }, ca, signal));
    if (!check(value)) throw new Error('answered 200 with something that is not an answer of this API');
    return value;
  } catch (err) {
    throw signal.aborted ? new Error(`no whole answer within ${PEER_TIMEOUT_MS} ms`) : err;
  }
}

function readJson(res: IncomingMessage, req?: ClientRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > PEER_BODY_MAX) {
        res.destroy();
        req?.destroy();
        reject(new Error(`answer over ${PEER_BODY_MAX} bytes`));
      } else chunks.push(c);
    });
    // A body cut off (the peer gone, the ask aborted) ends in close without end: never a JSON answer.
    res.on('close', () => {
      if (!res.complete) reject(new Error('answer cut off'));
    });
    res.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new Error('answered without JSON'));
      }
    });
    res.on('error', reject);
  });
}

/** Asks every peer; each answer or its failure, by gateway. */
export async function askAll<T>(peers: readonly Peer[], path: string, headers: Record<string, string> | null, ca: string, check: (v: unknown) => v is T): Promise<Reached<T>[]> {
  return Promise.all(
    peers.map(async (p): Promise<Reached<T>> => {
      if (headers === null) return { gateway: p.name, ok: false, error: 'not asked: a client certificate cannot be forwarded to another gateway; ask it directly or use a token' };
      try {
        return { gateway: p.name, ok: true, value: await askPeer<T>(p, path, headers, ca, check) };
      } catch (err) {
        return { gateway: p.name, ok: false, error: (err as Error).message };
      }
    }),
  );
}

// What a peer answers is checked for shape before it is merged: a gateway certificate proves who
// answers, not that the answer is whole, and junk must name the peer as not answering, not fail the
// whole question (a 500) or slip into an auditor's page or export.
const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An audit event as the API gives it out (event.ts), with a time that sorts. */
export function isAuditEvent(v: unknown): v is AuditEvent {
  if (!isObject(v) || !Number.isSafeInteger(v.id) || (v.id as number) < 0 || !isString(v.time) || Number.isNaN(Date.parse(v.time))) return false;
  const a = v.actor;
  // user, auth_method and ip are null where no one is known (a failed login) or for the gateway itself.
  const textOrNull = (x: unknown) => x === null || isString(x);
  if (!isObject(a) || !textOrNull(a.user) || !Array.isArray(a.groups) || !a.groups.every(isString) || !textOrNull(a.auth_method) || !textOrNull(a.ip)) return false;
  return (
    isString(v.action) &&
    isString(v.object) &&
    isString(v.decision) &&
    isString(v.reason) &&
    (v.policy_version === null || isString(v.policy_version)) &&
    (v.request_id === null || isString(v.request_id)) &&
    isObject(v.details) &&
    isString(v.prev_hash) &&
    isString(v.hash)
  );
}

export function isAuditPage(v: unknown): v is AuditPage {
  return isObject(v) && Array.isArray(v.events) && v.events.every(isAuditEvent) && (v.next_cursor === null || isString(v.next_cursor));
}

export function isVerifyReport(v: unknown): v is { ok: boolean } & Record<string, unknown> {
  return isObject(v) && typeof v.ok === 'boolean';
}

// A page across gateways is ordered by time, then gateway name, then the event's id, all descending.
// Its cursor is the last event given: (time, gateway, id). Each gateway's own cursor follows from it.
interface MergedCursor {
  t: number;
  g: string;
  i: number;
}

const MERGED = 'm.';

export function isMergedCursor(cursor: string): boolean {
  return cursor.startsWith(MERGED);
}

export function decodeMergedCursor(cursor: string): MergedCursor {
  try {
    const c = JSON.parse(Buffer.from(cursor.slice(MERGED.length), 'base64url').toString('utf8')) as MergedCursor;
    if (Number.isSafeInteger(c.t) && typeof c.g === 'string' && c.g.length <= 300 && Number.isSafeInteger(c.i) && c.i >= 0 && encodeMerged(c) === cursor) return c;
  } catch {
    // falls through to the refusal
  }
  throw new GatehouseError('invalid_request', 'cursor: not a cursor this gateway gave out (pass next_cursor from the previous page as is)', { field: 'querystring.cursor' });
}

function encodeMerged(c: MergedCursor): string {
  return MERGED + Buffer.from(JSON.stringify({ t: c.t, g: c.g, i: c.i })).toString('base64url');
}

/** One gateway's own cursor for "after the merged cursor": same time and name → after the id; a lower name → at that time too; a higher name → before it. */
export function cursorFor(gateway: string, c: MergedCursor): string {
  if (gateway === c.g) return encodeCursor(c.t, c.i);
  return gateway < c.g ? encodeCursor(c.t, Number.MAX_SAFE_INTEGER) : encodeCursor(c.t, 0);
}

export type LabelledEvent = AuditEvent & { gateway: string };

/** Merges each gateway's page (each newest first, `limit` long at most) into one page of `limit`. */
export function mergePages(pages: readonly { gateway: string; page: AuditPage }[], limit: number): { events: LabelledEvent[]; next_cursor: string | null } {
  const all: LabelledEvent[] = pages.flatMap(({ gateway, page }) => page.events.map((e) => ({ ...e, gateway })));
  all.sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.gateway < b.gateway ? 1 : a.gateway > b.gateway ? -1 : 0) || b.id - a.id);
  const events = all.slice(0, limit);
  const more = all.length > limit || pages.some((p) => p.page.next_cursor !== null);
  const last = events.at(-1);
  return { events, next_cursor: more && last ? encodeMerged({ t: Date.parse(last.time), g: last.gateway, i: last.id }) : null };
}
