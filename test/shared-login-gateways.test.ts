// Two gateways' identity parts over one store, each with its own HTTPS server, store handle and audit
// trail, and one CA (as replicas share it): a token from one is accepted by the other, and a logout or
// a certificate revoked through one is refused by the other at its very next request; both publish
// one JWKS. Everything is real (TLS, the CA, the store, the trails); in the postgres project the
// store is one PostgreSQL database reached through two pools.
import cookie from '@fastify/cookie';
import Fastify, { type FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { createIdentityService, createKeyAndCsr, ensureCertificates, type IdentityService } from '../src/auth/index.js';
import { loadConfig } from '../src/config/index.js';
import { installPlumbing, serverOptions } from '../src/http/index.js';
import { openStore, type Store } from '../src/store/index.js';
import { readTlsMaterial } from '../src/wire/index.js';
import { readTrail } from './support/audit-trail.js';
import { ROOT } from './support/gatehouse.js';
import { fetchTls, type Response, type TlsOptions } from './support/https.js';
import { testDatabase } from './support/test-store.js';

const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'oidc' as const };

interface Gateway {
  identity: IdentityService;
  /** Why this gateway refused its latest credential, from its own trail. */
  lastRejection(): string | undefined;
  call(path: string, options?: TlsOptions): Promise<Response>;
  close(): Promise<void>;
}

let dir: string;
let stores: Store[] = [];
let one: Gateway;
let two: Gateway;

async function gateway(store: Store, certsDir: string, name: string): Promise<Gateway> {
  const home = join(dir, name);
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(configFile, stringify({ state: { dir: join(home, 'var') }, certs: { dir: certsDir }, log: { level: 'warn' }, dev_idp: { enabled: false, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') } }));
  const { config } = loadConfig({ path: configFile, env: {} });
  const trail = await AuditTrail.open({ dir: join(home, 'audit'), key: loadAuditKey(certsDir), checkpointMs: 3_600_000, probeMs: 3_600_000 });
  const identity = await createIdentityService(config, store);
  const tls = readTlsMaterial(certsDir, 'gateway');
  const app: FastifyInstance = Fastify({ ...serverOptions(), https: { ...tls, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false } });
  installPlumbing(app);
  await app.register(cookie);
  let url = '';
  identity.install(app, { audit: { record: (event) => trail.record(event) }, publicUrl: () => url });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    identity,
    lastRejection: () => readTrail(join(home, 'audit')).filter((e) => e.action === 'auth.rejected').at(-1)?.reason,
    call: (path, options = {}) => fetchTls(`${url}${path}`, { ca: tls.ca, ...options }),
    async close() {
      await app.close();
      identity.close();
      await trail.close();
    },
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const post = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-shared-gateways-'));
  const certsDir = join(dir, 'certs');
  ensureCertificates({ dir: certsDir, gatewayHosts: [], engineHosts: [] });
  const db = testDatabase();
  const stateDir = join(dir, 'shared');
  const open = () => openStore(db ? { stateDir, url: db.url, password: db.password } : { stateDir });
  stores = [await open(), await open()];
  // Started at once: they race to create the first signing key.
  [one, two] = await Promise.all([gateway(stores[0]!, certsDir, 'one'), gateway(stores[1]!, certsDir, 'two')]);
}, 60_000);
afterAll(async () => {
  await one?.close();
  await two?.close();
  for (const s of stores) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('two gateways over one store', () => {
  it('publish one JWKS, and accept each other\'s tokens', async () => {
    const [a, b] = await Promise.all([one.call('/.well-known/jwks.json'), two.call('/.well-known/jwks.json')]);
    const tokenKeys = (r: Response) => r.json<{ keys: { kid: string }[] }>().keys.filter((k) => !k.kid.startsWith('audit-'));
    expect(tokenKeys(a)).toHaveLength(1);
    expect(tokenKeys(b)).toEqual(tokenKeys(a));
    const pair = await one.identity.tokens.login(ALICE);
    expect((await two.call('/v1/whoami', { headers: bearer(pair.access_token) })).json()).toMatchObject({ user: 'alice', credential: 'bearer' });
  });

  it('a logout through one is refused by the other at its next request', async () => {
    const pair = await one.identity.tokens.login(ALICE);
    for (let i = 0; i < 2; i++) expect((await two.call('/v1/whoami', { headers: bearer(pair.access_token) })).status).toBe(200);
    expect((await one.call('/v1/auth/logout', post({}, bearer(pair.access_token)))).status).toBe(200);
    const after = await two.call('/v1/whoami', { headers: bearer(pair.access_token) });
    expect(after.status).toBe(401);
    expect(two.lastRejection()).toBe('revoked');
    expect((await two.call('/v1/auth/token', post({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }))).status).toBe(401);
  });

  it('a certificate revoked through one is refused by the other at its next request', async () => {
    const pair = await one.identity.tokens.login(ALICE);
    const { keyPem, csrPem } = await createKeyAndCsr();
    const issued = await one.call('/v1/certs', post({ csr: csrPem }, bearer(pair.access_token)));
    expect(issued.status, issued.body).toBe(200);
    const { serial, certificate } = issued.json<{ serial: string; certificate: string }>();
    const asCert = { cert: certificate, key: keyPem };
    for (let i = 0; i < 2; i++) expect((await two.call('/v1/whoami', asCert)).json()).toMatchObject({ user: 'alice', credential: 'certificate' });
    expect((await one.call(`/v1/certs/${serial}`, { method: 'DELETE', headers: bearer(pair.access_token) })).status).toBe(200);
    const after = await two.call('/v1/whoami', asCert);
    expect(after.status).toBe(401);
    expect(two.lastRejection()).toBe('revoked');
    // The login itself goes on, on both.
    expect((await two.call('/v1/whoami', { headers: bearer(pair.access_token) })).status).toBe(200);
  });

  it('a certificate whose login was logged out through one is refused by the other', async () => {
    const pair = await two.identity.tokens.login(ALICE);
    const { keyPem, csrPem } = await createKeyAndCsr();
    const issued = await two.call('/v1/certs', post({ csr: csrPem }, bearer(pair.access_token)));
    expect(issued.status, issued.body).toBe(200);
    const asCert = { cert: issued.json<{ certificate: string }>().certificate, key: keyPem };
    expect((await one.call('/v1/whoami', asCert)).status).toBe(200);
    expect((await two.call('/v1/auth/logout', post({ refresh_token: pair.refresh_token }))).status).toBe(200);
    expect((await one.call('/v1/whoami', asCert)).status).toBe(401);
  });
});
