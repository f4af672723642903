// Security review of the console's browser session (issue 19): every route that changes something,
// as /openapi.json lists them now (uploads, removals, previews and whatever comes next included),
// refuses the session cookie without the CSRF token bound to it: a page of another site (or a
// sibling subdomain, to which SameSite is no bar) can make the browser send the cookie, never the
// token. The same cookie with its token is let through to the route's own checks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchTls, type Response } from '../support/https.js';
import { completeCodeFlow } from '../support/oidc-browser.js';
import { Stack } from '../support/stack.js';

const SESSION_COOKIE = '__Host-gatehouse_session';
const CSRF_COOKIE = '__Host-gatehouse_csrf';
const LOGIN_COOKIE = '__Host-gatehouse_oidc';
const CHANGES = ['post', 'put', 'patch', 'delete'] as const;

let stack: Stack;
let session: { cookie: string; csrf: string };

const cookieOf = (r: Response, name: string) => ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`))?.split(';')[0]?.slice(name.length + 1);

/** Alice signs in through SSO as a browser does: the session cookie and its CSRF token. */
async function signIn(user: string): Promise<{ cookie: string; csrf: string }> {
  const start = await fetchTls(`${stack.url}/v1/auth/oidc/login?return_to=/console/`, { ca: stack.ca });
  expect(start.status, start.body).toBe(302);
  const back = await completeCodeFlow(String(start.headers.location), { username: user, password: `${user}-demo` });
  const landed = await fetchTls(`${stack.url}${back.pathname}${back.search}`, { ca: stack.ca, headers: { cookie: `${LOGIN_COOKIE}=${cookieOf(start, LOGIN_COOKIE)}` } });
  expect(landed.status, landed.body).toBe(302);
  return { cookie: cookieOf(landed, SESSION_COOKIE)!, csrf: cookieOf(landed, CSRF_COOKIE)! };
}

beforeAll(async () => {
  stack = await Stack.start();
  session = await signIn('alice');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('CSRF on every cookie-authenticated change', () => {
  it('refuses the session cookie without its CSRF token on every non-public POST, PUT, PATCH and DELETE the gateway documents', async () => {
    const spec = (await fetchTls(`${stack.url}/openapi.json`, { ca: stack.ca })).json<{ paths: Record<string, Record<string, { security?: unknown[] }>> }>();
    const routes: string[] = [];
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const method of CHANGES) if (methods[method] !== undefined && !path.startsWith('/v1/auth/')) routes.push(`${method.toUpperCase()} ${path}`);
    }
    // The surfaces this review is about are among them (the sweep is not empty by accident).
    expect(routes).toEqual(expect.arrayContaining(['POST /v1/jobs', 'DELETE /v1/jobs/{id}', 'DELETE /v1/certs/{serial}', 'POST /v1/policy/explain']));
    const let_through: string[] = [];
    for (const route of routes) {
      const [method, template] = route.split(' ') as [string, string];
      const path = template.replace(/\{[^}]+\}/g, 'x');
      // As another site's page would send it: the cookie the browser holds, no token (or a made-up one).
      for (const csrf of [undefined, 'made-up-token-made-up-token-0000']) {
        const answer = await fetchTls(`${stack.url}${path}`, {
          ca: stack.ca,
          method,
          headers: { cookie: `${SESSION_COOKIE}=${session.cookie}; ${CSRF_COOKIE}=${session.csrf}`, origin: 'https://evil.example', ...(csrf ? { 'x-csrf-token': csrf } : {}), ...(method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
          ...(method === 'DELETE' ? {} : { body: '{}' }),
        });
        if (answer.status !== 401) let_through.push(`${route} (${csrf ? 'forged token' : 'no token'}): ${answer.status} ${answer.body.slice(0, 120)}`);
      }
    }
    expect(let_through).toEqual([]);
    // The session itself is untouched by all that, and its own token works.
    const me = await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, headers: { cookie: `${SESSION_COOKIE}=${session.cookie}` } });
    expect(me.json()).toMatchObject({ user: 'alice', credential: 'session' });
    const explain = await fetchTls(`${stack.url}/v1/policy/explain`, {
      ca: stack.ca,
      method: 'POST',
      headers: { cookie: `${SESSION_COOKIE}=${session.cookie}`, 'x-csrf-token': session.csrf, 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'alice', action: 'read', object: 'dataset:scratch/x' }),
    });
    expect(explain.status, explain.body).toBe(200);
  }, 120_000);
});
