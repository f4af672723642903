// The gateway as an OpenID Connect relying party, against any compliant provider: the device
// authorization grant (RFC 8628) for the CLI, the authorization code flow with PKCE for browsers.
// Both end in a LoginSubject read from the validated (signature-checked) ID token.
import * as client from 'openid-client';
import { cleanGroups, isValidUsername, type LoginSubject, posixUserOf } from '../identity/index.js';
import { type LoginFailure, LoginError } from './login-error.js';
import { isLoopbackHost } from '../http/index.js';
import { codeOrHash, plainText } from './audit-text.js';
import { constantTimeEqual } from './constant-time.js';

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8628 §3.2: the interval a client uses when the provider names none. */
const DEFAULT_INTERVAL_S = 5;
const REQUEST_TIMEOUT_S = 10;

export interface OidcSettings {
  issuer: string;
  clientId: string;
  /** Empty or absent: a public client, protected by PKCE. */
  clientSecret?: string;
  scopes: string[];
  usernameClaim: string;
  groupsClaim: string;
  /** slurm.user_claim: the claim naming the person's POSIX account on the cluster (absent or empty: none). */
  posixUserClaim?: string;
  /** Seconds between device-flow polls told to the caller, instead of the provider's (tests use 0). */
  pollInterval?: number;
  /** Timeout of each request to the provider, in seconds (default 10). */
  timeoutSeconds?: number;
}

/** RFC 8628 §3.2 device authorization response, as the gateway passes it on. */
export interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  interval: number;
  expires_in: number;
}

/** What the gateway sends the browser to, and what it must keep (server side) until the callback. */
export interface BrowserLogin {
  url: string;
  state: string;
  nonce: string;
  codeVerifier: string;
}

export interface SavedBrowserLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
}

export interface OidcClient {
  readonly issuer: string;
  startDevice(): Promise<DeviceAuthorization>;
  /** One token request: the subject once the user approved, else a LoginError (authorization_pending, slow_down, ...). */
  pollDevice(deviceCode: string): Promise<LoginSubject>;
  beginBrowserLogin(redirectUri: string): Promise<BrowserLogin>;
  finishBrowserLogin(callbackUrl: URL, saved: SavedBrowserLogin): Promise<LoginSubject>;
}

