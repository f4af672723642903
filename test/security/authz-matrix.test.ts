// Issue 15, the authorization matrix: every route of the gateway × every role of the demo policy
// (analyst alice, admin bob, auditor carol, contractor dave, nobody, and a credential whose login
// was logged out) with the status each must get, against a real gateway, engine and IdP.
//
// The routes come from the running gateway's /openapi.json, which @fastify/swagger builds from
// every route added after it (src/gateway/app.ts installs it before any route). A route that is
// added without an entry in MATRIX below fails the first test: decide who may call it, and write
// it down here. Requests are cheap: the only jobs started are two copies of a two-row dataset.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/auth/index.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { fetchTls } from '../support/https.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

const ROLES = ['alice', 'bob', 'carol', 'dave', 'anonymous', 'revoked'] as const;
type Role = (typeof ROLES)[number];
type Expected = Record<Role, number>;

/** What every role gets on a route that needs no credential (a revoked one is ignored there). */
const anyone = (status: number): Expected => ({ alice: status, bob: status, carol: status, dave: status, anonymous: status, revoked: status });
/** A protected route: the four people as given; no credential and a logged-out one get 401. */
const people = (alice: number, bob: number, carol: number, dave: number): Expected => ({ alice, bob, carol, dave, anonymous: 401, revoked: 401 });

interface Fixture {
  jobId: string;
  serial: string;
  csr: string;
  /** A login of the role's own that the logout route may end (the matrix's other tokens must live). */
  disposable: Partial<Record<Role, string>>;
}

interface Request {
  path: string;
  body?: unknown;
  /** A text/csv body instead of JSON (an upload's partition). */
  csv?: string;
  /** Replaces the role's usual token (logout ends the login it is given). */
  token?: string | undefined;
}

interface Case {
  request: (f: Fixture, role: Role) => Request;
  expect: Expected;
  /** Why, where the status is not obvious from the demo policy. */
  why?: string;
}

let outputs = 0;
const copyJob = (role: Role) => ({
  name: 'matrix',
  input: 'scratch/tiny',
  output: `scratch/matrix-${role}-${++outputs}`,
  runtime: 'python',
  source: "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n",
  resources: { cores: 1, memory_mb: 256, time_limit_s: 60 },
});

