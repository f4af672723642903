// The admission ticket: the gateway's signed word that a user may run this exact spec with these
// resources, once, soon. The engine verifies it against the key of the gateway's own mTLS client
// certificate, so reaching the engine's port without the gateway's key gets nothing. That key is
// Ed25519 and tickets are EdDSA only: signing one takes tens of microseconds where RS256 took about
// a millisecond of every submission; an RS256 ticket (of a gateway before this) is refused.
// Signed here with node:crypto's one-shot Ed25519, synchronously: jose signs through WebCrypto,
// a hop to the thread pool and back that cost more than the signature and let the record's
// insert run before the handover could leave. Checked the same way, synchronously, with the claims
// checked as jose checked them (verifyAdmissionTicket).
import { randomUUID, type KeyObject, sign, verify } from 'node:crypto';
import type { Resources } from './jobs.js';

export const TICKET_HEADER = 'gatehouse-admission';
export const TICKET_ISSUER = 'gatehouse-gateway';
export const TICKET_AUDIENCE = 'gatehouse-engine';
const TICKET_TYPE = 'gatehouse-admission+jwt';
/** The one signature algorithm a ticket may carry (Ed25519). */
export const TICKET_ALGORITHM = 'EdDSA';
/** A ticket is spent within seconds of being issued; a longer one is refused as a forgery risk. */
export const TICKET_MAX_LIFETIME_S = 300;
export const TICKET_DEFAULT_LIFETIME_S = 60;

export interface AdmissionClaims {
  /** The job id the gateway chose: the same id on both sides. */
  job: string;
  user: string;
  /** jobSpecHash(spec) of the admitted spec. */
  spec: string;
  granted: Resources;
  /**
   * Set when the gateway authorized overwriting a dataset the user does not own (admin on it by
   * policy): the owner it had then, null for none. Without it, an overwrite may replace only a
   * dataset whose manifest names `user` as its owner.
   */
  replaces?: { owner: string | null };
  jti: string;
  exp: number;
  iat: number;
}

export type TicketProblem = 'missing' | 'malformed' | 'foreign' | 'expired' | 'replayed' | 'mismatch';

export class TicketError extends Error {
  override readonly name = 'TicketError';
  constructor(
    readonly problem: TicketProblem,
    message: string,
  ) {
    super(message);
  }
}

/** The protected header every ticket carries, encoded once. */
const TICKET_HEADER_B64 = Buffer.from(JSON.stringify({ alg: TICKET_ALGORITHM, typ: TICKET_TYPE })).toString('base64url');

/**
 * A compact JWS (RFC 7515) over the claims, EdDSA with `key` (Ed25519 only: any other key throws).
 * `now` (ms since the epoch) is the issuing clock; tests pass a past one to mint a ticket already expired.
 */
