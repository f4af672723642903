// What every identity route shares: the services, the audit door and the gateway's public URL.
import type { FastifyRequest } from 'fastify';
import { actorOf, type AuditInput, type AuditRecorder, recordOrFail } from '../../audit/index.js';
import type { Authorizer } from '../../identity/index.js';
import type { Store } from '../../store/index.js';
import type { Authenticator } from '../authenticate.js';
import type { BrowserSessions } from '../browser-sessions.js';
import type { CertificateSigner, LdapLogin, OidcLogin } from '../ports.js';
import type { SigningKeys } from '../signing-keys.js';
import type { KnownDeviceCodes, LoginThrottle, PendingSignIns } from '../throttle.js';
import type { TokenService } from '../tokens.js';

export interface RouteContext {
  store: Store;
  keys: SigningKeys;
  /** Public keys published beside the token keys (the audit checkpoint key); never accepted for tokens. */
  extraJwks: () => object[];
  tokens: TokenService;
  sessions: BrowserSessions;
  throttle: LoginThrottle;
  /** Browser sign-ins one address keeps pending (login.max_sign_ins_per_address); the oldest are evicted. */
  signInStarts: PendingSignIns;
  /** The device codes this gateway handed out; a poll with any other is answered locally. */
  deviceCodes: KnownDeviceCodes;
  authenticate: Authenticator;
  ldap: LdapLogin | undefined;
  oidc: OidcLogin | undefined;
  signer: CertificateSigner;
  caCertificate: string;
  clientTtlSeconds: number;
  audit: AuditRecorder;
  /** Decides whether someone may act on another person's certificate; absent, only owners may. */
  authorizer: Authorizer | undefined;
  /** https://host:port where browsers and the IdP reach this gateway. */
  publicUrl: () => string;
}

/** Records one decision about `request`, failing the request closed when the trail cannot take it. */
export function auditFor(ctx: RouteContext, request: FastifyRequest, identity: { user: string; groups: readonly string[]; auth_method: string } | undefined, event: Omit<AuditInput, 'actor' | 'request_id'>): Promise<void> {
  return recordOrFail(ctx.audit, { ...event, actor: actorOf(identity, request.ip), request_id: request.id }, request.log);
}
