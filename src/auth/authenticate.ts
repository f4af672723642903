// Stage 1 of the pipeline: whatever credential a request carries becomes an Identity, or the
// request is refused with a reason. Order: a bearer token, else a client certificate presented in
// the TLS handshake, else the browser session cookie. A credential that is present but bad is
// refused outright; we never fall back to a weaker one.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type {} from '@fastify/cookie'; // request.cookies
import type { FastifyRequest } from 'fastify';
import type { Store } from '../store/index.js';
import { GatehouseError } from '../wire/index.js';
import { type BrowserSessions, CSRF_HEADER, SESSION_COOKIE } from './browser-sessions.js';
import { type AuthMethod, type Identity, posixUserOf } from '../identity/index.js';
import { plainText } from './audit-text.js';
import { TokenError } from './token-error.js';
import type { DirectoryGuard } from './directory-guard.js';
import type { TokenService } from './tokens.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type CertificateUser = (cert: X509Certificate) => { user: string; serial: string } | null;

export interface AuthenticatorDeps {
  store: Store;
  tokens: TokenService;
  sessions: BrowserSessions;
  certificateUser: CertificateUser;
  /** Asks the directory again for an LDAP login's certificate or session when its last answer is old. */
  directory?: DirectoryGuard;
}

export type Authenticate = (request: FastifyRequest) => Promise<Identity>;

export interface Authenticator extends Authenticate {
  /** Nothing is cached any more (every check reads the store); kept for the routes that call it on revocation. */
  forgetCertificate(serial: string): void;
}

/** Certificate serials as we store them: lower-case hex without leading zeros. */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+(?=.)/, '');
}

export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  const fromCertificate = async (socket: TLSSocket): Promise<Identity | undefined> => {
    const peer = socket.getPeerCertificate?.();
    if (!peer || !peer.raw) return undefined; // none presented
    if (!socket.authorized) throw new TokenError('foreign_ca', String(socket.authorizationError ?? 'not signed by our CA'));
    const x509 = new X509Certificate(peer.raw);
    const named = deps.certificateUser(x509);
    if (!named) throw new TokenError('not_a_user', plainText(x509.subject.replaceAll('\n', ', ')));
    const serial = normalizeSerial(named.serial);
    const now = deps.tokens.clock();
    // The certificate and the login it was issued under: it works only while both do. Read on every
    // request, with no cache: a certificate or login revoked through another gateway over this store
    // is refused here at once. One primary-key lookup and join, the same cost a revocation check needs anyway.
    // A store that cannot be reached refuses the request (503), never accepts the certificate.
    const row = await deps.store.db
      .selectFrom('client_certificates as c')
      .leftJoin('token_families as f', 'f.id', 'c.family_id')
      .select(['c.serial', 'c.user', 'c.groups', 'c.auth_method', 'c.family_id', 'c.not_after', 'c.revoked_at', 'f.expires_at as login_expires_at', 'f.revoked_at as login_revoked_at', 'f.posix_user', 'f.groups as login_groups'])
      .where('c.serial', '=', serial)
      .executeTakeFirst()
      .catch(() => Promise.reject(new GatehouseError('not_ready', 'the gateway cannot reach its store to check certificates; try again shortly')));
    if (!row) throw new TokenError('unknown', `certificate ${serial} was not issued by this gateway`, { user: named.user, groups: [], auth_method: 'unknown', verified: false });
    // The groups are the login's as they are now, not as they were when the certificate was issued:
    // a refresh of an LDAP login writes the directory's groups to the login (directory-check.ts), and
    // a group taken away there must not live on in a certificate for the rest of certs.client_ttl.
    const owner = { user: row.user, groups: JSON.parse(row.login_groups ?? row.groups) as string[], auth_method: row.auth_method, verified: true, ...(row.family_id ? { session_id: row.family_id } : {}) };
    if (row.revoked_at) throw new TokenError('revoked', `certificate ${serial} revoked`, owner);
    if (!row.family_id || !row.login_expires_at) throw new TokenError('revoked', `certificate ${serial} belongs to no login of this gateway`, owner);
    if (row.login_revoked_at || deps.tokens.isRevoked(row.family_id)) throw new TokenError('revoked', `login of certificate ${serial} ended`, owner);
    if (Date.parse(row.not_after) <= now) throw new TokenError('expired', `certificate ${serial} expired`, owner);
    if (Date.parse(row.login_expires_at) <= now) throw new TokenError('expired', `the login of certificate ${serial} has ended`, owner);
    if (row.user !== named.user) throw new TokenError('unknown', `certificate ${serial} names another user`, { ...owner, verified: false, user: named.user });
    // The POSIX account is the login's too: a certificate carries what its login carries.
    const posixUser = posixUserOf(row.posix_user);
    const identity: Identity = {
      user: row.user,
      groups: owner.groups,
      auth_method: row.auth_method as AuthMethod,
      credential: 'certificate',
      expires_at: new Date(Math.min(Date.parse(row.not_after), Date.parse(row.login_expires_at))),
      session_id: row.family_id,
      ...(posixUser !== undefined ? { posix_user: posixUser } : {}),
    };
    return identity;
  };

  const authenticate: Authenticate = async (request) => {
    const header = request.headers.authorization;
    if (header !== undefined) {
      const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header);
      if (!match) throw new TokenError('malformed', 'Authorization header is not "Bearer <token>"');
      return deps.tokens.verifyAccess(match[1]!);
    }
    const byCert = await fromCertificate(request.raw.socket as TLSSocket);
    if (byCert) return deps.directory ? deps.directory.current(byCert) : byCert;
    const cookie = request.cookies?.[SESSION_COOKIE];
    if (cookie) {
      const csrf = request.headers[CSRF_HEADER];
      const bySession = await deps.sessions.verify(cookie, typeof csrf === 'string' ? csrf : undefined, !SAFE_METHODS.has(request.method));
      return deps.directory ? deps.directory.current(bySession) : bySession;
    }
    throw new TokenError('missing', 'no bearer token, client certificate or session cookie');
  };
  return Object.assign(authenticate, { forgetCertificate: (_serial: string) => undefined });
}