/** Keyed by `METHOD /path` as /openapi.json names it (`{id}` for a parameter). */
const MATRIX: Record<string, Case> = {
  // Plumbing: public by design, no user data in it.
  'GET /healthz': { request: () => ({ path: '/healthz' }), expect: anyone(200) },
  'GET /readyz': { request: () => ({ path: '/readyz' }), expect: anyone(200) },
  'GET /metrics': { request: () => ({ path: '/metrics' }), expect: anyone(200) },
  'GET /openapi.json': { request: () => ({ path: '/openapi.json' }), expect: anyone(200) },
  'GET /.well-known/jwks.json': { request: () => ({ path: '/.well-known/jwks.json' }), expect: anyone(200) },
  'GET /v1/certs/crl': { request: () => ({ path: '/v1/certs/crl' }), expect: anyone(200) },

  // Logging in: public, and what is sent decides, never who asks.
  'POST /v1/auth/ldap': { request: () => ({ path: '/v1/auth/ldap', body: { username: 'nobody', password: 'wrong' } }), expect: anyone(404), why: 'no directory configured on this stack: 404 not_found' },
  'POST /v1/auth/ldap/session': { request: () => ({ path: '/v1/auth/ldap/session', body: { username: 'nobody', password: 'wrong' } }), expect: anyone(404), why: 'no directory configured on this stack: 404 not_found' },
  'GET /v1/auth/methods': { request: () => ({ path: '/v1/auth/methods' }), expect: anyone(200), why: 'which sign-ins the console offers' },
  'POST /v1/auth/device': { request: () => ({ path: '/v1/auth/device', body: {} }), expect: anyone(200) },
  'POST /v1/auth/device/token': { request: () => ({ path: '/v1/auth/device/token', body: { device_code: 'not-a-code' } }), expect: anyone(400), why: 'a device code the gateway never handed out is invalid_grant (RFC 8628), answered by the gateway without asking the IdP' },
  'GET /v1/auth/oidc/login': { request: () => ({ path: '/v1/auth/oidc/login' }), expect: anyone(302), why: 'redirects to the SSO provider' },
  'GET /v1/auth/oidc/callback': { request: () => ({ path: '/v1/auth/oidc/callback?state=unknown&code=x' }), expect: anyone(401), why: 'an unknown state is a failed login' },
  'POST /v1/auth/token': { request: () => ({ path: '/v1/auth/token', body: { grant_type: 'refresh_token', refresh_token: 'not-a-token' } }), expect: anyone(401) },
  'POST /v1/auth/logout': {
    request: (f, role) => ({ path: '/v1/auth/logout', body: {}, token: role === 'anonymous' || role === 'revoked' ? undefined : f.disposable[role] }),
    // Public (a refresh token alone may end its login), but there must be a login to end.
    expect: { alice: 200, bob: 200, carol: 200, dave: 200, anonymous: 401, revoked: 401 },
    why: "each person ends a disposable login of their own; the revoked credential's login is over",
  },

  // Who one is, and certificates of one's own.
  'GET /v1/whoami': { request: () => ({ path: '/v1/whoami' }), expect: people(200, 200, 200, 200) },
  'POST /v1/certs': { request: (f) => ({ path: '/v1/certs', body: { csr: f.csr } }), expect: people(200, 200, 200, 200), why: 'anyone logged in gets a certificate naming themselves' },
  'DELETE /v1/certs/{serial}': {
    request: (f) => ({ path: `/v1/certs/${f.serial}` }),
    expect: people(200, 200, 404, 404),
    why: "alice's certificate: its owner and a certificate admin (bob) may revoke it; to others it does not exist",
  },

  // The console's pages and buttons for the caller, decided on the serving policy.
  'GET /v1/console/capabilities': { request: () => ({ path: '/v1/console/capabilities' }), expect: people(200, 200, 200, 200), why: "one's own capabilities" },

  // Policy: admins manage it, auditors read it; anyone may explain their own access.
  'GET /v1/certs': { request: () => ({ path: '/v1/certs?all=1' }), expect: people(403, 200, 403, 403), why: "everyone's certificates: admin on cert:* (bob); one's own need no grant" },
  'GET /v1/policy/diff': { request: () => ({ path: '/v1/policy/diff' }), expect: people(403, 200, 200, 403) },
  'GET /v1/quota/users': { request: () => ({ path: '/v1/quota/users' }), expect: people(403, 200, 403, 403), why: "everyone's usage: admin on job:* (bob)" },
  'GET /v1/compute/slots': { request: () => ({ path: '/v1/compute/slots' }), expect: people(403, 200, 403, 403), why: "everyone's queue: admin on job:* (bob)" },
  'GET /v1/audit/events/{id}': { request: () => ({ path: '/v1/audit/events/1' }), expect: people(403, 403, 200, 403) },
  'GET /v1/audit/lineage/{job}': { request: (f) => ({ path: `/v1/audit/lineage/${f.jobId}` }), expect: people(403, 403, 200, 403) },
  'GET /v1/policy': { request: () => ({ path: '/v1/policy' }), expect: people(403, 200, 200, 403) },
  'POST /v1/policy/reload': { request: () => ({ path: '/v1/policy/reload', body: {} }), expect: people(403, 200, 403, 403) },
  'POST /v1/policy/explain': {
    request: () => ({ path: '/v1/policy/explain', body: { user: 'alice', action: 'read', object: 'dataset:words' } }),
    expect: people(200, 200, 200, 403),
    why: "alice explains her own access; explaining someone else's needs read on the policy (admins, auditors)",
  },

  // The audit trail: auditors only (admins run the system, they do not audit it).
  'GET /v1/audit': { request: () => ({ path: '/v1/audit?limit=1' }), expect: people(403, 403, 200, 403) },
  'GET /v1/audit/export': { request: () => ({ path: '/v1/audit/export?action=job.submit' }), expect: people(403, 403, 200, 403) },
  'GET /v1/audit/verify': { request: () => ({ path: '/v1/audit/verify' }), expect: people(403, 403, 200, 403) },
  // Which gateways' chains make up the trail: auditors and admins see it; admins retire a gone one.
  'GET /v1/audit/chains': { request: () => ({ path: '/v1/audit/chains' }), expect: people(403, 200, 200, 403) },
  'POST /v1/audit/chains/{name}/retire': {
    request: () => ({ path: '/v1/audit/chains/127.0.0.1:1/retire', body: { reason: 'decommissioned' } }),
    expect: people(403, 404, 403, 403),
    why: 'bob may retire a chain, but no gateway of this stack is called 127.0.0.1:1',
  },

  // Data and jobs.
  'GET /v1/datasets': { request: () => ({ path: '/v1/datasets' }), expect: people(200, 200, 200, 200), why: 'everyone sees the datasets they may use (possibly none)' },
  // One dataset's reads: decided on it and its labels in the handler; what may not be read does not exist.
  'GET /v1/datasets/{a}': { request: () => ({ path: '/v1/datasets/words' }), expect: people(200, 200, 404, 200), why: 'words is granted to analysts and contractors; to the auditor it does not exist' },
  'GET /v1/datasets/{a}/{b}': { request: () => ({ path: '/v1/datasets/scratch/tiny' }), expect: people(200, 200, 404, 404), why: 'scratch/* is granted to analysts (and admins through them) only' },
  'GET /v1/datasets/{a}/partitions/{n}': { request: () => ({ path: '/v1/datasets/words/partitions/0' }), expect: people(200, 200, 404, 200) },
  'GET /v1/datasets/{a}/{b}/partitions/{n}': { request: () => ({ path: '/v1/datasets/scratch/tiny/partitions/0?preview=1' }), expect: people(200, 200, 404, 404) },
  'POST /v1/jobs': {
    request: (_f, role) => ({ path: '/v1/jobs', body: copyJob(role) }),
    expect: people(201, 201, 403, 403),
    why: 'reading scratch/tiny is granted to analysts (and admins through them); the auditor and the contractor may not read it',
  },
  'POST /v1/jobs/preview': {
    request: (_f, role) => ({ path: '/v1/jobs/preview', body: copyJob(role) }),
    expect: people(200, 200, 200, 200),
    why: 'a dry run answers everyone: the refusal (with its rule) is in the body, recorded as job.preview',
  },
  'GET /v1/jobs': { request: () => ({ path: '/v1/jobs' }), expect: people(200, 200, 200, 200), why: "one's own jobs" },
  'GET /v1/jobs/{id}': { request: (f) => ({ path: `/v1/jobs/${f.jobId}` }), expect: people(200, 200, 404, 404), why: "alice's job: hers, and bob's by job:* admin; to others it does not exist" },
  'DELETE /v1/jobs/{id}': { request: (f) => ({ path: `/v1/jobs/${f.jobId}` }), expect: people(409, 409, 404, 404), why: "alice's job has ended: the ones who may cancel it are told so (409), to others it does not exist" },
  'GET /v1/jobs/{id}/logs': { request: (f) => ({ path: `/v1/jobs/${f.jobId}/logs` }), expect: people(200, 200, 404, 404) },
  // Removing a dataset: its owner's or an admin's; to whoever may not read it either it does not exist.
  'DELETE /v1/datasets/{a}': {
    request: (_f, role) => ({ path: `/v1/datasets/${role === 'bob' ? 'doomed' : 'words'}` }),
    expect: people(403, 200, 404, 403),
    why: 'words is read by analysts and contractors but is not theirs (403, the rule); to the auditor it does not exist; bob is admin on dataset:* (he removes another dataset, so words stays for the others)',
  },
  'DELETE /v1/datasets/{a}/{b}': {
    request: (_f, role) => ({ path: `/v1/datasets/scratch/doomed-${role === 'bob' ? 'bob' : 'alice'}` }),
    expect: people(200, 200, 404, 404),
    why: "scratch/doomed-alice is alice's own; bob removes alice's scratch/doomed-bob as admin; the auditor and the contractor may not read scratch/*",
  },
  // Uploads: into a namespace the caller may write (an empty partition here), committed as the caller's own.
  'PUT /v1/datasets/{a}/partitions/{n}': { request: () => ({ path: '/v1/datasets/matrixup/partitions/0', csv: 'id\n1\n' }), expect: people(403, 403, 403, 403), why: 'nobody writes a top-level dataset in the demo policy (admin on dataset:* is not write)' },
  'PUT /v1/datasets/{a}/{b}/partitions/{n}': {
    request: (_f, role) => ({ path: `/v1/datasets/scratch-${role}/up/partitions/0`, csv: 'id\n1\n' }),
    expect: people(200, 200, 403, 200),
    why: 'each person writes their own scratch-<user>/ namespace (analysts, admins through them, contractors); the auditor writes nothing',
  },
  'POST /v1/datasets/{a}/commit': { request: () => ({ path: '/v1/datasets/matrixup/commit', body: { partitions: 1 } }), expect: people(403, 403, 403, 403) },
  'POST /v1/datasets/{a}/{b}/commit': { request: (_f, role) => ({ path: `/v1/datasets/scratch-${role}/up/commit`, body: { partitions: 1 } }), expect: people(200, 200, 403, 200), why: 'the partition each staged above becomes their own dataset' },
  'DELETE /v1/uploads/{a}': { request: () => ({ path: '/v1/uploads/nothing' }), expect: people(404, 404, 404, 404), why: "one's own staged uploads only; nothing is staged under that name" },
  'DELETE /v1/uploads/{a}/{b}': { request: (_f, role) => ({ path: `/v1/uploads/scratch-${role}/never` }), expect: people(404, 404, 404, 404), why: "one's own staged uploads only; nothing is staged under that name" },
  'GET /v1/quota': { request: () => ({ path: '/v1/quota' }), expect: people(200, 200, 200, 200), why: "one's own quota" },
};

