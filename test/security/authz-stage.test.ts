// Issue 16 point 2, authorization as a stage, closed by default. A gateway composed as
// src/gateway/app.ts composes it (plumbing, declared access required, real authentication with real
// tokens, the authorization stage on the demo policy, the real hash-chained trail), with routes of
// the test's own:
//   - a route that declares neither `public` nor an authorization need is refused at start-up, and
//     so is one whose need names an unknown action or audit action; the engine's plumbing alone
//     (src/compute) keeps no such rule;
//   - a declared need that the policy denies answers 403 (or 404 where declared) and is recorded
//     as a deny BEFORE the handler runs: the handler's side effect never happens;
//   - an allowed request is recorded as an allow with the serving policy version and the rule's
//     line, and the handler finds that event already in the trail when it runs.
import Fastify, { type FastifyInstance } from 'fastify';
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/index.js';
import { installPlumbing, NoQuery, serverOptions } from '../../src/http/index.js';
import { loadPolicy, policyAuthorizer, type PolicySnapshot, requireDeclaredAccess } from '../../src/policy/index.js';
import { TEST_POLICIES } from '../support/gatehouse.js';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';

const Name = Type.Object({ name: Type.String({ pattern: '^[a-z0-9/_-]{1,64}$' }) }, { additionalProperties: false });
const Filter = Type.Object({ user: Type.Optional(Type.String()) }, { additionalProperties: false });

let policy: PolicySnapshot;

beforeAll(async () => {
  policy = await loadPolicy(TEST_POLICIES);
});

describe('start-up refuses a route that does not declare what it needs', () => {
  const refused = (routes: (app: FastifyInstance) => void) => startIdentityApp({ authorization: { authorizer: policyAuthorizer(() => policy), routes } });

  it('refuses a route with neither public nor an authorization need, naming it', async () => {
    await expect(refused((app) => app.get('/v1/forgotten', { schema: { querystring: NoQuery } }, async () => ({ open: true })))).rejects.toThrow(
      /route GET \/v1\/forgotten declares neither config\.public nor config\.authorize/,
    );
  });

  it('refuses a need with an unknown policy action, an audit action off the closed list, or no denial', async () => {
    const need = { object: 'audit:events', action: 'read', audit: 'audit.query', denial: 403 } as const;
    await expect(refused((app) => app.get('/v1/a', { config: { authorize: { ...need, action: 'delete' } }, schema: { querystring: NoQuery } }, async () => ({})))).rejects.toThrow(/route GET \/v1\/a config\.authorize\.action must be one of read, write, admin/);
    // The same hook on a bare app (cheaper than a gateway each): each malformed need, named.
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ authorize: { ...need, audit: 'audit.peek' } }, /config\.authorize\.audit: "audit\.peek" is not an audit action/],
      [{ authorize: { ...need, denial: 401 } }, /config\.authorize\.denial must be 403 or 404/],
      [{ authorize: { ...need, object: 'events' } }, /config\.authorize\.object: "events" has no kind/],
      [{ authorize: { own: '' } }, /config\.authorize\.own must say/],
      [{ authorize: { own: 'mine', decidedInHandler: 'and here' } }, /config\.authorize has both own and decidedInHandler/],
      [{ public: true, authorize: need }, /declares both config\.public and config\.authorize/],
      [{ public: false }, /declares neither config\.public nor config\.authorize/],
    ];
    for (const [config, message] of cases) {
      const bare = Fastify({ ...serverOptions(), logger: false });
      requireDeclaredAccess(bare);
      expect(() => bare.get('/v1/x', { config, schema: { querystring: NoQuery } }, async () => ({})), JSON.stringify(config)).toThrow(message);
      await bare.close();
    }
  });

  it('accepts the same app with every route declared (the refusals above are about the routes, not the app)', async () => {
    const app = await startIdentityApp({ authorization: { authorizer: policyAuthorizer(() => policy), routes: (a) => a.get('/v1/mine', { config: { authorize: { own: "the caller's own" } }, schema: { querystring: NoQuery } }, async () => ({})) } });
    await app.close();
  });

  it('keeps the rule off the engine: its plumbing alone accepts an undeclared route (it has its own mTLS and ticket rules)', async () => {
    const engineLike = Fastify({ ...serverOptions(), logger: false });
    installPlumbing(engineLike);
    engineLike.get('/v1/undeclared', { schema: { querystring: NoQuery } }, async () => ({}));
    await engineLike.ready();
    await engineLike.close();
  });
});

