// Request bodies are taken as sent: a string where a number is expected ("cores": "4"), a number
// where a string is, true where a number is, [4] where 4 is, "x" where ["x"] is, are each refused
// with 400 naming the field, and nothing changes (no job, no certificate, no audit event). Query
// strings are still read as numbers where their schema says so (?limit=5). Every gateway route
// that takes a body (from /openapi.json) must have its cases here, and the engine's POST /jobs is
// tried with a ticket signed for the coerced spec, which it must not run.
import Fastify from 'fastify';
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { installPlumbing, serverOptions } from '../../src/http/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { EngineClient } from '../support/engine.js';
import { Stack } from '../support/stack.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
const tokens: Record<string, string> = {};

const good: JobSpec = { name: 't', input: 'words', output: 'scratch/body-types', runtime: 'python', source: COPY, resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, max_attempts: 1 };
const withResources = (r: Record<string, unknown>) => ({ ...good, resources: { ...good.resources, ...r } });

interface Case {
  body: unknown;
  /** The field the 400 must name. */
  field: string;
}

/** Per route with a body: who calls it, where (a route with parameters: a real path), and bodies of the wrong types. */
const CASES: Record<string, { token?: string; path?: string; cases: Case[] }> = {
  'POST /v1/jobs': {
    token: 'alice',
    cases: [
      { body: withResources({ cores: '1' }), field: 'body.resources.cores' },
      { body: withResources({ cores: '4' }), field: 'body.resources.cores' }, // issue 16's example: not read as 4
      { body: withResources({ memory_mb: '256' }), field: 'body.resources.memory_mb' },
      { body: withResources({ time_limit_s: '60' }), field: 'body.resources.time_limit_s' },
      { body: withResources({ cores: true }), field: 'body.resources.cores' },
      { body: withResources({ cores: [1] }), field: 'body.resources.cores' },
      { body: withResources({ cores: null }), field: 'body.resources.cores' },
      { body: { ...good, max_attempts: true }, field: 'body.max_attempts' },
      { body: { ...good, max_attempts: '1' }, field: 'body.max_attempts' },
      { body: { ...good, name: 5 }, field: 'body.name' },
      { body: { ...good, name: true }, field: 'body.name' },
      { body: { ...good, name: ['t'] }, field: 'body.name' },
      { body: { ...good, mode: ['overwrite'] }, field: 'body.mode' },
      { body: { ...good, labels: 'derived' }, field: 'body.labels' },
      { body: { ...good, partitions: 0 }, field: 'body.partitions' },
      { body: { ...good, partitions: ['0'] }, field: 'body.partitions.0' },
      { body: { ...good, runtime: 'command', source: undefined, argv: 'cat' }, field: 'body.argv' },
    ],
  },
  'POST /v1/auth/ldap': {
    cases: [
      { body: { username: 12345, password: 'x' }, field: 'body.username' },
      { body: { username: 'alice', password: 1234 }, field: 'body.password' },
      { body: { username: ['alice'], password: 'x' }, field: 'body.username' },
      { body: { username: true, password: 'x' }, field: 'body.username' },
    ],
  },
  'POST /v1/auth/ldap/session': {
    cases: [
      { body: { username: 12345, password: 'x' }, field: 'body.username' },
      { body: { username: 'alice', password: 1234 }, field: 'body.password' },
      { body: { username: ['alice'], password: 'x' }, field: 'body.username' },
    ],
  },
  'POST /v1/jobs/preview': {
    token: 'alice',
    cases: [
      { body: withResources({ cores: '4' }), field: 'body.resources.cores' },
      { body: withResources({ memory_mb: true }), field: 'body.resources.memory_mb' },
      { body: { ...good, name: 5 }, field: 'body.name' },
    ],
  },
  'POST /v1/datasets/:a/commit': {
    token: 'alice',
    path: '/v1/datasets/scratch-alice/commit',
    cases: [
      { body: { partitions: '1' }, field: 'body.partitions' },
      { body: { partitions: true }, field: 'body.partitions' },
      { body: { partitions: 1, labels: 'pii' }, field: 'body.labels' },
    ],
  },
  'POST /v1/datasets/:a/:b/commit': {
    token: 'alice',
    path: '/v1/datasets/scratch-alice/body-types/commit',
    cases: [
      { body: { partitions: [1] }, field: 'body.partitions' },
      { body: { partitions: 1, labels: [5] }, field: 'body.labels.0' },
    ],
  },
  // A partition is text/csv: JSON of any shape is refused before anything is decided or staged.
  'PUT /v1/datasets/:a/partitions/:n': { token: 'alice', path: '/v1/datasets/scratch-alice/partitions/0', cases: [{ body: { rows: 1 }, field: 'body' }] },
  'PUT /v1/datasets/:a/:b/partitions/:n': { token: 'alice', path: '/v1/datasets/scratch-alice/body-types/partitions/0', cases: [{ body: 'id,word', field: 'body' }, { body: [1], field: 'body' }] },
  'POST /v1/auth/device': { cases: [{ body: [], field: 'body' }] },
  'POST /v1/auth/device/token': {
    cases: [
      { body: { device_code: 12345 }, field: 'body.device_code' },
      { body: { device_code: ['abc'] }, field: 'body.device_code' },
    ],
  },
  'POST /v1/auth/token': {
    cases: [
      { body: { grant_type: 'refresh_token', refresh_token: 12345 }, field: 'body.refresh_token' },
      { body: { grant_type: ['refresh_token'], refresh_token: 'x' }, field: 'body.grant_type' },
      { body: { grant_type: 'refresh_token', refresh_token: true }, field: 'body.refresh_token' },
    ],
  },
  'POST /v1/auth/logout': {
    token: 'alice',
    cases: [
      { body: { refresh_token: 12345 }, field: 'body.refresh_token' },
      { body: { refresh_token: ['x'] }, field: 'body.refresh_token' },
    ],
  },
  'POST /v1/certs': {
    token: 'alice',
    cases: [
      { body: { csr: 12345 }, field: 'body.csr' },
      { body: { csr: 'x', ttl_s: '3600' }, field: 'body.ttl_s' },
      { body: { csr: 'x', ttl_s: [3600] }, field: 'body.ttl_s' },
      { body: { csr: 'x', ttl_s: true }, field: 'body.ttl_s' },
    ],
  },
  'POST /v1/audit/chains/:name/retire': {
    token: 'bob',
    cases: [
      { body: { reason: 12345 }, field: 'body.reason' },
      { body: { reason: ['host gone'] }, field: 'body.reason' },
      { body: { reason: true }, field: 'body.reason' },
    ],
  },
  'POST /v1/policy/reload': { token: 'bob', cases: [{ body: [{}], field: 'body' }, { body: 'x', field: 'body' }] },
  'POST /v1/policy/explain': {
    token: 'bob',
    cases: [
      { body: { user: 12345, object: 'dataset:words', action: 'read' }, field: 'body.user' },
      { body: { user: 'alice', object: 'dataset:words', action: true }, field: 'body.action' },
      { body: { user: 'alice', object: 'dataset:words', action: 'read', groups: 'analysts' }, field: 'body.groups' },
      { body: { user: 'alice', object: 'dataset:words', action: 'read', labels: 'pii' }, field: 'body.labels' },
      { body: { user: 'alice', object: 'dataset:words', action: 'read', groups: [5] }, field: 'body.groups.0' },
    ],
  },
};

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 2 } } });
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  for (const user of ['alice', 'bob']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('request bodies through the gateway', () => {
  it('has cases for every route that takes a body', async () => {
    const doc = (await stack.api('/openapi.json')).json<{ paths: Record<string, Record<string, { requestBody?: unknown }>> }>();
    const withBody = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op.requestBody !== undefined)
        .map(([method]) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(withBody.length).toBeGreaterThan(5);
    expect(withBody.sort()).toEqual(Object.keys(CASES).sort());
  });

  it('refuses every wrong type with 400 naming the field, and changes nothing', async () => {
    const before = stack.auditEvents().length;
    const failures: string[] = [];
    for (const [route, { token, path: concrete, cases }] of Object.entries(CASES)) {
      const [method, pattern] = route.split(' ') as [string, string];
      const path = concrete ?? pattern;
      for (const c of cases) {
        const answer = await stack.api(path, token ? tokens[token] : undefined, { method, body: c.body });
        const body = answer.body === '' ? {} : answer.json<{ error?: string; field?: string; message?: string }>();
        if (answer.status !== 400 || body.error !== 'invalid_request' || body.field !== c.field || !body.message?.startsWith(c.field)) {
          failures.push(`${route} ${JSON.stringify(c.body).slice(0, 120)}: ${answer.status} ${answer.body.slice(0, 200)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    // Nothing was decided: no job, no certificate, no login or logout, no event.
    expect((await stack.api('/v1/jobs', tokens.alice)).json<{ jobs: unknown[] }>().jobs).toEqual([]);
    expect((await stack.api('/v1/quota', tokens.alice)).json<{ usage: { running_jobs: number } }>().usage.running_jobs).toBe(0);
    expect((await stack.api('/v1/whoami', tokens.alice)).status).toBe(200);
    expect(stack.auditEvents().length).toBe(before);
  });

  it('still takes the right types, and still reads numbers from query strings', async () => {
    const ok = await stack.api('/v1/jobs', tokens.alice, { method: 'POST', body: good });
    expect(ok.status, ok.body).toBe(201);
    const listed = await stack.api('/v1/jobs?limit=1&all=0', tokens.alice);
    expect(listed.status, listed.body).toBe(200);
    expect(listed.json<{ jobs: unknown[] }>().jobs).toHaveLength(1);
    const badQuery = await stack.api('/v1/jobs?limit=many', tokens.alice);
    expect(badQuery.status).toBe(400);
    expect(badQuery.json()).toMatchObject({ error: 'invalid_request', field: 'query.limit' });
  });
});

describe('request bodies on the engine', () => {
  it('does not run a spec whose numbers came as strings, even with a ticket for the coerced spec', async () => {
    const engine = new EngineClient(stack.engine.url, stack.certsDir);
    const sent = withResources({ cores: '1' }) as unknown as JobSpec;
    const { token } = await engine.ticket(sent, { specFor: { ...good, output: 'scratch/engine-body' }, granted: good.resources });
    const answer = await engine.post({ ...sent, output: 'scratch/engine-body' }, token);
    expect(answer.status, answer.body).toBe(400);
    expect(answer.json()).toMatchObject({ error: 'invalid_request', field: 'body.resources.cores' });
    expect((await engine.request('GET', '/jobs?active=1')).json<{ jobs: unknown[] }>().jobs.filter((j) => (j as { output: string }).output === 'scratch/engine-body')).toEqual([]);
  });
});

describe('the shared plumbing', () => {
  it('coerces query strings and params, never bodies', async () => {
    const app = Fastify({ ...serverOptions(), logger: false });
    installPlumbing(app);
    app.post(
      '/t/:n',
      {
        schema: {
          params: Type.Object({ n: Type.Integer() }),
          querystring: Type.Object({ limit: Type.Optional(Type.Integer()), flag: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
          body: Type.Object({ cores: Type.Integer(), tags: Type.Optional(Type.Array(Type.String())) }, { additionalProperties: false }),
        },
      },
      async (request) => ({ params: request.params, query: request.query, body: request.body }),
    );
    const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    const ok = await post('/t/7?limit=5&flag=true', { cores: 4 });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toEqual({ params: { n: 7 }, query: { limit: 5, flag: true }, body: { cores: 4 } });
    for (const [body, field] of [
      [{ cores: '4' }, 'body.cores'],
      [{ cores: true }, 'body.cores'],
      [{ cores: [4] }, 'body.cores'],
      [{ cores: null }, 'body.cores'],
      [{ cores: 4, tags: 'a' }, 'body.tags'],
      [{ cores: 4, tags: [1] }, 'body.tags.0'],
    ] as const) {
      const answer = await post('/t/7', body);
      expect(answer.statusCode, JSON.stringify(body)).toBe(400);
      expect(answer.json()).toMatchObject({ error: 'invalid_request', field });
    }
    // No body at all is no empty object: it is validated as null and refused (a handler never sees undefined).
    const none = await app.inject({ method: 'POST', url: '/t/7' });
    expect(none.statusCode, none.body).toBe(400);
    expect(none.json()).toMatchObject({ error: 'invalid_request', field: 'body' });
    const badQuery = await post('/t/7?limit=x', { cores: 4 });
    expect(badQuery.json()).toMatchObject({ error: 'invalid_request', field: 'query.limit' });
    await app.close();
  });
});
