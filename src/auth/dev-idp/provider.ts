// DEVELOPMENT ONLY: the oidc-provider configuration of the development provider. One public client
// (the gateway), demo users as accounts, device flow on, and our own pages instead of the library's.
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type Provider from 'oidc-provider';
import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { DevUser } from './users.js';
import { deviceConfirmPage, deviceInputPage, deviceSuccessPage, errorPage, PAGE_HEADERS } from './pages.js';

export const DEV_CLIENT_ID = 'gatehouse-dev';
/** Where the gateway receives the browser sign-in (GET /v1/auth/oidc/callback). */
export const CALLBACK_PATH = '/v1/auth/oidc/callback';
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export interface DevProviderOptions {
  issuer: string;
  users: DevUser[];
  /** server.public_url, when the gateway is reached at a name of its own. */
  publicUrl: string;
}

export async function createDevProvider({ issuer, users, publicUrl }: DevProviderOptions): Promise<Provider> {
  const redirectUris = [...LOOPBACK_HOSTS].map((host) => `https://${host}${CALLBACK_PATH}`);
  if (publicUrl !== '') redirectUris.push(`${publicUrl.replace(/\/+$/, '')}${CALLBACK_PATH}`);

  // Loaded here (or by prepareDevIdp) rather than at the top: importing oidc-provider prints its runtime
  // warning, and only the development provider's process should do that, not every command that imports this room.
  const { default: Provider } = await (library ?? import('oidc-provider'));
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: DEV_CLIENT_ID,
        client_name: 'Gatehouse (development)',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', DEVICE_CODE_GRANT],
        response_types: ['code'],
        redirect_uris: redirectUris,
      },
    ],
    // Signing key and cookie keys are new on every start: nothing survives a restart, nothing is on disk.
    jwks: { keys: [await takeSigningKey()] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: (_ctx: unknown, sub: string): Account | undefined => {
      const user = users.find((u) => u.username === sub);
      if (!user) return undefined;
      return {
        accountId: user.username,
        claims: () => ({
          sub: user.username,
          preferred_username: user.username,
          name: user.name,
          email: user.email,
          email_verified: true,
          groups: user.groups,
          ...(user.posix_user !== undefined ? { posix_user: user.posix_user } : {}),
        }),
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups', 'posix_user'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    // Without this the ID token carries only sub whenever an access token is issued too, and the
    // gateway reads the username and groups from the ID token.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: (ctx: KoaContextWithOIDC, form: string, _out: unknown, err?: { name?: string; userCode?: string }) =>
          render(ctx, deviceInputPage(form, err ? deviceError(err) : undefined)),
        userCodeConfirmSource: (ctx: KoaContextWithOIDC, form: string, client: { clientName?: string; clientId: string }, _info: unknown, userCode: string) =>
          render(ctx, deviceConfirmPage(form, client.clientName ?? client.clientId, userCode)),
        successSource: (ctx: KoaContextWithOIDC) => render(ctx, deviceSuccessPage()),
      },
      // Not needed by the gateway; off so their default pages never show.
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: { enabled: false },
    },
    renderError: (ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }) => render(ctx, errorPage(out.error ?? 'error', out.error_description)),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      DeviceCode: 600,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  });
  provider.proxy = false;

  // The gateway's port is often 0 (picked at start) or unknown when this provider starts, so the
  // callback is allowed on a loopback host at any port: exactly https://<loopback>:<port>/v1/auth/oidc/callback,
  // nothing else. A development-only loosening; a real provider registers the exact URL.
  const exact = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(uri: string): boolean {
    return exact.call(this, uri) || isLoopbackCallback(uri);
  };
  return provider;
}

export function isLoopbackCallback(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  return (
    url.protocol === 'https:' &&
    LOOPBACK_HOSTS.has(url.hostname) &&
    url.pathname === CALLBACK_PATH &&
    url.search === '' &&
    url.hash === '' &&
    url.username === '' &&
    url.password === '' &&
    !uri.includes('#')
  );
}

function render(ctx: KoaContextWithOIDC, html: string): void {
  for (const [field, value] of Object.entries(PAGE_HEADERS)) if (field !== 'content-type') ctx.set(field, value);
  ctx.type = 'html';
  ctx.body = html;
}

function deviceError(err: { name?: string; userCode?: string }): string {
  if (err.userCode !== undefined || err.name === 'NoCodeError') return 'That code is not valid, has expired or was already used. Check it and try again.';
  if (err.name === 'AbortedError') return 'The sign-in was cancelled.';
  return 'Something went wrong with this sign-in. Start again from the command line.';
}

let prepared: Promise<Record<string, unknown>> | undefined;
let library: Promise<typeof import('oidc-provider')> | undefined;

/**
 * Starts making the next provider's signing key (an RSA key: 0.1-0.4 s on the thread pool) and loading
 * oidc-provider (about 200 modules, a few hundred ms of CPU) ahead of its start: `gatehouse dev-idp`
 * under `up` calls this while it waits for its go, so both are ready when the provider starts. The key
 * is taken by one provider only; another in the same process makes its own.
 */
export function prepareSigningKey(): void {
  prepared ??= signingKey();
  prepared.catch(() => {}); // a failure is the taker's to report
  library ??= import('oidc-provider');
  library.catch(() => {}); // as is this one's
}

function takeSigningKey(): Promise<Record<string, unknown>> {
  const key = prepared ?? signingKey();
  prepared = undefined;
  return key;
}

async function signingKey(): Promise<Record<string, unknown>> {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `dev-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}
