import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCertificates } from '../src/auth/index.js';
import { clientCertificate } from './support/client-cert.js';
import { fetchTls } from './support/https.js';
import { type Sandbox, sandbox, startUp, type Up } from './support/gatehouse.js';
import { onPostgres } from './support/test-store.js';
import { until } from './support/until.js';

let box: Sandbox;
let up: Up;
let gateway: string;
let engine: string;
const certs = () => join(box.dir, 'certs');

beforeAll(async () => {
  box = sandbox();
  up = await startUp(box);
  gateway = up.ready.gateway.url;
  engine = up.ready.engine.url;
});

afterAll(async () => {
  await up?.stop();
  box?.remove();
});

/** Checks Prometheus text exposition format line by line (version 0.0.4). */
function prometheusProblems(text: string): string[] {
  const problems: string[] = [];
  const metric = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const labels = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*\\}`;
  const value = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?Inf|NaN)';
  const sample = new RegExp(`^${metric}(?:${labels})? ${value}(?: -?\\d+)?$`);
  const help = new RegExp(`^# HELP ${metric} .*$`);
  const type = new RegExp(`^# TYPE ${metric} (counter|gauge|histogram|summary|untyped)$`);
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '' || help.test(line) || type.test(line) || sample.test(line)) continue;
    problems.push(`line ${i + 1}: ${line}`);
  }
  return problems;
}

describe('the gateway over HTTPS', () => {
  it('answers /healthz to a client that trusts our CA', async () => {
    const res = await fetchTls(`${gateway}/healthz`, { ca: up.ca });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', service: 'gateway' });
  });

  it('is not trusted by a client that does not know our CA', async () => {
    await expect(fetchTls(`${gateway}/healthz`)).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
  });

  it('is ready when its store, policy and engine answer', async () => {
    const res = await fetchTls(`${gateway}/readyz`, { ca: up.ca });
    expect(res.status).toBe(200);
    const body = res.json<{ status: string; checks: Record<string, string> }>();
    expect(body.status).toBe('ready');
    expect(body.checks.store).toBe('ok');
    // The store is the run's: the embedded file, or (postgres project) the database sandbox() configured.
    expect(existsSync(join(box.dir, 'var', 'gatehouse.db'))).toBe(!onPostgres());
    expect(body.checks.policy).toMatch(/^ok \(version [0-9a-f]{16}\)$/);
    expect(body.checks.engine).toMatch(/^ok \(https:\/\/127\.0\.0\.1:\d+/);
  });

  it('serves valid Prometheus text with process metrics and request durations by route and status', async () => {
    await fetchTls(`${gateway}/healthz`, { ca: up.ca });
    await fetchTls(`${gateway}/no/such/path`, { ca: up.ca });
    const res = await fetchTls(`${gateway}/metrics`, { ca: up.ca });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(prometheusProblems(res.body)).toEqual([]);
    expect(res.body).toMatch(/^process_cpu_seconds_total \d/m);
    expect(res.body).toMatch(/^# TYPE gatehouse_http_request_duration_seconds histogram$/m);
    expect(res.body).toMatch(/^gatehouse_http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} [1-9]/m);
    expect(res.body).toMatch(/^gatehouse_http_request_duration_seconds_count\{method="GET",route="unmatched",status_code="404"\} [1-9]/m);
    expect(res.body).not.toContain('/no/such/path');
  });

  it('documents its routes in /openapi.json, generated from the route schemas', async () => {
    const res = await fetchTls(`${gateway}/openapi.json`, { ca: up.ca });
    expect(res.status).toBe(200);
    const doc = res.json<{ openapi: string; paths: Record<string, { get: { responses: Record<string, unknown> } }> }>();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/metrics', '/openapi.json']));
    expect(JSON.stringify(doc.paths['/healthz']!.get.responses)).toContain('uptime_s');
  });

  it('refuses an unknown query parameter with 400 invalid_request naming the field', async () => {
    const res = await fetchTls(`${gateway}/healthz?verbose=1`, { ca: up.ca });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_request', field: 'query.verbose', message: 'query.verbose is not a known field' });
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await fetchTls(`${gateway}/v1/nothing`, { ca: up.ca });
    expect(res.status).toBe(404);
    expect(res.json()).toEqual({ error: 'not_found', message: 'no route GET /v1/nothing' });
  });

  it('logs one JSON line per request with its request id, and no credentials', async () => {
    const id = `test-${Date.now()}`;
    const res = await fetchTls(`${gateway}/healthz?token=s3cr3t-query`, {
      ca: up.ca,
      headers: { 'x-request-id': id, authorization: 'Bearer s3cr3t-bearer', cookie: '__Host-gatehouse_session=s3cr3t-cookie' },
    });
    expect(res.status).toBe(400); // unknown query parameter, but it is logged all the same
    expect(res.headers['x-request-id']).toBe(id);
    const generated = await fetchTls(`${gateway}/healthz`, { ca: up.ca });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);

    // pino writes asynchronously: wait for the request's own line, the last the gateway logs for it.
    const parsed = () => readFileSync(up.ready.gateway.log, 'utf8').split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
    await until(() => parsed().some((l) => l.request_id === id && l.msg === 'request'), 10_000, 'the request line in the gateway log');
    const log = readFileSync(up.ready.gateway.log, 'utf8');
    const mine = parsed().filter((l) => l.request_id === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ msg: 'request', method: 'GET', route: '/healthz', status: 400, url: '/healthz?token=%5Bredacted%5D' });
    expect(log).not.toMatch(/s3cr3t/);
  });
});

describe('the engine port', () => {
  it('fails the TLS handshake for a client without a certificate', async () => {
    await expect(fetchTls(`${engine}/healthz`, { ca: up.ca })).rejects.toThrow(/certificate required|handshake|socket hang up|ECONNRESET/i);
  });

  it('fails the TLS handshake for a certificate from another CA', async () => {
    const otherDir = join(box.dir, 'other-ca');
    ensureCertificates({ dir: otherDir, gatewayHosts: [], engineHosts: [] });
    const foreign = { cert: readFileSync(join(otherDir, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(otherDir, 'gateway-client.key'), 'utf8') };
    await expect(fetchTls(`${engine}/healthz`, { ca: up.ca, ...foreign })).rejects.toThrow(/unknown ca|alert|handshake|socket hang up|ECONNRESET/i);
  });

  it('serves the gateway client certificate', async () => {
    const mine = { cert: readFileSync(join(certs(), 'gateway-client.crt'), 'utf8'), key: readFileSync(join(certs(), 'gateway-client.key'), 'utf8') };
    const res = await fetchTls(`${engine}/healthz`, { ca: up.ca, ...mine });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', service: 'engine' });
  });

  it('forbids a certificate from our CA that is not the gateway, such as a user certificate', async () => {
    const user = clientCertificate(certs(), { CN: 'alice', OU: 'users' });
    const res = await fetchTls(`${engine}/healthz`, { ca: up.ca, ...user });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ error: 'forbidden', message: 'the engine serves only the gateway' });
  });
});
