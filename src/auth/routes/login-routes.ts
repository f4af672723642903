// Logging in and out: LDAP (username + password), the OIDC device flow for the CLI, the OIDC
// authorization-code flow for browsers, refresh-token rotation and logout. Every attempt is audited.
// Every change is recorded first: when the trail cannot take the event, nothing changes (503).
import { randomBytes } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { GatehouseError } from '../../wire/index.js';
import { codeOrHash, ownerFields, userText } from '../audit-text.js';
import { CSRF_COOKIE, HOST_COOKIE, SESSION_COOKIE } from '../browser-sessions.js';
import { constantTimeEqual } from '../constant-time.js';
import { DirectoryUnsure, directoryNow, groupChange } from '../directory-check.js';
import type { Identity, LoginSubject } from '../../identity/index.js';
import { LoginError } from '../login-error.js';
import { TokenError } from '../token-error.js';
import { sha256, subjectOf } from '../tokens.js';
import { addressKey, type ThrottleAttempt } from '../throttle.js';
import { auditFor, type RouteContext } from './context.js';
import { CallbackQuery, DeviceTokenBody, EmptyBody, LdapLoginBody, LoginQuery, LogoutBody, MethodsResponse, NoQuery, RefreshBody, SessionResponse, TokenResponse } from './schemas.js';
import { refuseCrossSite, setSessionCookies } from './session-cookies.js';

export const OIDC_REQUEST_TTL_MS = 10 * 60 * 1000;
const CALLBACK_PATH = '/v1/auth/oidc/callback';
/**
 * Binds a browser sign-in to the browser that started it. __Host-: Secure, Path=/, no Domain, so a
 * sibling subdomain cannot plant its own (known) value before sending the victim to its callback link.
 */
export const LOGIN_COOKIE = '__Host-gatehouse_oidc';
const DEFAULT_RETURN_TO = '/v1/whoami';
/**
 * Failures that count towards the throttle: guesses, not outages. Only a password is counted: the
 * browser callback and the device poll count none (below), their only credential a code, and
 * sign-ins to try codes on are free to start.
 */
const COUNTED = new Set(['invalid_credentials', 'empty_password', 'invalid_username', 'ambiguous_user', 'access_denied', 'provider_error', 'invalid_state', 'invalid_claims']);
/** Nothing counts: a failure in which no credential a person typed was tried. */
const NOT_COUNTED: ReadonlySet<string> = new Set();

