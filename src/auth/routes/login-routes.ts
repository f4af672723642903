// Logging in and out: LDAP (username + password), the OIDC device flow for the CLI, the OIDC
// authorization-code flow for browsers, refresh-token rotation and logout. Every attempt is audited.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatehouseError } from '../../wire/index.js';
import { CSRF_COOKIE, SESSION_COOKIE } from '../browser-sessions.js';
import type { LoginSubject } from '../identity.js';
import { LoginError } from '../login-error.js';
import { TokenError } from '../token-error.js';
import { sha256 } from '../tokens.js';
import { auditFor, type RouteContext } from './context.js';
import { CallbackQuery, DeviceTokenBody, EmptyBody, LdapLoginBody, LoginQuery, LogoutBody, NoQuery, RefreshBody, TokenResponse } from './schemas.js';

const OIDC_REQUEST_TTL_MS = 10 * 60 * 1000;
const CALLBACK_PATH = '/v1/auth/oidc/callback';
/** Failures that count towards the throttle: guesses, not outages. */
const COUNTED = new Set(['invalid_credentials', 'empty_password', 'invalid_username', 'ambiguous_user', 'access_denied', 'provider_error', 'invalid_state', 'invalid_claims']);

export function installLoginRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const pub = { public: true };

  /** Audits a failed attempt, counts it, and turns it into the client's answer. */
  const failed = async (request: FastifyRequest, method: string, err: unknown, keys: string[], user: string | null): Promise<never> => {
    if (!(err instanceof LoginError)) throw err;
    if (COUNTED.has(err.reason)) ctx.throttle.failure(keys);
    await auditFor(ctx, request, undefined, {
      action: 'auth.login_failed',
      object: `login:${method}`,
      decision: 'deny',
      reason: err.reason,
      details: { method, attempted_user: user, ...(err.detail ? { detail: err.detail } : {}) },
    });
    throw toHttpError(err);
  };

  /** Refuses at once while throttled; otherwise waits the slow-down before the attempt is answered. */
  const throttled = async (request: FastifyRequest, reply: FastifyReply, method: string, keys: string[], user: string | null): Promise<void> => {
    const verdict = ctx.throttle.check(keys);
    if (verdict.retryAfterSeconds !== undefined) {
      await auditFor(ctx, request, undefined, { action: 'auth.login_failed', object: `login:${method}`, decision: 'deny', reason: 'throttled', details: { method, attempted_user: user, throttled_on: verdict.key?.startsWith('user:') ? 'username' : 'address' } });
      reply.header('retry-after', String(verdict.retryAfterSeconds));
      throw new GatehouseError('too_many_requests', `too many failed logins; try again in ${verdict.retryAfterSeconds} s`, { retry_after: verdict.retryAfterSeconds });
    }
    if (verdict.delayMs > 0) await new Promise((r) => setTimeout(r, verdict.delayMs));
  };

  const succeeded = async (request: FastifyRequest, subject: LoginSubject, method: string, flow: string) => {
    const pair = await ctx.tokens.login(subject);
    await auditFor(ctx, request, subject, {
      action: 'auth.login',
      object: `login:${method}`,
      decision: 'allow',
      reason: `${flow} login`,
      details: { method, flow, session_id: pair.session_id, jti: pair.jti },
    });
    return pair;
  };

  app.post('/v1/auth/ldap', { config: pub, schema: { summary: 'Log in with a directory username and password', querystring: NoQuery, body: LdapLoginBody, response: { 200: TokenResponse } } }, async (request, reply) => {
    const { username, password } = request.body as { username: string; password: string };
    const ldap = ctx.ldap;
    if (!ldap) throw new GatehouseError('not_found', 'LDAP login is not configured on this gateway (ldap.url)');
    const keys = [`user:${username.toLowerCase()}`, `ip:${request.ip}`];
    await throttled(request, reply, 'ldap', keys, username);
    let subject: LoginSubject;
    try {
      subject = await ldap.login(username, password);
    } catch (err) {
      return failed(request, 'ldap', err, keys, username);
    }
    ctx.throttle.success(keys[0]!);
    return tokenBody(await succeeded(request, subject, 'ldap', 'password'));
  });

  app.post('/v1/auth/device', { config: pub, schema: { summary: 'Start an SSO login for a command-line client (RFC 8628)', querystring: NoQuery, body: EmptyBody } }, async () => {
    const oidc = requireOidc(ctx);
    try {
      return await oidc.startDevice();
    } catch (err) {
      throw err instanceof LoginError ? toHttpError(err) : err;
    }
  });

  app.post('/v1/auth/device/token', { config: pub, schema: { summary: 'Poll a device login; tokens once the user approved', querystring: NoQuery, body: DeviceTokenBody } }, async (request, reply) => {
    const oidc = requireOidc(ctx);
    const keys = [`ip:${request.ip}`];
    await throttled(request, reply, 'oidc', keys, null);
    let subject: LoginSubject;
    try {
      subject = await oidc.pollDevice((request.body as { device_code: string }).device_code);
    } catch (err) {
      // Waiting is the normal answer while the user approves: not a failure, not audited.
      if (err instanceof LoginError && (err.reason === 'authorization_pending' || err.reason === 'slow_down')) throw toHttpError(err);
      return failed(request, 'oidc', err, keys, null);
    }
    return tokenBody(await succeeded(request, subject, 'oidc', 'device'));
  });

  app.get('/v1/auth/oidc/login', { config: pub, schema: { summary: 'Browser sign-in: redirects to the SSO provider', querystring: LoginQuery } }, async (request, reply) => {
    const oidc = requireOidc(ctx);
    const returnTo = safeReturnTo((request.query as { return_to?: string }).return_to);
    const redirectUri = `${ctx.publicUrl()}${CALLBACK_PATH}`;
    let start;
    try {
      start = await oidc.beginBrowserLogin(redirectUri);
    } catch (err) {
      throw err instanceof LoginError ? toHttpError(err) : err;
    }
    await ctx.store.db.deleteFrom('oidc_requests').where('expires_at', '<', new Date().toISOString()).execute();
    await ctx.store.db
      .insertInto('oidc_requests')
      .values({ state: start.state, nonce: start.nonce, code_verifier: start.codeVerifier, return_to: returnTo, expires_at: new Date(Date.now() + OIDC_REQUEST_TTL_MS).toISOString() })
      .execute();
    return reply.redirect(start.url, 302);
  });

  app.get(CALLBACK_PATH, { config: pub, schema: { summary: 'Browser sign-in: the SSO provider returns here', querystring: CallbackQuery } }, async (request, reply) => {
    const oidc = requireOidc(ctx);
    const query = request.query as { state?: string; error?: string };
    const keys = [`ip:${request.ip}`];
    await throttled(request, reply, 'oidc', keys, null);
    // One use only: the row is deleted whether the exchange then succeeds or not.
    const saved = query.state ? await ctx.store.db.deleteFrom('oidc_requests').where('state', '=', query.state).returningAll().executeTakeFirst() : undefined;
    let subject: LoginSubject;
    try {
      if (query.error) throw new LoginError(query.error === 'access_denied' ? 'access_denied' : 'provider_error', 'the SSO provider did not sign you in', `provider error ${query.error}`);
      if (!saved || Date.parse(saved.expires_at) < Date.now()) throw new LoginError('invalid_state', 'this sign-in link is unknown or expired; start again', 'unknown or expired state');
      const redirectUri = `${ctx.publicUrl()}${CALLBACK_PATH}`;
      const url = new URL(`${redirectUri}?${new URLSearchParams(request.query as Record<string, string>).toString()}`);
      subject = await oidc.finishBrowserLogin(url, { state: saved.state, nonce: saved.nonce, codeVerifier: saved.code_verifier, redirectUri });
    } catch (err) {
      return failed(request, 'oidc', err, keys, null);
    }
    const pair = await succeeded(request, subject, 'oidc', 'browser');
    const session = await ctx.sessions.create(pair.session_id);
    const cookie = { path: '/', secure: true, sameSite: 'lax' as const, expires: session.expiresAt };
    reply.setCookie(SESSION_COOKIE, session.cookie, { ...cookie, httpOnly: true });
    // Readable by the page, which echoes it in x-csrf-token on every change.
    reply.setCookie(CSRF_COOKIE, session.csrf, { ...cookie, httpOnly: false });
    return reply.redirect(saved!.return_to, 302);
  });

  app.post('/v1/auth/token', { config: pub, schema: { summary: 'Trade a refresh token for a new pair (the old one stops working)', querystring: NoQuery, body: RefreshBody, response: { 200: TokenResponse } } }, async (request) => {
    try {
      const pair = await ctx.tokens.refresh((request.body as { refresh_token: string }).refresh_token);
      await auditFor(ctx, request, pair.subject, {
        action: 'token.refresh',
        object: `session:${pair.session_id}`,
        decision: 'allow',
        reason: 'refresh token rotated',
        details: { session_id: pair.session_id, jti: pair.jti },
      });
      return tokenBody(pair);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      await auditFor(ctx, request, undefined, { action: 'token.refresh', object: 'session:unknown', decision: 'deny', reason: err.reason, details: err.detail ? { detail: err.detail } : {} });
      throw new GatehouseError('unauthenticated', err.reason === 'reused' ? 'this refresh token was already used; the login has been ended for safety, log in again' : 'invalid or expired refresh token; log in again');
    }
  });

  app.post('/v1/auth/logout', { config: pub, schema: { summary: 'End the login: refresh tokens, access tokens, the browser session and its certificates', querystring: NoQuery, body: LogoutBody } }, async (request, reply) => {
    const body = (request.body ?? {}) as { refresh_token?: string };
    let sessionId: string | undefined;
    let identity;
    if (request.headers.authorization || request.cookies?.[SESSION_COOKIE]) {
      try {
        identity = await ctx.authenticate(request);
        sessionId = identity.session_id;
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
      }
    }
    if (!sessionId && body.refresh_token) {
      const row = await ctx.store.db.selectFrom('refresh_tokens').select('family_id').where('hash', '=', sha256(body.refresh_token)).executeTakeFirst();
      sessionId = row?.family_id;
    }
    if (!sessionId) throw new GatehouseError('unauthenticated', 'nothing to log out: present the access token, the session cookie or the refresh token');
    await ctx.tokens.revoke(sessionId, 'logout');
    const certs = await ctx.store.db.updateTable('client_certificates').set({ revoked_at: new Date().toISOString(), revoked_by: identity?.user ?? 'logout' }).where('family_id', '=', sessionId).where('revoked_at', 'is', null).returning('serial').execute();
    for (const c of certs) ctx.authenticate.forgetCertificate(c.serial);
    await auditFor(ctx, request, identity, { action: 'auth.logout', object: `session:${sessionId}`, decision: 'allow', reason: 'logout', details: { session_id: sessionId, certificates_revoked: certs.map((c) => c.serial) } });
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    reply.clearCookie(CSRF_COOKIE, { path: '/' });
    return { status: 'logged_out', session_id: sessionId };
  });
}

