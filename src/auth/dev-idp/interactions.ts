// DEVELOPMENT ONLY: the login and consent steps of the development provider, in place of
// oidc-provider's devInteractions. GET /interaction/:uid shows the step the provider asks for;
// POST .../login checks a demo password, POST .../confirm grants the scopes, POST .../abort refuses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { InteractionDetails, InteractionResult } from 'oidc-provider';
import type { Logger } from 'pino';
import { consentPage, errorPage, loginPage, PAGE_HEADERS } from './pages.js';
import { checkPassword, type DevUser } from './users.js';

const ROUTE = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|confirm|abort))?$/;
const MAX_FORM_BYTES = 16 * 1024;

export function isInteractionPath(pathname: string): boolean {
  return ROUTE.test(pathname);
}

export async function handleInteraction(provider: Provider, users: DevUser[], log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const pathname = new URL(req.url ?? '/', 'http://x').pathname;
  const [, uid, step] = ROUTE.exec(pathname) ?? [];
  const method = req.method ?? 'GET';
  if (uid === undefined || (step === undefined ? method !== 'GET' : method !== 'POST')) {
    return send(res, 405, errorPage('method_not_allowed'));
  }

  let details: InteractionDetails;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    return send(res, 400, errorPage('This sign-in request has expired or was already completed.', 'Start again from the application.'));
  }
  // The interaction comes from the cookie; the path must name the same one.
  if (details.uid !== uid) return send(res, 400, errorPage('This sign-in request does not match this browser session.'));

  const client = String(details.params.client_id ?? 'the application');
  const base = `/interaction/${uid}`;

  if (step === undefined) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(`${base}/login`, { client }));
    return send(res, 200, consentPage(`${base}/confirm`, `${base}/abort`, { client, user: details.session?.accountId ?? '', scopes: missingScopes(details) }));
  }

  if (step === 'abort') {
    log.info({ client }, 'dev-idp: sign-in refused by the user');
    return finish(provider, req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' });
  }

  if (step === 'login') {
    if (details.prompt.name !== 'login') return send(res, 400, errorPage('This sign-in request is not waiting for a login.'));
    const form = await readForm(req);
    if (form === undefined) return send(res, 413, errorPage('The form is too large.'));
    const username = form.get('username') ?? '';
    const user = checkPassword(users, username, form.get('password') ?? '');
    if (!user) {
      log.info({ client }, 'dev-idp: login failed (wrong username or password)');
      return send(res, 200, loginPage(`${base}/login`, { client, username, error: 'Wrong username or password.' }));
    }
    log.info({ user: user.username, client }, 'dev-idp: login');
    return finish(provider, req, res, { login: { accountId: user.username } });
  }

  // confirm
  if (details.prompt.name !== 'consent' || !details.session) return send(res, 400, errorPage('This sign-in request is not waiting for consent.'));
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId: details.session.accountId, clientId: client });
  const missing = details.prompt.details;
  if (Array.isArray(missing.missingOIDCScope)) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (Array.isArray(missing.missingOIDCClaims)) grant.addOIDCClaims(missing.missingOIDCClaims as string[]);
  if (isRecord(missing.missingResourceScopes)) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) if (Array.isArray(scopes)) grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return finish(provider, req, res, { consent: details.grantId ? {} : { grantId } });
}

async function finish(provider: Provider, req: IncomingMessage, res: ServerResponse, result: InteractionResult): Promise<void> {
  const returnTo = await provider.interactionResult(req, res, result, { mergeWithLastSubmission: true });
  res.writeHead(303, { location: returnTo, 'content-length': '0', 'cache-control': 'no-store' }).end();
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, PAGE_HEADERS).end(html);
}

function missingScopes(details: InteractionDetails): string[] {
  const scopes = details.prompt.details.missingOIDCScope;
  return Array.isArray(scopes) ? scopes.map(String) : [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The urlencoded form of a POST, or undefined when it is larger than any login form. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
