// Stage 1 of the pipeline: whatever credential a request carries becomes an Identity, or the
// request is refused with a reason. Order: a bearer token, else a client certificate presented in
// the TLS handshake, else the browser session cookie. A credential that is present but bad is
// refused outright; we never fall back to a weaker one.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type {} from '@fastify/cookie'; // request.cookies
import type { FastifyRequest } from 'fastify';
import type { Store } from '../store/index.js';
import { type BrowserSessions, CSRF_HEADER, SESSION_COOKIE } from './browser-sessions.js';
import type { AuthMethod, Identity } from './identity.js';
import { TokenError } from './token-error.js';
import type { TokenService } from './tokens.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const CERT_CACHE_MS = 2_000;

export type CertificateUser = (cert: X509Certificate) => { user: string; serial: string } | null;

export interface AuthenticatorDeps {
  store: Store;
  tokens: TokenService;
  sessions: BrowserSessions;
  certificateUser: CertificateUser;
}

export type Authenticate = (request: FastifyRequest) => Promise<Identity>;

export interface Authenticator extends Authenticate {
  /** Drops a revoked certificate from the short verification cache at once. */
  forgetCertificate(serial: string): void;
}

/** Certificate serials as we store them: lower-case hex without leading zeros. */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+(?=.)/, '');
}

export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  const certCache = new Map<string, { identity: Identity; until: number }>();

  const fromCertificate = async (socket: TLSSocket): Promise<Identity | undefined> => {
    const peer = socket.getPeerCertificate?.();
    if (!peer || !peer.raw) return undefined; // none presented
    if (!socket.authorized) throw new TokenError('foreign_ca', String(socket.authorizationError ?? 'not signed by our CA'));
    const x509 = new X509Certificate(peer.raw);
    const named = deps.certificateUser(x509);
    if (!named) throw new TokenError('not_a_user', x509.subject.replaceAll('\n', ', '));
    const serial = normalizeSerial(named.serial);
    const cached = certCache.get(serial);
    if (cached && cached.until > Date.now()) return cached.identity;
    const row = await deps.store.db.selectFrom('client_certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
    if (!row) throw new TokenError('unknown', `certificate ${serial} was not issued by this gateway`);
    if (row.revoked_at) throw new TokenError('revoked', `certificate ${serial} revoked`);
    if (row.family_id && deps.tokens.isRevoked(row.family_id)) throw new TokenError('revoked', `login of certificate ${serial} ended`);
    if (Date.parse(row.not_after) <= Date.now()) throw new TokenError('expired', `certificate ${serial} expired`);
    if (row.user !== named.user) throw new TokenError('unknown', `certificate ${serial} names another user`);
    const identity: Identity = {
      user: row.user,
      groups: JSON.parse(row.groups) as string[],
      auth_method: row.auth_method as AuthMethod,
      credential: 'certificate',
      expires_at: new Date(row.not_after),
      ...(row.family_id ? { session_id: row.family_id } : {}),
    };
    // A short cache: revocation through DELETE /v1/certs clears it at once (forgetCertificate).
    certCache.set(serial, { identity, until: Date.now() + CERT_CACHE_MS });
    if (certCache.size > 10_000) certCache.delete(certCache.keys().next().value as string);
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
    if (byCert) return byCert;
    const cookie = request.cookies?.[SESSION_COOKIE];
    if (cookie) {
      const csrf = request.headers[CSRF_HEADER];
      return deps.sessions.verify(cookie, typeof csrf === 'string' ? csrf : undefined, !SAFE_METHODS.has(request.method));
    }
    throw new TokenError('missing', 'no bearer token, client certificate or session cookie');
  };
  return Object.assign(authenticate, { forgetCertificate: (serial: string) => certCache.delete(normalizeSerial(serial)) });
}
