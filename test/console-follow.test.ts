// flake38: the console's job page follows the log (GET …/logs?follow=1) once the job is no longer
// pending. A job answered 201 whose release is still on its way has no backend yet: its follow waits
// for the handover and takes one of the person's 16 places among held waits, and a person holding all
// sixteen (other tabs, a CLI watching) was answered 429, shown "log stopped" and never followed again.
// Now the page says it is waiting for a place and asks again, a bounded number of times, as `--wait` and
// Job.wait() do after a 429. In real chromium against a real gateway built in this process, whose one
// backend (test/support/test-backend.ts) holds the job's release until the test lets it go.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { BrowserSessions } from '../src/auth/browser-sessions.js';
import { createIdentityService, ensureServiceCertificates, type IdentityService } from '../src/auth/index.js';
import { loadConfig } from '../src/config/index.js';
import { buildGateway } from '../src/gateway/index.js';
import { PolicyReloader } from '../src/policy/index.js';
import type { Store } from '../src/store/index.js';
import { readTlsMaterial } from '../src/wire/index.js';
import { launchChromium, newPerson, type Person, screenshot } from './support/browser.js';
import { followLog } from './support/followed-log.js';
import { type Sandbox, sandbox, TEST_POLICIES } from './support/gatehouse.js';
import { fetchTls } from './support/https.js';
import { type TestBackend, testBackend, testDataset } from './support/test-backend.js';
import { openStoreOf } from './support/test-store.js';

const ALICE = { user: 'alice', groups: ['analysts'], auth_method: 'oidc' as const };

// On a shared store the 201 waits for the backend's answer: no window between it and the handover.
describe.runIf((process.env.GATEHOUSE_TEST_STORE ?? 'sqlite') === 'sqlite')('the console following a job whose release is on its way', () => {
  let home: string;
  let box: Sandbox;
  let store: Store;
  let policy: PolicyReloader;
  let identity: IdentityService;
  let audit: AuditTrail;
  let app: FastifyInstance;
  let lab: TestBackend;
  let browser: Browser;
  let alice: Person | undefined;
  let url = '';
  let ca = '';
  let token = '';

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'gatehouse-console-follow-'));
    box = sandbox({ data: { root: join(home, 'data') }, state: { dir: join(home, 'var') }, certs: { dir: join(home, 'certs') }, policies: { dir: TEST_POLICIES }, log: { level: 'warn' } });
    const { config } = loadConfig({ path: box.configFile, env: {} });
    ensureServiceCertificates(config);
    store = await openStoreOf(config);
    policy = await PolicyReloader.start(TEST_POLICIES, { requireTests: true });
    identity = await createIdentityService(config, store);
    audit = await AuditTrail.open({ dir: join(home, 'audit'), key: loadAuditKey(config.certs.dir), checkpointMs: 3_600_000 });
    lab = testBackend('lab', [testDataset('words')]);
    const tls = readTlsMaterial(config.certs.dir, 'gateway');
    ca = tls.ca;
    app = await buildGateway({ tls, logLevel: 'warn', bodyLimit: config.server.body_limit_bytes, store, policy, backends: [lab], jobs: { maxPendingPerUser: 4, pollMs: 50, statusCacheMs: 0 }, identity, publicUrl: () => url, audit, auditRetention: { maxAgeMs: 0, archiveDir: join(home, 'audit', 'archive') } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    token = (await identity.tokens.login(ALICE)).access_token;
    browser = await launchChromium(config.certs.dir);
  }, 120_000);

  afterAll(async () => {
    await alice?.context.close().catch(() => undefined);
    await browser?.close();
    await app?.close();
    policy?.close();
    identity?.close();
    await audit?.close();
    await store?.close();
    box?.remove();
    rmSync(home, { recursive: true, force: true });
  });

  /** A followed log held by a client of alice's (the place it takes is hers): resolves at its head. */
  const followed = (id: string) => followLog(url, ca, token, id);

  it('says it waits for a place while alice holds all her waits elsewhere, follows once one is free, and shows the whole log', async () => {
    let release: () => void = () => {};
    lab.releaseGate = new Promise<void>((resolve) => (release = resolve));
    let id = '';
    try {
      const r = await fetchTls(`${url}/v1/jobs`, {
        ca,
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'copy', input: 'words', output: 'scratch-alice/followed', runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } }),
      });
      expect(r.status, r.body).toBe(201);
      expect(r.json()).toMatchObject({ state: 'queued' });
      id = r.json<{ id: string }>().id;
    } finally {
      lab.releaseGate = null; // the held job keeps its gate
    }
    // Her sixteen places, held by her other clients following the same job.
    const others = [];
    for (let i = 0; i < 16; i++) others.push(await followed(id));
    expect(others.map((o) => o.status)).toEqual(Array(16).fill(200));

    // Her browser session: a login of hers with its session cookie, as the sign-in would leave it.
    const pair = await identity.tokens.login(ALICE);
    const session = await new BrowserSessions(store, identity.tokens).create(pair.session_id);
    alice = await newPerson(browser);
    await alice.context.addCookies([
      { name: '__Host-gatehouse_session', value: session.cookie, url, secure: true, httpOnly: true, sameSite: 'Lax' },
      { name: '__Host-gatehouse_csrf', value: session.csrf, url, secure: true, sameSite: 'Lax' },
    ]);
    const { page } = alice;
    await page.goto(`${url}/console/#/jobs/${id}`);
    const logState = page.locator('#log-state');
    // Refused a place: the page says why and that it tries again (it did not stop).
    await logState.getByText(/waiting to follow the log: you hold as many waits on jobs as you may .*trying again \(\d+ of 40\)/).waitFor();
    await screenshot(page, 'console-follow-waiting');
    // Two of her other clients hang up (the page's own held look at the job may take one place).
    others.shift()!.hangUp();
    others.shift()!.hangUp();
    await logState.getByText('following', { exact: true }).waitFor({ timeout: 60_000 });
    release();
    await logState.getByText('complete', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await page.locator('#job-log').textContent()).toBe('ran on lab\n');
    await page.locator('.job-state').getByText('succeeded', { exact: true }).waitFor({ timeout: 60_000 });
    for (const o of others) o.hangUp();
    // Nothing went wrong on the page but the refusals it was built to take (the browser logs each 429).
    expect(alice.problems.filter((p) => !/status of 429/.test(p))).toEqual([]);
  }, 120_000);
});