export function createOidcClient(settings: OidcSettings): OidcClient {
  let issuer: URL;
  try {
    issuer = new URL(settings.issuer);
  } catch {
    throw new Error(`oidc.issuer ${JSON.stringify(settings.issuer)}: expected an https:// URL`);
  }
  // Plain HTTP only for the development provider on this machine; anything else must be TLS.
  const insecure = issuer.protocol === 'http:';
  if (insecure && !isLoopbackHost(issuer.hostname)) {
    throw new Error(`oidc.issuer ${settings.issuer}: expected https:// (plain http:// only on a loopback host, for the development provider)`);
  }
  if (issuer.protocol !== 'https:' && !insecure) throw new Error(`oidc.issuer ${settings.issuer}: expected an https:// URL`);
  const scope = settings.scopes.join(' ');

  let discovered: Promise<client.Configuration> | undefined;
  // Discovery is lazy (the gateway starts while the provider is down) and cached once it worked;
  // a failure is not cached, so the next login tries again.
  const configuration = () => {
    discovered ??= discover(issuer, settings, insecure).catch((err: unknown) => {
      discovered = undefined;
      throw toLoginError(err, 'discovery');
    });
    return discovered;
  };

  return {
    issuer: settings.issuer,

    async startDevice() {
      const config = await configuration();
      const response = await client.initiateDeviceAuthorization(config, { scope }).catch((err: unknown) => {
        throw toLoginError(err, 'device authorization');
      });
      return {
        device_code: response.device_code,
        user_code: response.user_code,
        verification_uri: response.verification_uri,
        // Optional in RFC 8628; without it the user types the code at verification_uri.
        verification_uri_complete: response.verification_uri_complete ?? response.verification_uri,
        interval: settings.pollInterval ?? response.interval ?? DEFAULT_INTERVAL_S,
        expires_in: response.expires_in,
      };
    },

    async pollDevice(deviceCode) {
      const config = await configuration();
      try {
        const tokens = await client.genericGrantRequest(config, DEVICE_CODE_GRANT, { device_code: deviceCode });
        return await subjectFrom(config, tokens, settings);
      } catch (err) {
        throw toLoginError(err, 'device token');
      }
    },

    async beginBrowserLogin(redirectUri) {
      const config = await configuration();
      const codeVerifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope,
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, state, nonce, codeVerifier };
    },

    async finishBrowserLogin(callbackUrl, saved) {
      // Checked here, before anything reaches the provider, so a forged callback costs nothing.
      if (!constantTimeEqual(callbackUrl.searchParams.get('state') ?? '', saved.state)) {
        throw new LoginError('invalid_state', 'the sign-in could not be completed; start again', 'state does not match the login request');
      }
      const config = await configuration();
      // The token request must name the redirect_uri the authorization request used, whatever
      // host or proxy the callback arrived through.
      const current = new URL(saved.redirectUri);
      current.search = callbackUrl.search;
      try {
        const tokens = await client.authorizationCodeGrant(config, current, {
          pkceCodeVerifier: saved.codeVerifier,
          expectedState: saved.state,
          expectedNonce: saved.nonce,
          idTokenExpected: true,
        });
        return await subjectFrom(config, tokens, settings);
      } catch (err) {
        throw toLoginError(err, 'code exchange');
      }
    },
  };
}

async function discover(issuer: URL, settings: OidcSettings, insecure: boolean): Promise<client.Configuration> {
  const timeout = settings.timeoutSeconds ?? REQUEST_TIMEOUT_S;
  const found = await client.discovery(issuer, settings.clientId, undefined, undefined, {
    timeout,
    execute: insecure ? [client.allowInsecureRequests] : [],
  });
  const server = found.serverMetadata();
  const secret = settings.clientSecret ?? '';
  const methods = server.token_endpoint_auth_methods_supported;
  // Client authentication follows what the provider supports; basic is the specification's default.
  const auth =
    secret === ''
      ? client.None()
      : !methods || methods.includes('client_secret_basic')
        ? client.ClientSecretBasic(secret)
        : client.ClientSecretPost(secret);
  const config = new client.Configuration(server, settings.clientId, secret === '' ? undefined : { client_secret: secret }, auth);
  config.timeout = timeout;
  if (insecure) client.allowInsecureRequests(config);
  // Verify ID token signatures against the provider's JWKS, not only TLS to the token endpoint.
  client.enableNonRepudiationChecks(config);
  return config;
}

type Tokens = Awaited<ReturnType<typeof client.genericGrantRequest>>;

async function subjectFrom(config: client.Configuration, tokens: Tokens, settings: OidcSettings): Promise<LoginSubject> {
  const idToken = tokens.claims();
  if (!idToken) throw new LoginError('provider_error', 'the identity provider did not say who signed in', 'no ID token in the token response (is the openid scope requested?)');
  let claims: Record<string, unknown> = idToken;
  // Some providers put only sub in the ID token; then userinfo has the rest.
  const missing = (claim: string | undefined) => claim !== undefined && claim !== '' && claims[claim] === undefined;
  if ((missing(settings.usernameClaim) || missing(settings.groupsClaim) || missing(settings.posixUserClaim)) && config.serverMetadata().userinfo_endpoint) {
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, idToken.sub);
    claims = { ...userinfo, ...idToken };
  }

  const user = claims[settings.usernameClaim];
  if (typeof user !== 'string' || !isValidUsername(user)) {
    throw new LoginError('invalid_claims', 'the identity provider did not give a usable username', `claim ${settings.usernameClaim} is ${user === undefined ? 'missing' : 'not a valid username'}`);
  }
  const raw = claims[settings.groupsClaim];
  let groups: string[];
  if (raw === undefined || raw === null) groups = [];
  else if (typeof raw === 'string') groups = [raw];
  else if (Array.isArray(raw)) groups = raw.filter((g): g is string => typeof g === 'string');
  else throw new LoginError('invalid_claims', 'the identity provider sent groups in a form Gatehouse cannot read', `claim ${settings.groupsClaim} is neither a string nor a list`);
  // Only a POSIX user name counts; anything else (an email, a list) is no account.
  const posixUser = settings.posixUserClaim ? posixUserOf(claims[settings.posixUserClaim]) : undefined;
  return { user, groups: cleanGroups(groups), auth_method: 'oidc', ...(posixUser !== undefined ? { posix_user: posixUser } : {}) };
}