export function installLoginRoutes(server: FastifyInstance, ctx: RouteContext): void {
  // Handler types come from the route schemas (the ones Ajv validates with), never restated.
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  const pub = { public: true };

  /** Audits a failed attempt, counts it when a credential was tried, and turns it into the client's answer. */
  const failed = async (request: FastifyRequest, method: string, err: unknown, keys: string[], user: string | null, counted: ReadonlySet<string> = COUNTED, attempt?: ThrottleAttempt): Promise<never> => {
    if (!(err instanceof LoginError)) {
      if (attempt) await ctx.throttle.failure(keys, attempt); // an unexpected error: counted, never forgiven
      throw err;
    }
    await auditFor(ctx, request, undefined, {
      action: 'auth.login_failed',
      object: `login:${method}`,
      decision: 'deny',
      reason: err.reason,
      // What the client typed goes in only when it is a plain username (a password typed in the wrong field is not).
      details: { method, attempted_user: userText(user), ...(err.detail ? { detail: err.detail } : {}) },
    });
    if (counted.has(err.reason)) await ctx.throttle.failure(keys, attempt);
    else if (attempt) await ctx.throttle.release(attempt);
    throw toHttpError(err);
  };

  /**
   * Refuses at once while throttled; otherwise reserves the attempt (so guesses racing at the limit
   * are not all tried) and waits the slow-down before it is answered.
   */
  const throttled = async (request: FastifyRequest, reply: FastifyReply, method: string, keys: string[], user: string | null): Promise<ThrottleAttempt> => {
    const verdict = await ctx.throttle.begin(keys);
    if (verdict.retryAfterSeconds !== undefined) {
      await auditFor(ctx, request, undefined, { action: 'auth.login_failed', object: `login:${method}`, decision: 'deny', reason: 'throttled', details: { method, attempted_user: userText(user), throttled_on: verdict.key?.startsWith('user:') ? 'username' : 'address' } });
      reply.header('retry-after', String(verdict.retryAfterSeconds));
      throw new GatehouseError('too_many_requests', `too many failed logins; try again in ${verdict.retryAfterSeconds} s`, { retry_after: verdict.retryAfterSeconds });
    }
    if (verdict.delayMs > 0) await new Promise((r) => setTimeout(r, verdict.delayMs));
    return verdict.attempt!;
  };

  /** Records the login, then starts it under the ids the event names. */
  const succeeded = async (request: FastifyRequest, subject: LoginSubject, method: string, flow: string) => {
    const ids = ctx.tokens.newIds();
    await auditFor(ctx, request, subject, {
      action: 'auth.login',
      object: `login:${method}`,
      decision: 'allow',
      reason: `${flow} login`,
      details: { method, flow, session_id: ids.session_id, jti: ids.jti },
    });
    return ctx.tokens.login(subject, ids);
  };

  /** A directory login, throttled and recorded: the new login's pair (`flow` says which door it came through). */
  const ldapLogin = async (request: FastifyRequest, reply: FastifyReply, username: string, password: string, flow: string) => {
    const ldap = ctx.ldap;
    if (!ldap) throw new GatehouseError('not_found', 'LDAP login is not configured on this gateway (ldap.url)');
    const keys = [`user:${username.toLowerCase()}`, `ip:${request.ip}`];
    const attempt = await throttled(request, reply, 'ldap', keys, username);
    let subject: LoginSubject;
    try {
      subject = await ldap.login(username, password);
    } catch (err) {
      return failed(request, 'ldap', err, keys, username, COUNTED, attempt);
    }
    await ctx.throttle.success(keys[0]!, attempt);
    return { pair: await succeeded(request, subject, 'ldap', flow), user: subject.user };
  };

  app.post('/v1/auth/ldap', { config: pub, schema: { summary: 'Log in with a directory username and password', querystring: NoQuery, body: LdapLoginBody, response: { 200: TokenResponse } } }, async (request, reply) => {
    const { username, password } = request.body;
    return tokenBody((await ldapLogin(request, reply, username, password, 'password')).pair);
  });

  // The console's directory sign-in: the same login, ending in the browser session cookie rather than
  // tokens. SameSite=Strict here (nothing cross-site leads to it, unlike the SSO callback). Only this
  // origin's own page may sign a browser in: a form another site posts would sign the visitor in as
  // the attacker (login CSRF); JSON alone already needs a preflight cross-origin, and Origin /
  // Sec-Fetch-Site are checked as browsers send them.
  app.post('/v1/auth/ldap/session', { config: pub, schema: { summary: 'Console sign-in with a directory username and password: sets the session cookie', querystring: NoQuery, body: LdapLoginBody, response: { 200: SessionResponse } } }, async (request, reply) => {
    refuseCrossSite(request, ctx.publicUrl());
    const { username, password } = request.body;
    const { pair, user } = await ldapLogin(request, reply, username, password, 'browser-password');
    const session = await ctx.sessions.create(pair.session_id);
    setSessionCookies(reply, session, 'strict');
    return { user, expires_at: session.expiresAt.toISOString() };
  });

  app.get('/v1/auth/methods', { config: pub, schema: { summary: 'The sign-ins this gateway offers (for the console)', querystring: NoQuery, response: { 200: MethodsResponse } } }, async () => ({
    ldap: ctx.ldap !== undefined,
    oidc: ctx.oidc !== undefined,
    ...(ctx.oidc !== undefined ? { oidc_login: '/v1/auth/oidc/login' } : {}),
  }));

  app.post('/v1/auth/device', { config: pub, schema: { summary: 'Start an SSO login for a command-line client (RFC 8628)', querystring: NoQuery, body: EmptyBody } }, async () => {
    const oidc = requireOidc(ctx);
    let started: Awaited<ReturnType<typeof oidc.startDevice>>;
    try {
      started = await oidc.startDevice();
    } catch (err) {
      throw err instanceof LoginError ? toHttpError(err) : err;
    }
    // Only codes handed out here are ever sent to the provider (below).
    ctx.deviceCodes.remember(started.device_code, started.expires_in);
    return started;
  });

  app.post('/v1/auth/device/token', { config: pub, schema: { summary: 'Poll a device login; tokens once the user approved', querystring: NoQuery, body: DeviceTokenBody } }, async (request) => {
    const oidc = requireOidc(ctx);
    const deviceCode = request.body.device_code;
    // A code this gateway never handed out (made up, already used, or from before a restart) is
    // answered here, as RFC 8628 does (invalid_grant): no request to the provider, no audit row.
    const known = ctx.deviceCodes.status(deviceCode);
    if (known === 'unknown') throw new GatehouseError('invalid_grant', 'unknown device code; run the login again', { field: 'body.device_code' });
    if (known === 'expired') {
      ctx.deviceCodes.forget(deviceCode);
      throw new GatehouseError('expired_token', 'the login code expired; start again');
    }
    // No address lockout here: a poll counts nothing (a device code is free to mint, and the
    // person's credentials are tried at the provider), so one person's wrong passwords do not
    // lock SSO for everybody behind the address.
    let subject: LoginSubject;
    try {
      subject = await oidc.pollDevice(deviceCode);
    } catch (err) {
      // Waiting is the normal answer while the user approves: not a failure, not audited.
      if (err instanceof LoginError && (err.reason === 'authorization_pending' || err.reason === 'slow_down')) throw toHttpError(err);
      if (err instanceof LoginError && err.reason !== 'provider_unavailable') ctx.deviceCodes.forget(deviceCode);
      return failed(request, 'oidc', err, [], null, NOT_COUNTED);
    }
    ctx.deviceCodes.forget(deviceCode);
    return tokenBody(await succeeded(request, subject, 'oidc', 'device'));
  });

  app.get('/v1/auth/oidc/login', { config: pub, schema: { summary: 'Browser sign-in: redirects to the SSO provider', querystring: LoginQuery } }, async (request, reply) => {
    const oidc = requireOidc(ctx);
    const given = request.query.return_to;
    if (given !== undefined && !isLocalPath(given)) {
      throw new GatehouseError('invalid_request', 'return_to: expected a path on this gateway (one leading /, no //, no backslash, no spaces or control characters, printable ASCII)', { field: 'querystring.return_to' });
    }
    const returnTo = given ?? DEFAULT_RETURN_TO;
    // Started by a navigation, never by another site's image, script or fetch (which would mint
    // sign-ins in the visitor's name): Sec-Fetch-* as browsers send them; without them (a CLI) allowed.
    const site = request.headers['sec-fetch-site'];
    const dest = request.headers['sec-fetch-dest'];
    if (site !== undefined && (site === 'cross-site' || site === 'same-site') && dest !== 'document') {
      throw new GatehouseError('forbidden', 'a sign-in is started by opening this address in the browser, not loaded by another site (Sec-Fetch-Dest must be document)', { field: 'headers.sec-fetch-dest' });
    }
    const redirectUri = `${ctx.publicUrl()}${CALLBACK_PATH}`;
    let start: Awaited<ReturnType<typeof oidc.beginBrowserLogin>>;
    try {
      start = await oidc.beginBrowserLogin(redirectUri);
    } catch (err) {
      throw err instanceof LoginError ? toHttpError(err) : err;
    }
    const now = ctx.tokens.clock();
    // The sign-in belongs to this browser: only a callback that brings this cookie back completes it.
    const binding = randomBytes(32).toString('base64url');
    await ctx.store.db.deleteFrom('oidc_requests').where('expires_at', '<', new Date(now).toISOString()).execute();
    // A start is never refused: an address keeps only so many pending sign-ins
    // (login.max_sign_ins_per_address), and a start beyond that evicts its oldest.
    const evicted = ctx.signInStarts.add(addressKey(request.ip), start.state);
    if (evicted.length > 0) await ctx.store.db.deleteFrom('oidc_requests').where('state', 'in', evicted).execute();
    await ctx.store.db
      .insertInto('oidc_requests')
      .values({ state: start.state, nonce: start.nonce, code_verifier: start.codeVerifier, return_to: returnTo, expires_at: new Date(now + OIDC_REQUEST_TTL_MS).toISOString(), binding_hash: sha256(binding) })
      .execute();
    // Path=/ as __Host- requires (sent on every request, read by the callback only).
    reply.setCookie(LOGIN_COOKIE, binding, { ...HOST_COOKIE, httpOnly: true, maxAge: OIDC_REQUEST_TTL_MS / 1000 });
    return reply.redirect(start.url, 302);
  });

  app.get(CALLBACK_PATH, { config: pub, schema: { summary: 'Browser sign-in: the SSO provider returns here', querystring: CallbackQuery } }, async (request, reply) => {
    const oidc = requireOidc(ctx);
    const query = request.query;
    // No address lockout here: the callback counts nothing (below), so it checks nothing either,
    // and junk LDAP logins from one address do not lock SSO for everybody behind it.
    const keys: string[] = [];
    const binding = request.cookies?.[LOGIN_COOKIE];
    let subject: LoginSubject;
    let returnTo: string;
    // Nothing here counts against the address. A provider's ?error=, an unknown state, a missing code
    // or another browser's link cost nothing to send; and a failed code exchange needs only a sign-in
    // anyone may start (state and cookie in hand, `code=x`). Counting them would let one person lock
    // SSO for everybody behind the address. A code is tried once: the sign-in is used up before the
    // exchange, pending sign-ins are bounded per address (login.max_sign_ins_per_address), and another
    // browser's sign-in is refused before its code is tried. The address lockout counts passwords.
    try {
      const row = query.state ? await ctx.store.db.selectFrom('oidc_requests').selectAll().where('state', '=', query.state).executeTakeFirst() : undefined;
      if (!row || Date.parse(row.expires_at) < ctx.tokens.clock()) {
        if (query.error) throw providerRefusal(query.error);
        throw new LoginError('invalid_state', 'this sign-in link is unknown or expired; start again', 'unknown or expired state');
      }
      // Another browser's link (login CSRF), or a browser whose cookie is gone: refused, and the
      // sign-in is left for the browser that started it.
      if (!binding || !row.binding_hash || !constantTimeEqual(sha256(binding), row.binding_hash)) {
        throw new LoginError('browser_mismatch', 'this sign-in was started in another browser (or its cookie has expired); start again from your own browser', binding ? 'the sign-in cookie does not match the one set when this sign-in started' : 'no sign-in cookie: this browser did not start this sign-in');
      }
      // One use only: of two callbacks with the same state, one gets the row.
      const saved = await ctx.store.db.deleteFrom('oidc_requests').where('state', '=', row.state).returningAll().executeTakeFirst();
      if (!saved) throw new LoginError('invalid_state', 'this sign-in link is unknown or expired; start again', 'state already used');
      ctx.signInStarts.forget(saved.state);
      reply.clearCookie(LOGIN_COOKIE, { ...HOST_COOKIE, httpOnly: true });
      if (query.error) throw providerRefusal(query.error);
      if (!query.code) throw new LoginError('incomplete_callback', 'the SSO provider sent no sign-in code; start again', 'callback without code');
      // Checked again: a row stored by an older gateway may hold what the login route now refuses.
      returnTo = isLocalPath(saved.return_to) ? saved.return_to : DEFAULT_RETURN_TO;
      const redirectUri = `${ctx.publicUrl()}${CALLBACK_PATH}`;
      const url = new URL(`${redirectUri}?${new URLSearchParams(Object.entries(query).filter((p): p is [string, string] => p[1] !== undefined)).toString()}`);
      subject = await oidc.finishBrowserLogin(url, { state: saved.state, nonce: saved.nonce, codeVerifier: saved.code_verifier, redirectUri });
    } catch (err) {
      return failed(request, 'oidc', err, keys, null, NOT_COUNTED);
    }
    const pair = await succeeded(request, subject, 'oidc', 'browser');
    const session = await ctx.sessions.create(pair.session_id);
    // Lax, not Strict: the browser arrives here from the provider's site, and the landing page it is
    // then sent on to is the end of a cross-site redirect chain, where a Strict cookie is not sent.
    // Changes are guarded by the CSRF token whatever SameSite says.
    setSessionCookies(reply, session, 'lax');
    return reply.redirect(returnTo, 302);
  });

  app.post('/v1/auth/token', { config: pub, schema: { summary: 'Trade a refresh token for a new pair (the old one stops working)', querystring: NoQuery, body: RefreshBody, response: { 200: TokenResponse } } }, async (request) => {
    try {
      // Checked, recorded, then rotated: with the trail down the token stays unused and the client may retry.
      const plan = await ctx.tokens.checkRefresh(request.body.refresh_token);
      const current = await directoryNow(ctx.ldap, plan).catch(async (err: unknown) => {
        if (err instanceof DirectoryUnsure) {
          await auditFor(ctx, request, plan.subject, { action: 'token.refresh', object: `session:${plan.session_id}`, decision: 'error', reason: 'directory_unavailable', details: { session_id: plan.session_id, detail: err.directoryError.detail ?? err.directoryError.reason } });
        }
        throw err;
      });
      const change = current === undefined ? undefined : groupChange(plan.subject.groups, current.groups);
      await auditFor(ctx, request, current ?? plan.subject, {
        action: 'token.refresh',
        object: `session:${plan.session_id}`,
        decision: 'allow',
        reason: current === undefined ? 'refresh token rotated' : 'refresh token rotated; the directory still has the account',
        details: { session_id: plan.session_id, jti: plan.jti, ...change },
      });
      return tokenBody(await ctx.tokens.rotate(plan, current));
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      const owner = ownerFields(err.owner);
      const session = err.owner?.session_id;
      await auditFor(ctx, request, owner.identity, {
        action: 'token.refresh',
        object: `session:${session ?? 'unknown'}`,
        decision: 'deny',
        reason: err.reason,
        details: { ...owner.details, ...(err.detail ? { detail: err.detail } : {}), ...(err.reason === 'reused' ? { login_revoked: true } : {}) },
      });
      // A used token presented again was stolen or replayed: the login ends, once that is recorded.
      if (err.reason === 'reused' && session) await ctx.tokens.revoke(session, 'refresh token reused');
      // Gone from the directory: the login ends, with its certificates and browser session.
      if (err.reason === 'account_gone' && session) await ctx.tokens.revoke(session, 'the directory no longer has the account');
      throw new GatehouseError('unauthenticated', refusal(err.reason));
    }
  });

  app.post('/v1/auth/logout', { config: pub, schema: { summary: 'End the login: refresh tokens, access tokens, the browser session and its certificates', querystring: NoQuery, body: LogoutBody } }, async (request, reply) => {
    const body = request.body; // a missing body is a 400 (it is validated as null)
    let sessionId: string | undefined;
    let identity: Identity | undefined;
    if (request.headers.authorization || request.cookies?.[SESSION_COOKIE]) {
      try {
        identity = await ctx.authenticate(request);
        sessionId = identity.session_id;
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
      }
    }
    if (!sessionId && body.refresh_token) {
      const row = await ctx.store.db.selectFrom('refresh_tokens').select('family_id').where('hash', '=', sha256(body.refresh_token)).where('kind', '=', 'refresh').executeTakeFirst();
      sessionId = row?.family_id;
    }
    if (!sessionId) throw new GatehouseError('unauthenticated', 'nothing to log out: present the access token, the session cookie or the refresh token');
    // Who logs out: the presented credential's person, else the owner of the refresh token (ours, found by its hash).
    const family = await ctx.tokens.family(sessionId);
    const actor = identity ?? subjectOf(family);
    const certs = await ctx.store.db.selectFrom('client_certificates').select(['serial', 'user']).where('family_id', '=', sessionId).where('revoked_at', 'is', null).execute();
    const serials = certs.map((c) => c.serial);
    // Recorded first, in one commit (one turn of the event loop): the logout and each certificate it revokes.
    await Promise.all([
      auditFor(ctx, request, actor, { action: 'auth.logout', object: `session:${sessionId}`, decision: 'allow', reason: 'logout', details: { session_id: sessionId, certificates_revoked: serials } }),
      ...certs.map((c) =>
        auditFor(ctx, request, actor, { action: 'cert.revoke', object: `cert:${c.serial}`, decision: 'allow', reason: 'its login was logged out', details: { serial: c.serial, owner: c.user, session_id: sessionId } }),
      ),
    ]);
    await ctx.tokens.revoke(sessionId, 'logout');
    if (serials.length > 0) {
      await ctx.store.db.updateTable('client_certificates').set({ revoked_at: new Date(ctx.tokens.clock()).toISOString(), revoked_by: actor.user }).where('serial', 'in', serials).where('revoked_at', 'is', null).execute();
    }
    for (const serial of serials) ctx.authenticate.forgetCertificate(serial);
    // With the attributes they were set with: a browser ignores a __Host- clearing that is not Secure.
    reply.clearCookie(SESSION_COOKIE, { ...HOST_COOKIE, httpOnly: true });
    reply.clearCookie(CSRF_COOKIE, { ...HOST_COOKIE, httpOnly: false });
    return { status: 'logged_out', session_id: sessionId };
  });
}