export function signAdmissionTicket(
  claims: { job: string; user: string; spec: string; granted: Resources; replaces?: { owner: string | null }; lifetimeS?: number },
  key: KeyObject,
  now: () => number = Date.now,
): string {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new TypeError(`an admission ticket is signed with an Ed25519 private key, not ${key.asymmetricKeyType ?? key.type}`);
  const lifetime = Math.min(claims.lifetimeS ?? TICKET_DEFAULT_LIFETIME_S, TICKET_MAX_LIFETIME_S);
  const iat = Math.floor(now() / 1000);
  const payload = {
    job: claims.job,
    spec: claims.spec,
    granted: claims.granted,
    ...(claims.replaces ? { replaces: { owner: claims.replaces.owner } } : {}),
    iss: TICKET_ISSUER,
    aud: TICKET_AUDIENCE,
    sub: claims.user,
    jti: randomUUID(),
    iat,
    exp: iat + lifetime,
  };
  const input = `${TICKET_HEADER_B64}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

/** Seconds of clock difference between the gateway and the engine that exp and nbf allow. */
const CLOCK_TOLERANCE_S = 5;

/** Whether a checked ticket's exp has passed, with the same tolerance the check gave it (a held job's release). */
export function ticketExpired(claims: Pick<AdmissionClaims, 'exp'>, now: () => number = Date.now): boolean {
  return claims.exp <= Math.floor(now() / 1000) - CLOCK_TOLERANCE_S;
}
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Checks signature, issuer, audience, type, lifetime and shape; replay and spec binding are the caller's.
 * Synchronously, with node:crypto's one-shot Ed25519 verify: jose verified through WebCrypto, a hop to
 * the thread pool and back on every submission (0.84 ms of the engine's intake at load 2, BENCHMARKS
 * session 34). The claims are checked as jose's jwtVerify checked them with the options it was given
 * (issuer, audience, typ, required sub/jti/iat/exp, 5 s of clock tolerance); the protected header
 * must be the one the gateway writes, byte for byte. `now`: ms since the epoch, for tests.
 */
export async function verifyAdmissionTicket(token: string | undefined, key: KeyObject, now: () => number = Date.now): Promise<AdmissionClaims> {
  return checkTicket(token, key, now);
}

function checkTicket(token: string | undefined, key: KeyObject, now: () => number): AdmissionClaims {
  if (token === undefined || token === '') throw new TicketError('missing', `an admission ticket is required (${TICKET_HEADER} header): jobs reach the engine through the gateway`);
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) throw new TicketError('malformed', 'the admission ticket is not valid: not a compact JWS');
  const [head, body, signature] = parts as [string, string, string];
  if (head !== TICKET_HEADER_B64) {
    // Another algorithm (RS256 from a gateway before Ed25519) is named as such; anything else is malformed.
    const alg = parsedJson(head)?.alg;
    if (typeof alg === 'string' && alg !== TICKET_ALGORITHM) throw foreignAlgorithm();
    throw new TicketError('malformed', `the admission ticket is not valid: its header is not {"alg":"${TICKET_ALGORITHM}","typ":"${TICKET_TYPE}"}`);
  }
  // A key of another kind behind the certificate cannot check an Ed25519 signature (nor be tricked into another scheme).
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') throw foreignAlgorithm();
  const sig = Buffer.from(signature, 'base64url');
  if (sig.length !== 64 || !verify(null, Buffer.from(`${head}.${body}`), key, sig)) throw new TicketError('foreign', 'the admission ticket was not signed by this gateway');
  const payload = parsedJson(body);
  if (payload === undefined) throw new TicketError('malformed', 'the admission ticket is not valid: its claims are not a JSON object');
  // As jose's jwtVerify with issuer, audience, requiredClaims and clockTolerance.
  for (const claim of ['iss', 'aud', 'sub', 'jti', 'iat', 'exp']) {
    if (!(claim in payload)) throw new TicketError('malformed', `the admission ticket is not valid: missing required "${claim}" claim`);
  }
  if (payload.iss !== TICKET_ISSUER) throw new TicketError('malformed', 'the admission ticket is not valid: unexpected "iss" claim value');
  const aud = payload.aud;
  if (!(aud === TICKET_AUDIENCE || (Array.isArray(aud) && aud.includes(TICKET_AUDIENCE)))) throw new TicketError('malformed', 'the admission ticket is not valid: unexpected "aud" claim value');
  const nowS = Math.floor(now() / 1000);
  for (const claim of ['iat', 'nbf', 'exp']) {
    const v = payload[claim];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw new TicketError('malformed', `the admission ticket is not valid: "${claim}" claim must be a number`);
  }
  if (typeof payload.nbf === 'number' && payload.nbf > nowS + CLOCK_TOLERANCE_S) throw new TicketError('malformed', 'the admission ticket is not valid: "nbf" claim timestamp check failed');
  if ((payload.exp as number) <= nowS - CLOCK_TOLERANCE_S) throw new TicketError('expired', 'the admission ticket has expired; submit the job again');
  const { sub, jti, iat, exp, job, spec, granted, replaces } = payload;
  if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > TICKET_MAX_LIFETIME_S) {
    throw new TicketError('malformed', `an admission ticket lives ${TICKET_MAX_LIFETIME_S} s at most`);
  }
  if (typeof sub !== 'string' || typeof jti !== 'string' || typeof job !== 'string' || typeof spec !== 'string' || !isResources(granted)) {
    throw new TicketError('malformed', 'the admission ticket lacks the job, user, spec hash or granted resources');
  }
  if (replaces !== undefined && !isReplaces(replaces)) throw new TicketError('malformed', 'the admission ticket names the owner of a dataset to replace in an unknown form');
  return { job, user: sub, spec, granted, ...(replaces !== undefined ? { replaces } : {}), jti, iat, exp };
}

function foreignAlgorithm(): TicketError {
  return new TicketError('foreign', `the admission ticket must be signed ${TICKET_ALGORITHM} (Ed25519) with the key of the gateway's client certificate`);
}

/** A base64url segment's JSON object, or undefined for anything else. */
function parsedJson(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function isReplaces(value: unknown): value is { owner: string | null } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  const owner = (value as { owner?: unknown }).owner;
  return keys.length === 1 && keys[0] === 'owner' && (owner === null || typeof owner === 'string');
}

function isResources(value: unknown): value is Resources {
  if (value === null || typeof value !== 'object') return false;
  const r = value as Record<string, unknown>;
  return [r.cores, r.memory_mb, r.time_limit_s].every((n) => Number.isInteger(n) && (n as number) > 0);
}