const DEVICE_ERRORS: Record<string, [LoginFailure, string]> = {
  authorization_pending: ['authorization_pending', 'waiting for the sign-in to be approved in the browser'],
  slow_down: ['slow_down', 'polling too fast; wait longer between attempts'],
  access_denied: ['access_denied', 'the sign-in was refused'],
  expired_token: ['expired', 'the device code has expired; start again'],
};

/** Every failure of a provider exchange as a LoginError; details for the log, never a token. */
function toLoginError(err: unknown, step: string): LoginError {
  if (err instanceof LoginError) return err;
  if (err instanceof client.ResponseBodyError) {
    const known = DEVICE_ERRORS[err.error];
    if (known) return new LoginError(known[0], known[1], `${step}: ${err.error}`);
    const status = err.status >= 500 ? 'provider_unavailable' : 'provider_error';
    // The provider's own answer (token endpoint): its description, printable and cut short.
    return new LoginError(status, 'the identity provider refused the sign-in', `${step}: ${codeOrHash(err.error)}${err.error_description ? ` (${plainText(err.error_description)})` : ''}`);
  }
  if (err instanceof client.AuthorizationResponseError) {
    // From the callback's query string, which anyone can write: the code only, never the description.
    if (err.error === 'access_denied') return new LoginError('access_denied', 'the sign-in was refused', `${step}: access_denied`);
    return new LoginError('provider_error', 'the identity provider refused the sign-in', `${step}: ${codeOrHash(err.error)}`);
  }
  if (unreachable(err)) {
    return new LoginError('provider_unavailable', 'the identity provider cannot be reached; try again later', `${step}: ${describe(err)}`);
  }
  if (err instanceof client.ClientError && err.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && claimOf(err) === 'nonce') {
    return new LoginError('invalid_state', 'the sign-in could not be completed; start again', `${step}: ID token nonce does not match the login request`);
  }
  return new LoginError('provider_error', 'the identity provider answered with something Gatehouse refuses', `${step}: ${describe(err)}`);
}

/** Connection refused, DNS, timeouts, and 5xx pages from a proxy in front of the provider. */
function unreachable(err: unknown): boolean {
  if (err instanceof TypeError && err.message === 'fetch failed') return true;
  if (!(err instanceof client.ClientError)) return false;
  if (err.code === 'OAUTH_TIMEOUT' || err.code === 'OAUTH_ABORT') return true;
  if (err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || err.code === 'OAUTH_RESPONSE_IS_NOT_JSON') {
    const status = (err.cause as { status?: unknown } | undefined)?.status;
    return typeof status === 'number' && status >= 500;
  }
  return err.cause instanceof TypeError && err.cause.message === 'fetch failed';
}

function claimOf(err: client.ClientError): unknown {
  const inner = err.cause as { cause?: { claim?: unknown } } | undefined;
  return inner?.cause?.claim;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return plainText(`${typeof code === 'string' ? `${code} ` : ''}${err.message}${cause}`);
}