describe('the authorization stage', () => {
  let app: IdentityApp;
  /** What the handlers did: each entry is a handler that ran, with whether its allow was already recorded. */
  const ran: { route: string; requestId: string; allowRecorded: boolean }[] = [];
  const token: Record<string, string> = {};

  const eventOf = (requestId: string): AuditEvent[] => app.events().filter((e) => e.request_id === requestId);
  const call = (path: string, user: string, method = 'GET') => app.call(path, { method, headers: { authorization: `Bearer ${token[user]}` } });

  beforeAll(async () => {
    app = await startIdentityApp({
      authorization: {
        authorizer: policyAuthorizer(() => policy),
        routes: (server) => {
          const handler = (route: string) => async (request: { id: string }) => {
            ran.push({ route, requestId: request.id, allowRecorded: eventOf(request.id).some((e) => e.decision === 'allow') });
            return { ran: route };
          };
          // As the audit routes declare it: auditors only, a denial answers 403, the filter recorded.
          server.get('/v1/test/trail', { config: { authorize: { object: 'audit:events', action: 'read', audit: 'audit.query', denial: 403, details: (r) => ({ kind: 'test', filter: { ...r.query } }) } }, schema: { querystring: Filter } }, handler('trail'));
          // Existence must not leak: a denial answers 404.
          server.delete('/v1/test/datasets/:name', { config: { authorize: { object: (r) => `dataset:${r.params.name}`, action: 'admin', audit: 'dataset.authorize', denial: 404 } }, schema: { params: Name, querystring: NoQuery } }, handler('drop'));
        },
      },
    });
    for (const [user, groups] of [['alice', ['analysts']], ['bob', ['platform-admins']], ['carol', ['auditors']]] as const) {
      token[user] = (await app.identity.tokens.login({ user, groups: [...groups], auth_method: 'ldap' })).access_token;
    }
  });
  afterAll(async () => {
    await app?.close();
  });

  it('denies with 403 and the rule, records the deny, and never runs the handler', async () => {
    const answer = await call('/v1/test/trail?user=bob', 'alice');
    expect(answer.status, answer.body).toBe(403);
    expect(answer.json()).toMatchObject({ error: 'forbidden', message: 'no rule grants read on audit:events to user:alice', policy_version: policy.version });
    const requestId = String(answer.headers['x-request-id']);
    expect(eventOf(requestId)).toEqual([
      expect.objectContaining({
        actor: expect.objectContaining({ user: 'alice', groups: ['analysts'], auth_method: 'ldap' }),
        action: 'audit.query',
        object: 'audit:events',
        decision: 'deny',
        reason: 'no rule grants read on audit:events to user:alice',
        policy_version: policy.version,
        details: { requested: 'read', kind: 'test', filter: { user: 'bob' } },
      }),
    ]);
    expect(ran.filter((r) => r.requestId === requestId)).toEqual([]);
  });

  it('denies with 404 where the route declares it, records the deny, and never runs the handler', async () => {
    const answer = await call('/v1/test/datasets/customers', 'alice', 'DELETE');
    expect(answer.status, answer.body).toBe(404);
    expect(answer.json()).toEqual({ error: 'not_found', message: 'no dataset:customers' });
    const requestId = String(answer.headers['x-request-id']);
    expect(eventOf(requestId)).toEqual([expect.objectContaining({ action: 'dataset.authorize', object: 'dataset:customers', decision: 'deny', policy_version: policy.version, details: { requested: 'admin' } })]);
    expect(ran.filter((r) => r.requestId === requestId)).toEqual([]);
  });

  it('records an allow with the policy version and the rule line before the handler runs', async () => {
    const answer = await call('/v1/test/trail?user=alice', 'carol');
    expect(answer.status, answer.body).toBe(200);
    const requestId = String(answer.headers['x-request-id']);
    const [allow, ...more] = eventOf(requestId);
    expect(more).toEqual([]);
    expect(allow).toMatchObject({ action: 'audit.query', object: 'audit:events', decision: 'allow', policy_version: policy.version, details: { requested: 'read', rule_line: expect.stringMatching(/^policy\.csv:\d+$/), kind: 'test', filter: { user: 'alice' } } });
    expect(allow!.reason).toMatch(/^allowed by policy\.csv:\d+: p, role:auditors, audit:\*, read, allow$/);
    expect(ran.filter((r) => r.requestId === requestId)).toEqual([{ route: 'trail', requestId, allowRecorded: true }]);

    const dropped = await call('/v1/test/datasets/customers', 'bob', 'DELETE');
    expect(dropped.status, dropped.body).toBe(200);
    const dropId = String(dropped.headers['x-request-id']);
    expect(eventOf(dropId)).toEqual([expect.objectContaining({ decision: 'allow', object: 'dataset:customers', policy_version: policy.version })]);
    expect(ran.filter((r) => r.requestId === dropId)).toEqual([{ route: 'drop', requestId: dropId, allowRecorded: true }]);
  });

  it('leaves public routes and unknown paths alone (no decision, no event)', async () => {
    const before = app.events().length;
    expect((await app.call('/.well-known/jwks.json')).status).toBe(200);
    expect((await call('/v1/nowhere', 'alice')).status).toBe(404);
    expect(app.events().length).toBe(before);
  });

  it('asks for authentication before authorization: no credential is 401, and no decision is recorded', async () => {
    const answer = await app.call('/v1/test/trail');
    expect(answer.status).toBe(401);
    expect(app.events().filter((e) => e.request_id === answer.headers['x-request-id']).map((e) => e.action)).toEqual(['auth.rejected']);
    expect(ran).toHaveLength(2);
  });
});