function requireOidc(ctx: RouteContext) {
  if (!ctx.oidc) throw new GatehouseError('not_found', 'SSO login is not configured on this gateway (oidc.issuer or dev_idp.enabled)');
  return ctx.oidc;
}

function tokenBody(pair: { access_token: string; refresh_token: string; token_type: 'Bearer'; expires_in: number }) {
  return { access_token: pair.access_token, refresh_token: pair.refresh_token, token_type: pair.token_type, expires_in: pair.expires_in };
}

/** Only a path on this gateway: an absolute URL here would make the sign-in an open redirect. */
function safeReturnTo(value: string | undefined): string {
  if (!value || !value.startsWith('/') || value.startsWith('//') || value.includes('\\')) return '/v1/whoami';
  return value;
}

function toHttpError(err: LoginError): GatehouseError {
  switch (err.reason) {
    case 'invalid_credentials':
    case 'empty_password':
    case 'invalid_username':
    case 'ambiguous_user':
      return new GatehouseError('unauthenticated', 'invalid username or password');
    case 'throttled':
      return new GatehouseError('too_many_requests', err.message);
    case 'provider_unavailable':
      return new GatehouseError('provider_unavailable', err.message);
    case 'authorization_pending':
      return new GatehouseError('authorization_pending', 'waiting for the user to approve the login');
    case 'slow_down':
      return new GatehouseError('slow_down', 'polling too fast; wait longer between polls');
    case 'access_denied':
      return new GatehouseError('access_denied', 'the login was refused at the SSO provider');
    case 'expired':
      return new GatehouseError('expired_token', 'the login code expired; start again');
    default:
      return new GatehouseError('unauthenticated', err.message);
  }
}
