// Composes src/auth for the gateway: keys and tokens over the store, the login methods the
// configuration enables (LDAP, an OIDC provider or the development one), the certificate signer,
// and stage 1 of the pipeline. The gateway's app file installs what this returns.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AuditRecorder } from '../audit/index.js';
import { type Config, ConfigError, durationSeconds } from '../config/index.js';
import type { Authorizer, LoginLookup, PersonLookup } from '../identity/index.js';
import type { Store } from '../store/index.js';
import { CERT_FILES, readPrivateKey } from '../wire/index.js';
import { type Authenticator, createAuthenticator } from './authenticate.js';
import { BrowserSessions } from './browser-sessions.js';
import { DEV_CLIENT_ID } from './dev-idp/index.js';
import { installAuthentication } from './hook.js';
import { personLookup } from './directory-check.js';
import { DirectoryGuard } from './directory-guard.js';
import { createLdapLogin } from './ldap.js';
import { loginLookup } from './login-now.js';
import { createOidcClient } from './oidc.js';
import type { CertificateSigner, OidcLogin } from './ports.js';
import { installCertificateRoutes } from './routes/certificate-routes.js';
import { installIdentityRoutes } from './routes/identity-routes.js';
import { installLoginRoutes, OIDC_REQUEST_TTL_MS } from './routes/login-routes.js';
import { SigningKeys } from './signing-keys.js';
import { KnownDeviceCodes, LoginThrottle, PendingSignIns } from './throttle.js';
import { TokenService } from './tokens.js';
import { createUserCertificateSigner, userFromCertificate } from './user-certificates.js';

export interface IdentityService {
  authenticate: Authenticator;
  tokens: TokenService;
  keys: SigningKeys;
  /** Which login methods this gateway offers, for logs and the banner. */
  methods: { ldap: boolean; oidc: string | null };
  /** Stage 1 (authentication on every non-public route) and the identity routes. */
  install(app: FastifyInstance, options: { audit: AuditRecorder; authorizer?: Authorizer; publicUrl: () => string; /** Other public keys of this gateway (the audit checkpoint key), published beside the token keys. */ extraJwks?: () => object[] }): void;
  /** The groups a user had at their latest login here (for explaining their access), if any. */
  knownGroups(user: string): Promise<{ groups: string[]; seen_at: string } | null>;
  /** Who a person is now, asked of their login method where it can be asked (the directory). */
  personNow: PersonLookup;
  /** Whether a login (token family) still stands, as the store has it now. */
  loginNow: LoginLookup;
  close(): void;
}

export interface IdentityOptions {
  /** The clock of keys, tokens, sessions, certificates and sign-in requests (tests inject one). */
  now?: () => number;
}

export async function createIdentityService(config: Config, store: Store, options: IdentityOptions = {}): Promise<IdentityService> {
  const accessTtl = durationSeconds(config.tokens.access_ttl);
  const clock = options.now ? { now: options.now } : {};
  const keys = await SigningKeys.open(store, { rotationSeconds: durationSeconds(config.tokens.key_rotation), tokenLifetimeSeconds: accessTtl, ...clock });
  // The issuer names this installation (its store): tokens of another installation are refused.
  const tokens = new TokenService(store, keys, { issuer: `urn:gatehouse:${store.instanceId}`, accessTtlSeconds: accessTtl, refreshTtlSeconds: durationSeconds(config.tokens.refresh_ttl), ...clock });
  await tokens.start();
  const sessions = new BrowserSessions(store, tokens);
  const ldap = config.ldap.url === '' ? undefined : createLdapLogin(config.ldap, { posixUserAttribute: config.slurm.user_attribute });
  const directory = new DirectoryGuard({ ldap, tokens, everyMs: accessTtl * 1000, now: () => tokens.clock() });
  const authenticate = createAuthenticator({ store, tokens, sessions, certificateUser: userFromCertificate, directory });
  // In the store: every gateway over it counts the same failures and refuses the same lockouts.
  const throttle = new LoginThrottle(store, {
    maxFailures: config.login.max_failures,
    maxFailuresPerAddress: config.login.max_failures_per_address,
    windowSeconds: durationSeconds(config.login.failure_window),
    lockoutSeconds: durationSeconds(config.login.lockout),
    slowdownAfter: config.login.slowdown_after,
  });
  // Browser sign-ins an address keeps pending: each is a stored request; a start beyond the bound evicts the oldest.
  const signInStarts = new PendingSignIns({ maxPending: config.login.max_sign_ins_per_address, windowSeconds: OIDC_REQUEST_TTL_MS / 1000, ...(options.now ? { now: options.now } : {}) });
  const deviceCodes = new KnownDeviceCodes(options.now);
  const oidc = oidcFrom(config);

  const caCertPem = readFileSync(join(config.certs.dir, CERT_FILES.ca.cert), 'utf8');
  const caKeyPem = readPrivateKey(join(config.certs.dir, CERT_FILES.ca.key));
  const signer: CertificateSigner = createUserCertificateSigner({ caCertPem, caKeyPem });

  return {
    authenticate,
    tokens,
    keys,
    methods: { ldap: ldap !== undefined, oidc: oidc?.issuer ?? null },
    install(app, { audit, authorizer, publicUrl, extraJwks }) {
      installAuthentication(app, authenticate, audit);
      const ctx = { store, keys, tokens, sessions, throttle, signInStarts, deviceCodes, authenticate, ldap, oidc, signer, caCertificate: caCertPem, clientTtlSeconds: durationSeconds(config.certs.client_ttl), audit, authorizer, publicUrl, extraJwks: extraJwks ?? (() => []) };
      installLoginRoutes(app, ctx);
      installIdentityRoutes(app, ctx);
      installCertificateRoutes(app, ctx);
    },
    personNow: personLookup(ldap),
    loginNow: loginLookup(store),
    async knownGroups(user) {
      const row = await store.db.selectFrom('token_families').select(['groups', 'created_at']).where('user', '=', user).orderBy('created_at', 'desc').limit(1).executeTakeFirst();
      return row ? { groups: JSON.parse(row.groups) as string[], seen_at: row.created_at } : null;
    },
    close() {
      tokens.stop();
    },
  };
}

function readSecretFile(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The configured provider, else the development one when enabled, else no SSO. */
function oidcFrom(config: Config): (OidcLogin & { issuer: string }) | undefined {
  const { oidc, dev_idp } = config;
  if (oidc.issuer !== '') {
    const secret = oidc.client_secret_file !== '' ? readSecretFile('oidc.client_secret_file', oidc.client_secret_file) : oidc.client_secret;
    return createOidcClient({ issuer: oidc.issuer, clientId: oidc.client_id, clientSecret: secret, scopes: oidc.scopes, usernameClaim: oidc.username_claim, groupsClaim: oidc.groups_claim, posixUserClaim: config.slurm.user_claim });
  }
  if (!dev_idp.enabled) return undefined;
  // The development provider sets no polling interval and does not throttle: poll every second.
  return createOidcClient({ issuer: `http://127.0.0.1:${dev_idp.port}`, clientId: DEV_CLIENT_ID, scopes: oidc.scopes, usernameClaim: oidc.username_claim, groupsClaim: oidc.groups_claim, posixUserClaim: config.slurm.user_claim, pollInterval: 1 });
}
