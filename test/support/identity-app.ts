// The gateway's identity part built in this process, for suites that need what a separate process
// cannot give: an injected clock, and an audit trail that can be made unavailable on cue. Everything
// is real — the store, the CA and its certificates, the token service, the development OIDC provider,
// the audit trail (its writer thread and file) and HTTPS with optional client certificates — only the
// engine, the policy and the job routes are left out. The trail is swapped, not faked: down() closes
// the real AuditTrail (every record is then refused with AuditUnavailableError, as during a disk
// outage), up() opens a new one on the same file, which continues the chain.
import cookie from '@fastify/cookie';
import Fastify, { type FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { expect } from 'vitest';
import { type AuditEvent, type AuditInput, AuditTrail, loadAuditKey } from '../../src/audit/index.js';
import { createIdentityService, ensureCertificates, type IdentityService, startDevIdp } from '../../src/auth/index.js';
import { loadConfig } from '../../src/config/index.js';
import { installPlumbing, serverOptions } from '../../src/http/index.js';
import type { Authorizer } from '../../src/identity/index.js';
import { installAuthorization, requireDeclaredAccess } from '../../src/policy/index.js';
import type { Store } from '../../src/store/index.js';
import { readTlsMaterial } from '../../src/wire/index.js';
import { readTrail } from './audit-trail.js';
import { ROOT } from './gatehouse.js';
import { fetchTls, type Response, type TlsOptions } from './https.js';
import { openTestStore } from './test-store.js';

export interface IdentityAppOptions {
  /** Sections merged into the configuration (tokens, login, certs, ...). */
  config?: Record<string, Record<string, unknown>>;
  /** The clock of tokens, sessions, certificates and login requests. */
  now?: () => number;
  /** Also start the development OIDC provider (browser and device sign-in). */
  sso?: boolean;
  /**
   * Compose as the gateway does: every route must declare its access (start-up refuses one that
   * does not), the authorization stage decides on this Authorizer, and `routes` adds routes of the
   * test's own after the identity routes.
   */
  authorization?: { authorizer: Authorizer; routes?: (app: FastifyInstance) => void };
}

export interface IdentityApp {
  url: string;
  ca: string;
  store: Store;
  identity: IdentityService;
  /** Where the trail lives; events() reads it back. */
  auditDir: string;
  events(): AuditEvent[];
  /** Makes the trail refuse every record (the real trail, closed). */
  auditDown(): Promise<void>;
  /** Opens the trail again on the same file. */
  auditUp(): Promise<void>;
  call(path: string, options?: TlsOptions): Promise<Response>;
  close(): Promise<void>;
}

export async function startIdentityApp(o: IdentityAppOptions = {}): Promise<IdentityApp> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-identity-app-'));
  const certsDir = join(dir, 'certs');
  const auditDir = join(dir, 'audit');
  ensureCertificates({ dir: certsDir, gatewayHosts: [], engineHosts: [] });
  const raw = {
    ...o.config,
    dev_idp: { enabled: o.sso === true, port: 0, users_file: join(ROOT, 'dev-idp', 'users.yaml') },
    state: { dir: join(dir, 'var') },
    certs: { dir: certsDir, ...o.config?.certs },
    log: { level: 'warn' },
  };
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(configFile, stringify(raw));
  const { config } = loadConfig({ path: configFile, env: {} });
  const idp = o.sso ? await startDevIdp(config) : undefined;
  if (idp) config.dev_idp.port = idp.port;

  const store = await openTestStore(config.state.dir);
  const key = loadAuditKey(certsDir);
  const openTrail = () => AuditTrail.open({ dir: auditDir, key, checkpointMs: 3_600_000, probeMs: 3_600_000 });
  let trail = await openTrail();
  let closed = false;
  const recorder = { record: (event: AuditInput) => trail.record(event) };

  const identity = await createIdentityService(config, store, o.now ? { now: o.now } : {});
  const tls = readTlsMaterial(certsDir, 'gateway');
  const app: FastifyInstance = Fastify({ ...serverOptions(), https: { ...tls, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false } });
  installPlumbing(app);
  const authz = o.authorization;
  if (authz) requireDeclaredAccess(app);
  await app.register(cookie);
  let url = '';
  try {
    identity.install(app, { audit: recorder, publicUrl: () => url, ...(authz ? { authorizer: authz.authorizer } : {}) });
    if (authz) {
      installAuthorization(app, { authorizer: authz.authorizer, audit: recorder });
      authz.routes?.(app);
    }
    await app.listen({ host: '127.0.0.1', port: 0 });
  } catch (err) {
    // Start-up refused (a test of what start-up refuses): nothing is left open.
    await app.close().catch(() => {});
    identity.close();
    await trail.close();
    await store.close();
    await idp?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  return {
    url,
    ca: tls.ca,
    store,
    identity,
    auditDir,
    events: () => readTrail(auditDir),
    async auditDown() {
      if (closed) return;
      closed = true;
      await trail.close();
    },
    async auditUp() {
      if (!closed) return;
      trail = await openTrail();
      closed = false;
    },
    call: (path, options = {}) => fetchTls(`${url}${path}`, { ca: tls.ca, ...options }),
    async close() {
      await app.close();
      identity.close();
      if (!closed) await trail.close();
      await store.close();
      await idp?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The pair a login answers with. */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
}

/** `POST /v1/auth/ldap` as `user` with `password`; the test fails unless it is a 200. */
export async function ldapLogin(app: IdentityApp, user: string, password: string): Promise<TokenPair> {
  const r = await app.call('/v1/auth/ldap', { method: 'POST', body: JSON.stringify({ username: user, password }), headers: { 'content-type': 'application/json' } });
  expect(r.status, r.body).toBe(200);
  return r.json<TokenPair>();
}