let stack: Stack;
const tokens: Partial<Record<Role, string>> = {};
const fixture: Fixture = { jobId: '', serial: '', csr: '', disposable: {} };

async function send(method: string, request: Request, token: string | undefined) {
  return fetchTls(`${stack.url}${request.path}`, {
    ca: stack.ca,
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(request.csv !== undefined ? { 'content-type': 'text/csv' } : {}) },
    ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
    ...(request.csv !== undefined ? { body: request.csv } : {}),
  });
}

/** `METHOD /path` for every operation /openapi.json documents. */
async function documentedRoutes(): Promise<string[]> {
  const doc = (await stack.api('/openapi.json')).json<{ paths: Record<string, Record<string, unknown>> }>();
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
}

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  for (const name of ['doomed', 'scratch/doomed-alice', 'scratch/doomed-bob']) {
    await writeDataset(stack.dataRoot, name, { format: 'csv', columns: ['id'], owner: name === 'doomed' ? 'platform' : 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id\n1\n', rows: 1 }] });
  }
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  for (const user of ['alice', 'bob', 'carol', 'dave'] as const) {
    tokens[user] = await stack.login(user);
    fixture.disposable[user] = await stack.login(user);
  }
  // A credential that was good: alice's second login, logged out.
  tokens.revoked = await stack.login('alice');
  expect((await stack.api('/v1/auth/logout', tokens.revoked, { method: 'POST', body: {} })).status).toBe(200);
  // alice's job, run to its end; alice's certificate.
  const submitted = await stack.api('/v1/jobs', tokens.alice, { method: 'POST', body: copyJob('alice') });
  expect(submitted.status, submitted.body).toBe(201);
  fixture.jobId = submitted.json<{ id: string }>().id;
  await until(async () => (['succeeded', 'failed'].includes((await stack.api(`/v1/jobs/${fixture.jobId}`, tokens.alice)).json<{ state: string }>().state) ? true : undefined), 60_000, 'the fixture job to end');
  fixture.csr = (await createKeyAndCsr()).csrPem;
  const cert = await stack.api('/v1/certs', tokens.alice, { method: 'POST', body: { csr: fixture.csr } });
  expect(cert.status, cert.body).toBe(200);
  fixture.serial = cert.json<{ serial: string }>().serial;
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

describe('the authorization matrix', () => {
  it('has an entry for every route the gateway serves, and no entry for a route it does not', async () => {
    const routes = await documentedRoutes();
    expect(routes.length).toBeGreaterThan(20);
    const missing = routes.filter((r) => !(r in MATRIX));
    expect(missing, `routes without an entry in MATRIX (test/security/authz-matrix.test.ts): decide who may call them`).toEqual([]);
    expect(Object.keys(MATRIX).filter((r) => !routes.includes(r)), 'entries for routes the gateway does not serve').toEqual([]);
  });

  it('documents what every route needs (x-gatehouse-access): public, or a need the gateway declared and enforces', async () => {
    const doc = (await stack.api('/openapi.json')).json<{ paths: Record<string, Record<string, { 'x-gatehouse-access'?: Record<string, unknown> }>> }>();
    const access = Object.fromEntries(Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([m, op]) => [`${m.toUpperCase()} ${path}`, op['x-gatehouse-access'] ?? null])));
    expect(Object.keys(access).length).toBeGreaterThan(20);
    // Start-up refuses a route without one; the document shows each, so this guards the guard.
    expect(Object.entries(access).filter(([, a]) => a === null).map(([r]) => r), 'routes without a declared access').toEqual([]);
    for (const [route, a] of Object.entries(access)) {
      const kinds = ['public', 'own', 'decided_in_handler', 'object'].filter((k) => k in a!);
      expect(kinds, route).toHaveLength(1);
      // A protected route refuses an anonymous caller: only a public one may answer them otherwise.
      if (!('public' in a!)) expect(MATRIX[route]?.expect.anonymous, route).toBe(401);
    }
    // The routes the stage decides, as declared (a denial answers what the matrix expects).
    expect(Object.fromEntries(Object.entries(access).filter(([, a]) => 'object' in a!))).toEqual({
      'GET /v1/policy': { object: 'policy:files', action: 'read', denial: 403, audit: 'policy.view' },
      'POST /v1/policy/reload': { object: 'policy:files', action: 'admin', denial: 403, audit: 'policy.reload_request' },
      'GET /v1/audit': { object: 'audit:events', action: 'read', denial: 403, audit: 'audit.query' },
      'GET /v1/audit/export': { object: 'audit:events', action: 'read', denial: 403, audit: 'audit.query' },
      'GET /v1/audit/verify': { object: 'audit:events', action: 'read', denial: 403, audit: 'audit.query' },
      'GET /v1/audit/chains': { object: 'audit:chains', action: 'read', denial: 403, audit: 'audit.chains' },
      'GET /v1/policy/diff': { object: 'policy:files', action: 'read', denial: 403, audit: 'policy.view' },
      'GET /v1/audit/events/{id}': { object: 'audit:events', action: 'read', denial: 403, audit: 'audit.query' },
      'GET /v1/audit/lineage/{job}': { object: 'audit:events', action: 'read', denial: 403, audit: 'audit.query' },
    });
  });

  it('gives every role the status the demo policy says, on every route', async () => {
    const got: Record<string, Partial<Expected>> = {};
    const want: Record<string, Expected> = {};
    for (const [route, c] of Object.entries(MATRIX)) {
      const [method] = route.split(' ') as [string];
      want[route] = c.expect;
      got[route] = {};
      for (const role of ROLES) {
        const request = c.request(fixture, role);
        const token = 'token' in request ? request.token : role === 'anonymous' ? undefined : tokens[role];
        const answer = await send(method, request, token);
        got[route]![role] = answer.status;
        // Every refusal is the gateway's JSON error body, never a stack trace or an empty answer.
        if (answer.status >= 400) expect(answer.json<{ error: string; message: string }>(), `${route} as ${role}`).toMatchObject({ error: expect.any(String), message: expect.any(String) });
        if (answer.status === 401) expect(answer.json<{ error: string }>().error, `${route} as ${role}`).toBe('unauthenticated');
        if (answer.status === 403) expect(answer.json<{ error: string }>().error, `${route} as ${role}`).toBe('forbidden');
      }
    }
    // One comparison, so that a failure shows every cell that differs at once.
    expect(got).toEqual(want);
  }, 180_000);

});
