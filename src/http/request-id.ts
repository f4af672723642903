// Request ids ordered by time (the UUIDv7 layout of RFC 9562: 48 bits of milliseconds, then random
// bits): the audit trail indexes them, and ids that grow keep that index appending at its end
// instead of touching a random page per event.
//
// A caller's X-Request-Id is kept (so one id follows a request across services) only when it cannot
// be a credential: the id is echoed in every answer, written in every log line and stored as the
// audit event's request_id, so a token pasted there would be kept verbatim.
import { createHash, randomUUID } from 'node:crypto';

export function timeOrderedId(now = Date.now()): string {
  // A random (v4) UUID with its first 48 bits replaced by the time and its version digit by 7: the
  // variant bits are already RFC 9562's, and 74 random bits remain, as before. randomUUID draws from
  // a buffered pool of the same CSPRNG; a randomBytes(16) call per request cost several times more.
  const u = randomUUID();
  const t = now.toString(16).padStart(12, '0');
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${u.slice(15)}`;
}

/** Any UUID, ours (timeOrderedId) included. */
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
/** A short id of plain characters (a trace id, `req-1`, `svc:42`). */
const SHORT = /^[A-Za-z0-9._:-]{1,64}$/;
export const MAX_CALLER_REQUEST_ID = 64;
/** A JWS (three dot-separated base64url parts, the last possibly empty) or a JWE (five). */
const JWT_SHAPED = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$|^[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){4}$/;
/** The gateway's own opaque credentials: refresh tokens (ghr_) and browser sessions (ghs_). */
const OWN_CREDENTIAL = /^gh[rs]_/i;

/** Whether a caller's X-Request-Id may be used as the request's id: a UUID, or short, plain and not shaped like a credential. */
export function acceptableRequestId(given: unknown): given is string {
  if (typeof given !== 'string') return false;
  if (UUID.test(given)) return true;
  return SHORT.test(given) && !JWT_SHAPED.test(given) && !OWN_CREDENTIAL.test(given);
}

/** What may be logged about a refused caller id: never the value, only its size and a short digest to match reports. */
export function describeRefusedId(given: string | string[]): { length: number; sha256_prefix: string } {
  const text = Array.isArray(given) ? given.join(',') : given;
  return { length: text.length, sha256_prefix: createHash('sha256').update(text).digest('hex').slice(0, 12) };
}
