// The browser session's two cookies, set the one way every sign-in sets them, and the check that a
// cookie-issuing sign-in was sent by this gateway's own page.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatehouseError } from '../../wire/index.js';
import { CSRF_COOKIE, HOST_COOKIE, type NewSession, SESSION_COOKIE } from '../browser-sessions.js';

/**
 * The session (HttpOnly: no script reads it) and the CSRF token (readable by the page, which echoes it
 * in x-csrf-token on every change; the store holds its hash bound to this session). SameSite is the
 * caller's: Lax where the sign-in ends in a cross-site redirect (SSO), Strict otherwise.
 */
export function setSessionCookies(reply: FastifyReply, session: NewSession, sameSite: 'lax' | 'strict'): void {
  const cookie = { ...HOST_COOKIE, sameSite, expires: session.expiresAt };
  reply.setCookie(SESSION_COOKIE, session.cookie, { ...cookie, httpOnly: true });
  reply.setCookie(CSRF_COOKIE, session.csrf, { ...cookie, httpOnly: false });
}

/**
 * Refuses a request another site's page made: Sec-Fetch-Site as browsers send it, else an Origin that
 * is not this gateway's. A client that sends neither (curl, the CLI) is not a browser being misused.
 */
export function refuseCrossSite(request: FastifyRequest, publicUrl: string): void {
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  const ours = new URL(publicUrl).origin;
  // A browser that sends Sec-Fetch-Site is believed (the console may be reached under another host
  // name than publicUrl); an older one is judged by its Origin.
  const foreign = site !== undefined ? site !== 'same-origin' && site !== 'none' : origin !== undefined && origin !== ours;
  if (foreign) {
    throw new GatehouseError('forbidden', 'a browser sign-in is sent by this gateway’s own console page, not by another site', { field: 'headers.origin' });
  }
}
