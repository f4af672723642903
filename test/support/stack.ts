// The whole system as separate processes (engine, development IdP, gateway), so a test can kill
// and restart one of them: what `gatehouse up` runs, without its supervisor stopping everything
// when one part dies.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parse, stringify } from 'yaml';
import type { AuditEvent } from '../../src/audit/index.js';
import { readTrail } from './audit-trail.js';
import { type EngineProcess, startEngineProcess, startServiceProcess } from './engine.js';
import { ROOT, type Sandbox, sandbox, TEST_POLICIES } from './gatehouse.js';
import { fetchTls, type Response } from './https.js';
import { approveDevice } from './oidc-browser.js';
import type { Store } from '../../src/store/index.js';
import { openConfiguredStore } from './test-store.js';

export interface StackOptions {
  /** Lines appended to a copy of policies/policy.csv. */
  policyLines?: string[];
  /** Extra demo users: name → groups (password `<name>-demo`). */
  users?: Record<string, string[]>;
  config?: Record<string, Record<string, unknown>>;
}

export class Stack {
  engine!: EngineProcess;
  gateway!: EngineProcess;
  idp!: EngineProcess;
  ca = '';
  private enginePort = 0;
  private gatewayPort = 0;
  private reader: Promise<Store> | undefined;

  private constructor(
    readonly box: Sandbox,
    /** Where state.dir (var/) and certs.dir (certs/) are. */
    readonly home: string,
    readonly dataRoot: string,
    readonly policies: string,
    /** Where the gateway's audit trail is (audit.dir, default state.dir/audit). */
    readonly auditDir: string,
  ) {}

  static async start(o: StackOptions = {}): Promise<Stack> {
    const policies = mkdtempSync(join(tmpdir(), 'gatehouse-policies-'));
    cpSync(TEST_POLICIES, policies, { recursive: true });
    if (o.policyLines) writeFileSync(join(policies, 'policy.csv'), `${readFileSync(join(policies, 'policy.csv'), 'utf8')}\n${o.policyLines.join('\n')}\n`);
    const demo = (parse(readFileSync(join(ROOT, 'dev-idp', 'users.yaml'), 'utf8')) as { users: { username: string; password: string; name: string; email: string; groups: string[] }[] }).users;
    const extra = Object.entries(o.users ?? {}).map(([name, groups]) => ({ username: name, password: `${name}-demo`, name, email: `${name}@example.test`, groups }));
    const users = [...demo, ...extra];
    // The stack's home: a plain folder (its one configuration, and so its one store, is `box`'s).
    const home = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
    const usersFile = join(home, 'users.yaml');
    writeFileSync(usersFile, stringify({ users }));
    const dataRoot = join(home, 'data');
    mkdirSync(dataRoot);
    const box = sandbox({
      ...o.config,
      dev_idp: { enabled: true, port: 0, users_file: usersFile },
      policies: { dir: policies },
      data: { ...o.config?.data, root: dataRoot },
      state: { dir: join(home, 'var') },
      certs: { dir: join(home, 'certs') },
    });
    const auditDir = typeof o.config?.audit?.dir === 'string' && o.config.audit.dir !== '' ? o.config.audit.dir : join(home, 'var', 'audit');
    const stack = new Stack({ ...box, remove: () => {
          box.remove();
          rmSync(home, { recursive: true, force: true });
          rmSync(policies, { recursive: true, force: true });
        },
      }, home, dataRoot, policies, auditDir);
    // The engine's tasks must be able to walk down to the data root.
    chmodSync(home, 0o711);
    await stack.startEngine();
    stack.idp = await startServiceProcess(box, 'dev-idp');
    await stack.startGateway();
    stack.ca = readFileSync(join(home, 'certs', 'ca.crt'), 'utf8');
    return stack;
  }

  get url(): string {
    return this.gateway.url;
  }

  async startEngine(): Promise<void> {
    this.engine = await startEngineProcess(this.box, this.enginePort ? { GATEHOUSE_ENGINE_PORT: String(this.enginePort) } : {});
    this.enginePort = Number(new URL(this.engine.url).port);
  }

  async startGateway(): Promise<void> {
    this.gateway = await startServiceProcess(this.box, 'gateway', {
      GATEHOUSE_ENGINE_PORT: String(this.enginePort),
      GATEHOUSE_DEV_IDP_PORT: new URL(this.idp.url).port,
      ...(this.gatewayPort ? { GATEHOUSE_SERVER_PORT: String(this.gatewayPort) } : {}),
    });
    this.gatewayPort = Number(new URL(this.gateway.url).port);
  }

  /**
   * Another gateway over the same store, engine, IdP, CA and policies, with its own state.dir and
   * audit trail (as a replica on another host has): meaningful on a shared store (PostgreSQL).
   */
  async startReplica(name: string, env: Record<string, string> = {}): Promise<EngineProcess> {
    const home = join(this.home, name);
    mkdirSync(home, { recursive: true });
    return startServiceProcess(this.box, 'gateway', {
      GATEHOUSE_ENGINE_PORT: String(this.enginePort),
      GATEHOUSE_DEV_IDP_PORT: new URL(this.idp.url).port,
      GATEHOUSE_STATE_DIR: join(home, 'var'),
      GATEHOUSE_AUDIT_DIR: join(home, 'audit'),
      ...env,
    });
  }

  /** A call to any gateway of the stack (a replica's URL), as api() is to the first. */
  apiAt(base: string, path: string, token?: string, init: { method?: string; body?: unknown; timeoutMs?: number } = {}): Promise<Response> {
    return fetchTls(`${base}${path}`, {
      ca: this.ca,
      ...(init.timeoutMs !== undefined ? { timeoutMs: init.timeoutMs } : {}),
      method: init.method ?? 'GET',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });
  }

  api(path: string, token?: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
    return this.apiAt(this.url, path, token, init);
  }

  /** SSO through the gateway's device grant, approved in the development provider. */
  async login(user: string): Promise<string> {
    const start = (await this.api('/v1/auth/device', undefined, { method: 'POST', body: {} })).json<{ device_code: string; verification_uri_complete: string }>();
    expect((await approveDevice(start.verification_uri_complete, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
    const answer = await this.api('/v1/auth/device/token', undefined, { method: 'POST', body: { device_code: start.device_code } });
    expect(answer.status).toBe(200);
    return answer.json<{ access_token: string }>().access_token;
  }

  /** Where certs.dir is: the CA, the service certificates and the audit signing key. */
  get certsDir(): string {
    return join(this.home, 'certs');
  }

  /** The audit events the gateway has committed so far, read from its trail in chain order. */
  auditEvents(): AuditEvent[] {
    return readTrail(this.auditDir);
  }

  /**
   * The gateway's own store (its embedded SQLite file or its PostgreSQL database), opened once by the
   * test beside the gateway: for what only the store shows (signing keys, issued certificates).
   */
  store(): Promise<Store> {
    this.reader ??= openConfiguredStore(this.box.configFile);
    return this.reader;
  }

  async stop(): Promise<void> {
    await Promise.all([this.gateway?.stop(), this.idp?.stop(), this.engine?.stop()]);
    await this.reader?.then((store) => store.close(), () => undefined);
    this.box.remove();
  }
}