/** The provider's ?error= on the callback: recorded as a plain code (or its hash), never as sent. */
function providerRefusal(error: string): LoginError {
  return new LoginError(error === 'access_denied' ? 'access_denied' : 'provider_error', 'the SSO provider did not sign you in', `provider error ${codeOrHash(error)}`);
}

function requireOidc(ctx: RouteContext) {
  if (!ctx.oidc) throw new GatehouseError('not_found', 'SSO login is not configured on this gateway (oidc.issuer or dev_idp.enabled)');
  return ctx.oidc;
}

/** The pair as TokenResponse publishes it: the session's ids and other members stay out. */
/** The client's message for a refused refresh: generic, except where the person can act on the cause. */
function refusal(reason: string): string {
  if (reason === 'reused') return 'this refresh token was already used; the login has been ended for safety, log in again';
  if (reason === 'account_gone') return 'the directory no longer has this account (deleted or disabled); the login has ended';
  if (reason === 'method_disabled') return 'LDAP login is no longer enabled on this gateway; log in again another way';
  return 'invalid or expired refresh token; log in again';
}

function tokenBody(pair: Static<typeof TokenResponse>): Static<typeof TokenResponse> {
  return { access_token: pair.access_token, refresh_token: pair.refresh_token, token_type: pair.token_type, expires_in: pair.expires_in };
}

/**
 * Only a path on this gateway: an absolute URL would make the sign-in an open redirect, and a
 * browser reads `/<tab>/evil.example` or `/\\evil.example` as `//evil.example`. So: one leading
 * slash, printable ASCII without spaces, no `//` and no backslash anywhere, and it must resolve to
 * this origin.
 */
export function isLocalPath(value: string): boolean {
  if (value.length === 0 || value.length > 2048) return false;
  if (!/^\/[\x21-\x7e]*$/.test(value) || value.includes('//') || value.includes('\\')) return false;
  try {
    const base = 'https://gatehouse.invalid';
    return new URL(value, base).origin === base;
  } catch {
    return false;
  }
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
    case 'browser_mismatch':
      return new GatehouseError('forbidden', err.message);
    case 'incomplete_callback':
      return new GatehouseError('invalid_request', err.message, { field: 'querystring.code' });
    case 'expired':
      return new GatehouseError('expired_token', 'the login code expired; start again');
    default:
      return new GatehouseError('unauthenticated', err.message);
  }
}
