import Fastify from 'fastify';
import Type from 'typebox';
import { describe, expect, it } from 'vitest';
import { installPlumbing, scrubUrl, serverOptions } from '../src/http/index.js';
import { GatehouseError } from '../src/wire/index.js';

function app() {
  const a = Fastify({ ...serverOptions(), logger: false, bodyLimit: 1024 });
  installPlumbing(a);
  return a;
}

describe('HTTP plumbing shared by gateway and engine', () => {
  it('refuses at start-up a route that declares no querystring schema', async () => {
    const a = app();
    expect(() => a.get('/open', async () => 'x')).toThrow('route GET /open declares no querystring schema');
    await a.close();
  });

  it('refuses at start-up a POST route that declares no body schema', async () => {
    const a = app();
    expect(() => a.post('/jobs', { schema: { querystring: Type.Object({}) } }, async () => 'x')).toThrow('route POST /jobs declares no body schema');
    await a.close();
  });

  it('names the invalid field of a body, and answers 413 for a body over the limit', async () => {
    const a = app();
    a.post(
      '/echo',
      { schema: { querystring: Type.Object({}), body: Type.Object({ name: Type.String({ minLength: 1 }) }, { additionalProperties: false }) } },
      async (req) => req.body,
    );
    const missing = await a.inject({ method: 'POST', url: '/echo', payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual({ error: 'invalid_request', field: 'body.name', message: "body.name must have required property 'name'" });
    const extra = await a.inject({ method: 'POST', url: '/echo', payload: { name: 'a', admin: true } });
    expect(extra.json()).toMatchObject({ error: 'invalid_request', field: 'body.admin' });
    const big = await a.inject({ method: 'POST', url: '/echo', payload: { name: 'x'.repeat(2000) } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ error: 'payload_too_large' });
    await a.close();
  });

  it('turns a GatehouseError into its status and body, and hides an unexpected error behind the request id', async () => {
    const a = app();
    a.get('/denied', { schema: { querystring: Type.Object({}) } }, async () => {
      throw new GatehouseError('forbidden', 'no rule grants read on dataset:customers', { rule: null });
    });
    a.get('/boom', { schema: { querystring: Type.Object({}) } }, async () => {
      throw new Error('database password is hunter2');
    });
    const denied = await a.inject({ url: '/denied' });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toEqual({ error: 'forbidden', message: 'no rule grants read on dataset:customers', rule: null });
    const boom = await a.inject({ url: '/boom', headers: { 'x-request-id': 'req-1' } });
    expect(boom.statusCode).toBe(500);
    expect(boom.json()).toEqual({ error: 'internal', message: 'internal error (request id req-1)' });
    await a.close();
  });

  it('masks OAuth codes, tokens and passwords in logged URLs and keeps the rest', () => {
    expect(scrubUrl('/v1/auth/oidc/callback?code=abc&state=xyz&lang=en')).toBe('/v1/auth/oidc/callback?code=%5Bredacted%5D&state=%5Bredacted%5D&lang=en');
    expect(scrubUrl('/v1/audit?user=alice')).toBe('/v1/audit?user=alice');
    expect(scrubUrl('/healthz')).toBe('/healthz');
  });
});
