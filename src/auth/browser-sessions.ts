// The browser's credential after an OIDC sign-in: an opaque session cookie (HttpOnly, Secure,
// SameSite=Lax) bound to one login, and a CSRF token the page must echo on every change.
// Both are stored as hashes; ending the login ends the session. Both are named __Host-: a browser
// keeps such a cookie only when it is Secure, for Path=/ and without a Domain, so a sibling subdomain
// or a plain-HTTP answer cannot plant one (login CSRF by planting the attacker's session).
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/index.js';
import { constantTimeEqual } from './constant-time.js';
import type { Identity } from '../identity/index.js';
import { TokenError } from './token-error.js';
import { ownerOf, sha256, subjectOf, type TokenService } from './tokens.js';

export const SESSION_COOKIE = '__Host-gatehouse_session';
export const CSRF_COOKIE = '__Host-gatehouse_csrf';
/** What a __Host- cookie must carry (Secure, Path=/, no Domain), and SameSite=Lax. */
export const HOST_COOKIE = { path: '/', secure: true, sameSite: 'lax' } as const;
export const CSRF_HEADER = 'x-csrf-token';

export interface NewSession {
  cookie: string;
  csrf: string;
  expiresAt: Date;
}

export class BrowserSessions {
  constructor(
    private readonly store: Store,
    private readonly tokens: TokenService,
  ) {}

  async create(sessionId: string): Promise<NewSession> {
    const family = await this.tokens.family(sessionId);
    const cookie = `ghs_${randomBytes(32).toString('base64url')}`;
    const csrf = randomBytes(24).toString('base64url');
    await this.store.db
      .insertInto('refresh_tokens')
      .values({ hash: sha256(cookie), family_id: sessionId, kind: 'session', csrf_hash: sha256(csrf), issued_at: new Date(this.tokens.clock()).toISOString(), expires_at: family.expires_at, used_at: null })
      .execute();
    return { cookie, csrf, expiresAt: new Date(family.expires_at) };
  }

  /** The session cookie → Identity; `csrf` is checked when the request changes something. */
  async verify(cookie: string, csrf: string | undefined, stateChanging: boolean): Promise<Identity> {
    // One query: the session and the login it belongs to.
    const row = await this.store.db
      .selectFrom('refresh_tokens as s')
      .innerJoin('token_families as f', 'f.id', 's.family_id')
      .select(['s.family_id', 's.csrf_hash', 's.expires_at', 'f.user', 'f.groups', 'f.auth_method', 'f.posix_user', 'f.revoked_at'])
      .where('s.hash', '=', sha256(cookie))
      .where('s.kind', '=', 'session')
      .executeTakeFirst();
    if (!row) throw new TokenError('unknown', 'no such session');
    const owner = ownerOf({ ...row, id: row.family_id });
    if (Date.parse(row.expires_at) <= this.tokens.clock()) throw new TokenError('expired', 'session expired', owner);
    if (row.revoked_at || this.tokens.isRevoked(row.family_id)) throw new TokenError('revoked', 'login ended', owner);
    if (stateChanging && !(csrf && row.csrf_hash && constantTimeEqual(sha256(csrf), row.csrf_hash))) {
      throw new TokenError('csrf', `a cookie-authenticated change needs the ${CSRF_HEADER} header`);
    }
    return { ...subjectOf(row), credential: 'session', expires_at: new Date(row.expires_at), session_id: row.family_id };
  }
}
