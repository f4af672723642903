// Issue 15, point 11: nothing the client sends is stored verbatim where it could carry a secret.
// A caller's X-Request-Id is echoed in the answer, written in every log line and stored as the
// audit event's request_id: a token pasted there (by mistake, or by a proxy that copies headers)
// must not be. It is kept only when it is a UUID (ours included), or short (<= 64), plain and not
// shaped like a JWT/JWE or one of the gateway's own credentials; otherwise the gateway uses its own
// id and logs that it replaced the caller's (its length and a digest, never the value).
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPlumbing, serverOptions } from '../../src/http/index.js';
import { timeOrderedId } from '../../src/http/request-id.js';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';
import { until } from '../support/until.js';

const OURS = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Ids a caller may not have kept: each fits the old rule ([A-Za-z0-9._:-]{1,128}). */
const REFUSED: Record<string, string> = {
  'a signed JWT (HS256, 86 characters)': `${b64({ alg: 'HS256' })}.${b64({ sub: 'alice' })}.${'s'.repeat(43)}`,
  'a short unsigned JWT (alg none, under 64)': `${b64({ alg: 'none' })}.${b64({ sub: 'a' })}.`,
  'a JWE (five parts)': `${b64({ alg: 'dir', enc: 'A128GCM' })}..iv.ct.tag`,
  'a refresh token of ours': `ghr_${'A1b2'.repeat(10)}`,
  'a session of ours': `ghs_${'x'.repeat(32)}`,
  'a 65-character id': 'r'.repeat(65),
  'a 128-character id': 'q'.repeat(128),
};
const KEPT: Record<string, string> = {
  'a UUID v4': '3b241101-e2bb-4255-8caf-4136c566a962',
  'an upper-case UUID': '3B241101-E2BB-4255-8CAF-4136C566A962',
  'our own time-ordered id': timeOrderedId(),
  'a short trace id': 'req-1',
  'a 64-character id with dots and colons': `svc:web.${'a'.repeat(56)}`,
  'two dotted parts': 'build.42',
};

describe('X-Request-Id in the shared HTTP plumbing (gateway and engine)', () => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const app = Fastify({ ...serverOptions(), logger: { level: 'info', stream } });
  installPlumbing(app);
  app.get('/id', { schema: { querystring: Type.Object({}) } }, async (request) => ({ id: request.id }));

  afterAll(() => app.close());

  for (const [what, given] of Object.entries(REFUSED)) {
    it(`replaces ${what}: ours is answered and logged, the caller's appears nowhere`, async () => {
      const mark = lines.length;
      const answer = await app.inject({ url: '/id', headers: { 'x-request-id': given } });
      expect(answer.statusCode).toBe(200);
      const id = answer.headers['x-request-id'] as string;
      expect(id).toMatch(OURS);
      expect(answer.json()).toEqual({ id });
      expect(answer.body).not.toContain(given);
      const logged = lines.slice(mark);
      expect(logged.join('\n')).not.toContain(given);
      const replaced = logged.map((l) => JSON.parse(l) as { msg: string; request_id: string; caller_request_id?: { length: number; sha256_prefix: string } }).find((l) => l.caller_request_id);
      expect(replaced).toMatchObject({ request_id: id, caller_request_id: { length: given.length, sha256_prefix: expect.stringMatching(/^[0-9a-f]{12}$/) } });
      expect(replaced!.msg).toContain('X-Request-Id was replaced');
    });
  }

  for (const [what, given] of Object.entries(KEPT)) {
    it(`keeps ${what}`, async () => {
      const mark = lines.length;
      const answer = await app.inject({ url: '/id', headers: { 'x-request-id': given } });
      expect(answer.headers['x-request-id']).toBe(given);
      expect(answer.json()).toEqual({ id: given });
      expect(lines.slice(mark).join('\n')).not.toContain('replaced');
    });
  }

  it('a request without one, or with several, gets ours', async () => {
    expect((await app.inject({ url: '/id' })).headers['x-request-id']).toMatch(OURS);
    const twice = await app.inject({ url: '/id', headers: { 'x-request-id': ['req-1', 'req-2'] } });
    expect(twice.headers['x-request-id']).toMatch(OURS);
  });
});

describe('X-Request-Id on the audit trail', () => {
  let app: IdentityApp;
  beforeAll(async () => {
    app = await startIdentityApp();
  }, 60_000);
  afterAll(() => app?.close());

  it('a JWT-shaped X-Request-Id is not echoed nor stored: the event carries our id', async () => {
    const jwt = REFUSED['a signed JWT (HS256, 86 characters)']!;
    const mark = app.events().reduce((m, e) => Math.max(m, e.id), 0);
    const answer = await app.call('/v1/whoami', { headers: { authorization: 'Bearer not-a-token', 'x-request-id': jwt } });
    expect(answer.status).toBe(401);
    const id = answer.headers['x-request-id'] as string;
    expect(id).toMatch(OURS);
    expect(answer.body).not.toContain(jwt);
    const event = await until(async () => app.events().find((e) => e.id > mark && e.action === 'auth.rejected'), 10_000, 'the rejection on the trail');
    expect(event.request_id).toBe(id);
    expect(JSON.stringify(app.events())).not.toContain(jwt);
  });

  it('a UUID X-Request-Id is kept on the event, so one id follows the request', async () => {
    const given = '3b241101-e2bb-4255-8caf-4136c566a962';
    const mark = app.events().reduce((m, e) => Math.max(m, e.id), 0);
    const answer = await app.call('/v1/whoami', { headers: { authorization: 'Bearer not-a-token', 'x-request-id': given } });
    expect(answer.headers['x-request-id']).toBe(given);
    const event = await until(async () => app.events().find((e) => e.id > mark && e.action === 'auth.rejected'), 10_000, 'the rejection on the trail');
    expect(event.request_id).toBe(given);
  });
});
