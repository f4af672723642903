// The last line of defence against a secret in the trail. Rooms must not send one at all; when a
// value still looks like one (a private key, a JWT, the gateway's own refresh or session tokens, a
// bearer credential) or sits in a field named like one, the value is replaced by "[redacted: kind]"
// and the event is recorded with `details.redacted` naming the fields. Never refused: a refused
// event would let whoever can put such text in a request (a token's kid, an IdP's ?error=) silence
// the trail for that request.
const SECRET_FIELD = /pass(word)?|secret|token|cookie|private|authorization|csr|^key$|code_verifier|device_code|user_code|csrf|nonce|^code$/i;

/** What a value shaped like a secret is, in the order they are tried. */
const SECRET_VALUES: [kind: string, pattern: RegExp][] = [
  ['pem', /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PRIVATE KEY-----/i],
  // A JWS/JWE: a base64url JSON header ("{"), then a dot: the gateway's access tokens, an IdP's ID tokens.
  ['jwt', /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\./],
  // The gateway's own opaque credentials (src/auth): refresh tokens and browser sessions.
  ['refresh_token', /(?<![A-Za-z0-9_])ghr_[A-Za-z0-9_-]{16,}/],
  ['session', /(?<![A-Za-z0-9_])ghs_[A-Za-z0-9_-]{16,}/],
  // An Authorization header's credential, whatever the token inside it looks like.
  ['authorization', /\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/i],
];

/** The kind of secret a text looks like, or null. */
export function secretKind(text: string): string | null {
  for (const [kind, pattern] of SECRET_VALUES) if (pattern.test(text)) return kind;
  return null;
}

export interface Redacted<T> {
  value: T;
  /** Paths of the fields replaced (event.reason, event.details.kid, ...). */
  redacted: string[];
}

/**
 * A copy of `value` with every secret-looking string, and every value in a secret-named field
 * (other than null, false or true), replaced by "[redacted: kind]".
 */
export function redactSecrets<T>(value: T, path = 'event'): Redacted<T> {
  const redacted: string[] = [];
  const walk = (v: unknown, at: string): unknown => {
    if (typeof v === 'string') {
      const kind = secretKind(v);
      if (kind === null) return v;
      redacted.push(at);
      return `[redacted: ${kind}]`;
    }
    if (Array.isArray(v)) {
      let changed = false;
      const out = Array.from(v, (x, i) => {
        const y = walk(x, `${at}[${i}]`);
        if (y !== x) changed = true;
        return y;
      });
      return changed ? out : v;
    }
    if (v && typeof v === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(v))) {
      let changed = false;
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        let y: unknown;
        if (SECRET_FIELD.test(k) && x !== null && x !== undefined && typeof x !== 'boolean') {
          redacted.push(`${at}.${k}`);
          y = `[redacted: ${typeof x === 'string' ? (secretKind(x) ?? 'field') : 'field'}]`;
        } else y = walk(x, `${at}.${k}`);
        if (y !== x) changed = true;
        out[k] = y;
      }
      return changed ? out : v;
    }
    return v;
  };
  return { value: walk(value, path) as T, redacted };
}
