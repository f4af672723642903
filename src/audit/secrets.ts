// The last line of defence against a secret in the trail. Rooms must not send one at all; when a
// value still looks like one (a private key, a JWT, the gateway's own refresh or session tokens, a
// bearer credential) or sits in a field named like one, the value is replaced by "[redacted: kind]"
// and the event is recorded with `details.redacted` naming the fields. Never refused: a refused
// event would let whoever can put such text in a request (a token's kid, an IdP's ?error=) silence
// the trail for that request.
const SECRET_FIELD = /pass(word)?|secret|token|cookie|private|authorization|csr|^key$|code_verifier|device_code|user_code|csrf|nonce|^code$/i;

/**
 * What a value shaped like a secret is, in the order they are tried, each with the text every match
 * of its pattern contains (compared without case): a string holding none of those texts cannot
 * match, and is passed by one test instead of one per pattern (the scan runs on every string of
 * every event). A new pattern needs its anchors here too (test/security/audit-redaction.test.ts).
 */
const SECRET_VALUES: [kind: string, anchors: string[], pattern: RegExp][] = [
  ['pem', ['PRIVATE KEY-----'], /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PRIVATE KEY-----/i],
  // A JWS/JWE: a base64url JSON header ("{"), then a dot: the gateway's access tokens, an IdP's ID tokens.
  ['jwt', ['eyJ'], /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\./],
  // The gateway's own opaque credentials (src/auth): refresh tokens and browser sessions.
  ['refresh_token', ['ghr_'], /(?<![A-Za-z0-9_])ghr_[A-Za-z0-9_-]{16,}/],
  ['session', ['ghs_'], /(?<![A-Za-z0-9_])ghs_[A-Za-z0-9_-]{16,}/],
  // An Authorization header's credential, whatever the token inside it looks like.
  ['authorization', ['Bearer', 'Basic'], /\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/i],
];

/**
 * Every anchor, without case: a string this does not match holds no secret-shaped value. Each
 * letter as a class ([pP]) rather than the i flag: the same matches for these ASCII anchors (the
 * flag maps no other character onto ASCII), and a third faster in V8.
 */
const MAY_HOLD_SECRET = new RegExp(
  SECRET_VALUES.flatMap(([, anchors]) => anchors.map((a) => a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/[a-z]/gi, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`))).join('|'),
);

/** The kind of secret a text looks like, or null. */
export function secretKind(text: string): string | null {
  if (!MAY_HOLD_SECRET.test(text)) return null;
  for (const [kind, , pattern] of SECRET_VALUES) if (pattern.test(text)) return kind;
  return null;
}

/** The anchors secretKind relies on, for the test that holds every pattern's matches to contain one. */
export const SECRET_ANCHORS: readonly (readonly [kind: string, anchors: readonly string[]])[] = SECRET_VALUES.map(([kind, anchors]) => [kind, anchors]);

/**
 * Field names already judged: the gateway writes a few dozen names over and over. Bounded, as
 * details may carry names from outside (a filter's fields); a name past the bound is tested as before.
 * `kind`: the name itself is shaped like a secret (a token used as a key), and the record would hold it.
 */
const fieldNames = new Map<string, { secret: boolean; kind: string | null }>();
function judgeField(name: string): { secret: boolean; kind: string | null } {
  let judged = fieldNames.get(name);
  if (judged === undefined) {
    judged = { secret: SECRET_FIELD.test(name), kind: secretKind(name) };
    if (fieldNames.size < 1024) fieldNames.set(name, judged);
  }
  return judged;
}

export interface Redacted<T> {
  value: T;
  /** Paths of the fields replaced (event.reason, event.details.kid, ...). */
  redacted: string[];
}

/**
 * A copy of `value` with every secret-looking string, and every value in a secret-named field
 * (other than null, false or true), replaced by "[redacted: kind]". What holds nothing to replace
 * is returned as it was, without a copy (the common case: nothing is allocated for it).
 */
export function redactSecrets<T>(value: T, path = 'event'): Redacted<T> {
  const redacted: string[] = [];
  // A string is tested where it is found; a path is spelled out only for what is replaced or
  // walked into (most strings hold nothing, and their paths would be made for nothing).
  const text = (x: string, at: string, key: string | number | null): string => {
    const kind = secretKind(x);
    if (kind === null) return x;
    redacted.push(key === null ? at : typeof key === 'number' ? `${at}[${key}]` : `${at}.${key}`);
    return `[redacted: ${kind}]`;
  };
  const walk = (v: unknown, at: string): unknown => {
    if (typeof v === 'string') return text(v, at, null);
    if (v === null || typeof v !== 'object') return v;
    if (ArrayBuffer.isView(v)) {
      // canonicalJson writes a Buffer's bytes as numbers (its toJSON), a typed array's as a numbered
      // object: a secret held as bytes reaches the record all the same. Judged as their text, and
      // replaced whole.
      const kind = secretKind(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1'));
      if (kind === null) return v;
      redacted.push(at);
      return `[redacted: ${kind}]`;
    }
    if (Array.isArray(v)) {
      let out: unknown[] | null = null;
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        const y = typeof x === 'string' ? text(x, at, i) : x !== null && typeof x === 'object' ? walk(x, `${at}[${i}]`) : x;
        if (y !== x) (out ??= Array.from(v))[i] = y;
      }
      return out ?? v;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      // Not a plain object: the record holds what canonicalJson writes for it, its toJSON() (a URL's
      // text, a Date's) or else its own fields, so that is what is scanned (and kept when redacted).
      const toJSON = (v as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        const json: unknown = toJSON.call(v);
        const y = walk(json, at);
        return y === json ? v : y;
      }
    }
    let out: Record<string, unknown> | null = null;
    let renamed = 0;
    for (const k of Object.keys(v)) {
      const x = (v as Record<string, unknown>)[k];
      let y: unknown = x;
      const field = judgeField(k);
      if (field.kind !== null) {
        // The name is the secret: the field goes under a name that says so (its value dropped with
        // it, as it was filed under the secret), and the path names the field without it.
        out ??= { ...(v as Record<string, unknown>) };
        delete out[k];
        renamed += 1;
        out[`[redacted: ${field.kind}]${renamed > 1 ? ` ${renamed}` : ''}`] = '[redacted: field]';
        redacted.push(`${at}.[redacted: ${field.kind}]`);
        continue;
      }
      if (field.secret && x !== null && x !== undefined && typeof x !== 'boolean') {
        redacted.push(`${at}.${k}`);
        y = `[redacted: ${typeof x === 'string' ? (secretKind(x) ?? 'field') : 'field'}]`;
      } else if (typeof x === 'string') y = text(x, at, k);
      else if (x !== null && typeof x === 'object') y = walk(x, `${at}.${k}`);
      if (y !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = y;
    }
    return out ?? v;
  };
  return { value: walk(value, path) as T, redacted };
}
