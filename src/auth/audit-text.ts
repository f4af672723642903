// What a client sent, as it may appear in the audit trail. Anything from outside (a token's kid or
// alg, the callback's ?error=, a username typed at a login, a certificate's subject) could carry a
// secret — a password typed in the wrong field, a key pasted as a kid — or text meant to trip the
// trail's secret filter. So a value is kept only when it is short and made of a plain charset;
// otherwise the trail gets a short hash of it (enough to tell two attempts apart, nothing to read).
import { createHash } from 'node:crypto';
import { isValidUsername } from '../identity/index.js';
import type { CredentialOwner } from './token-error.js';

const CODE = /^[A-Za-z0-9._:-]+$/;

/** `sha256:` and the first 16 characters of the value's hash (base64url): comparable, not readable. */
export function fingerprint(value: string): string {
  return `sha256:${createHash('sha256').update(value, 'utf8').digest('base64url').slice(0, 16)}`;
}

/** A protocol word (an OAuth error code, a kid, an alg): as is when plain and at most `max` long, else its fingerprint. */
export function codeOrHash(value: unknown, max = 40): string | null {
  if (value === undefined || value === null) return null;
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length <= max && CODE.test(text) ? text : fingerprint(text);
}

/** A username someone typed or a credential claims: as is when it is a valid username, else its fingerprint. */
export function userText(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  return isValidUsername(value) ? value : fingerprint(value);
}

/** Free text from a server we talk to (a provider's error description): printable ASCII only, cut to `max`. */
export function plainText(value: string, max = 200): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return printable.length <= max ? printable : `${printable.slice(0, max)}...`;
}

/**
 * The actor and details of a refused credential: a person whose genuine credential was refused
 * (revoked, expired, reused) is the actor; a name an unverified credential only claims goes to
 * details.claimed_user and the actor stays unknown.
 */
export function ownerFields(owner: CredentialOwner | undefined): { identity?: { user: string; groups: string[]; auth_method: string }; details: Record<string, unknown> } {
  if (!owner) return { details: {} };
  const session = owner.session_id ? { session_id: owner.session_id } : {};
  if (owner.verified && isValidUsername(owner.user)) return { identity: { user: owner.user, groups: owner.groups, auth_method: owner.auth_method }, details: { ...session } };
  return { details: { claimed_user: userText(owner.user), ...session } };
}
