// Issue 19, points 3, 4 and 7: the web console in a real browser (Debian's chromium through
// playwright-core) against a real gateway, engine, SSO provider and directory. People sign in through
// the provider's own pages and the directory form; what they see is what their policy opens; the
// session cookie's flags, CSRF and sign-out are checked from the browser and from outside it.
// Screenshots of each page go to test-artifacts/ (gitignored).
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { launchChromium, newPerson, type Person, screenshot, signInWithSso } from './support/browser.js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fetchTls } from './support/https.js';
import { passwordOf, PEOPLE, requireSlapd, type Slapd, startSlapd } from './support/slapd.js';
import { Stack } from './support/stack.js';

const STORE = process.env.GATEHOUSE_TEST_STORE ?? 'sqlite';
let slapd: Slapd;
let stack: Stack;
let browser: Browser;
const people: Person[] = [];

async function person(width?: number): Promise<Person> {
  const p = await newPerson(browser, width);
  people.push(p);
  return p;
}

const cookieHeader = async (p: Person) => (await p.context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
/** GET from inside the page (its cookie, its origin): the status and the JSON answer. */
async function fromPage<T = Record<string, unknown>>(p: Person, path: string): Promise<{ status: number; body: T }> {
  return p.page.evaluate(async (url) => {
    const r = await fetch(url);
    return { status: r.status, body: await r.json() };
  }, path) as Promise<{ status: number; body: T }>;
}
interface Caps {
  pages: string[];
  buttons: string[];
  rules: Record<string, string>;
}
const csrfOf = async (p: Person) => (await p.context.cookies()).find((c) => c.name === '__Host-gatehouse_csrf')!.value;

beforeAll(async () => {
  requireSlapd();
  slapd = await startSlapd();
  stack = await Stack.start({
    config: {
      jobs: { poll_ms: 100, status_cache_ms: 100 },
      ldap: { url: slapd.url, start_tls: true, ca_file: slapd.caFile, bind_dn: slapd.bindDn, bind_password: slapd.bindPassword, user_base: PEOPLE },
    },
  });
  const rows = (p: number) => ({ text: `id,word\n${p * 10 + 1},alpha\n${p * 10 + 2},beta\n${p * 10 + 3},gamma\n`, rows: 3 });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows(0), rows(1)] });
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows(5)] });
  browser = await launchChromium(stack.certsDir);
}, 180_000);

afterAll(async () => {
  for (const p of people) await p.context.close().catch(() => undefined);
  await browser?.close();
  await stack?.stop();
  await slapd?.stop();
});

describe('the console is served safely', () => {
  it('serves /console/ with a strict Content-Security-Policy, no framing and no sniffing', async () => {
    const page = await fetchTls(`${stack.url}/console/`, { ca: stack.ca });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    // No inline script anywhere in the page: every script is a file of the console.
    expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = await fetchTls(`${stack.url}/console/js/main.js`, { ca: stack.ca });
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    // A file that is not there is a 404, never the page; a climbing name reaches no file.
    expect((await fetchTls(`${stack.url}/console/js/nothing.js`, { ca: stack.ca })).status).toBe(404);
    const climb = await fetchTls(`${stack.url}/console/..%2f..%2fpackage.json`, { ca: stack.ca });
    expect(climb.body).not.toContain('"devDependencies"');
  });

  it('says which sign-ins are configured', async () => {
    const methods = await fetchTls(`${stack.url}/v1/auth/methods`, { ca: stack.ca });
    expect(methods.json()).toEqual({ ldap: true, oidc: true, oidc_login: '/v1/auth/oidc/login' });
  });
});

describe(`signing in and out (${STORE})`, () => {
  it('alice signs in through the SSO provider’s pages and sees only the pages her policy opens', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    await expect.poll(() => alice.page.locator('#who').textContent()).toContain('alice');
    const nav = alice.page.getByRole('navigation', { name: 'Console pages' });
    for (const name of ['Datasets', 'Jobs', 'Submit a job', 'Quota', 'Certificate']) await nav.getByRole('link', { name }).waitFor();
    // What her policy does not open is not offered, and the gateway's own answer says the same.
    const caps = (await fromPage<Caps>(alice, '/v1/console/capabilities')).body;
    expect(caps.pages).toEqual(['datasets', 'jobs', 'submit', 'quota', 'certificate']);
    expect(caps.buttons).toEqual(['cancel_own_job']);
    for (const hidden of ['audit', 'policy', 'usage', 'certificates']) expect(caps.pages).not.toContain(hidden);
    // A hidden page opened by its address says it is not open; the API refuses it too.
    await alice.page.goto(`${stack.url}/console/#/audit`);
    await alice.page.getByText('This page is not open to you').waitFor();
    expect((await fromPage(alice, '/v1/audit?limit=1')).status).toBe(403);
    await alice.page.goto(`${stack.url}/console/#/`);
    await alice.page.getByRole('heading', { name: 'Hello, alice' }).waitFor();
    await screenshot(alice.page, 'home-alice');

    // The session cookie: Secure, HttpOnly, SameSite=Lax (the SSO callback is reached cross-site);
    // the CSRF cookie is readable by the page, by design.
    const cookies = await alice.context.cookies();
    const session = cookies.find((c) => c.name === '__Host-gatehouse_session')!;
    expect(session).toMatchObject({ secure: true, httpOnly: true, sameSite: 'Lax', path: '/' });
    const csrf = cookies.find((c) => c.name === '__Host-gatehouse_csrf')!;
    expect(csrf).toMatchObject({ secure: true, httpOnly: false, sameSite: 'Lax' });
    expect(alice.problems).toEqual([]);
  });

  it('signs in with the directory form: a Strict session cookie of the same kind', async () => {
    const carol = await person();
    await carol.page.goto(`${stack.url}/console/`);
    await carol.page.getByLabel('Username').fill('carol');
    await carol.page.getByLabel('Password').fill('wrong');
    await carol.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await carol.page.getByText('Wrong username or password.').waitFor();
    await screenshot(carol.page, 'signin-refused');
    await carol.page.getByLabel('Password').fill(passwordOf('carol'));
    await carol.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await carol.page.locator('#sign-out').waitFor();
    const me = (await fromPage(carol, '/v1/whoami')).body;
    expect(me).toMatchObject({ user: 'carol', auth_method: 'ldap', credential: 'session' });
    const session = (await carol.context.cookies()).find((c) => c.name === '__Host-gatehouse_session')!;
    expect(session).toMatchObject({ secure: true, httpOnly: true, sameSite: 'Strict' });
    // The auditor's capabilities come from the policy: audit pages open, the scientist's own pages too.
    const caps = (await fromPage<Caps>(carol, '/v1/console/capabilities')).body;
    expect(caps.pages).toEqual(expect.arrayContaining(['audit', 'lineage', 'policy', 'datasets']));
    expect(caps.pages).not.toContain('certificates');
    expect(caps.rules.audit).toBe('p, role:auditors, audit:*, read, allow');
  });

  it('refuses a directory sign-in sent by another site (login CSRF)', async () => {
    const other = await fetchTls(`${stack.url}/v1/auth/ldap/session`, { ca: stack.ca, method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, body: JSON.stringify({ username: 'alice', password: passwordOf('alice') }) });
    expect(other.status).toBe(403);
    expect(other.headers['set-cookie']).toBeUndefined();
  });

  it('refuses a cookie-authenticated change without the CSRF token, or with a forged one; bearer clients are unaffected', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    const cookie = await cookieHeader(alice);
    // A job submission: a change the cookie alone would authorize, refused (and recorded) before its body is read.
    const post = (headers: Record<string, string>) => fetchTls(`${stack.url}/v1/jobs`, { ca: stack.ca, method: 'POST', headers: { cookie, 'content-type': 'application/json', origin: 'https://evil.example', ...headers }, body: '{}' });
    // A cross-site POST carrying the cookie but no token, and one with a token of its own making.
    expect((await post({})).status).toBe(401);
    expect((await post({ 'x-csrf-token': 'forged-token-forged-token-forged' })).status).toBe(401);
    // Another session's genuine token does not fit this session either.
    const bob = await person();
    await signInWithSso(bob.page, stack.url, 'bob');
    expect((await post({ 'x-csrf-token': await csrfOf(bob) })).status).toBe(401);
    // The session is still alive after all that, and the page's own change (with its token) works.
    expect((await fromPage(alice, '/v1/whoami')).status).toBe(200);
    const events = stack.auditEvents().filter((e) => e.action === 'auth.rejected' && e.reason === 'csrf');
    expect(events.length).toBeGreaterThanOrEqual(3);
    // And from inside the browser: another site's page (served here as https://evil.example) posts a
    // form to the gateway in alice's browser. Refused: SameSite keeps the cookie home, and without
    // the token the cookie would not be enough anyway.
    await alice.page.route('https://evil.example/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<form id="f" method="post" enctype="text/plain" action="${stack.url}/v1/jobs"><input name='{"a":"' value='"}'></form><script>document.getElementById('f').submit()</script>`,
      }),
    );
    const [crossSite] = await Promise.all([alice.page.waitForResponse((r) => r.url() === `${stack.url}/v1/jobs`), alice.page.goto('https://evil.example/')]);
    expect(crossSite.status()).toBe(401);
    await alice.page.goto(`${stack.url}/console/`);
    expect((await fromPage(alice, '/v1/whoami')).status).toBe(200);
    // A bearer token needs no CSRF token: it is not sent by a browser on its own.
    const token = await stack.login('alice');
    expect((await stack.api('/v1/auth/logout', token, { method: 'POST', body: {} })).status).toBe(200);
  });

  it('signing out ends the login on the gateway: the old cookie is refused', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    const cookie = await cookieHeader(alice);
    expect((await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, headers: { cookie } })).status).toBe(200);
    await alice.page.getByRole('button', { name: 'Sign out' }).click();
    await alice.page.getByText('You are signed out').waitFor();
    await screenshot(alice.page, 'signed-out');
    // The cookie the browser held, presented again from outside it: the login is over.
    expect((await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, headers: { cookie } })).status).toBe(401);
    expect(stack.auditEvents().some((e) => e.action === 'auth.logout' && e.actor.user === 'alice')).toBe(true);
  });

  it('has no horizontal scroll at phone width', async () => {
    const alice = await person(375);
    await signInWithSso(alice.page, stack.url, 'alice');
    const overflow = () => alice.page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;
    expect(await overflow()).toBeLessThanOrEqual(0);
    await alice.page.getByRole('button', { name: 'Menu' }).click();
    await alice.page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Datasets' }).waitFor();
    await screenshot(alice.page, 'phone-menu');
    expect(await overflow()).toBeLessThanOrEqual(0);
  });
});

const COPY_PY = `def process(input_path, output_path, ctx):
    print("copying partition", ctx.partition if hasattr(ctx, "partition") else "")
    with open(input_path) as src, open(output_path, "w") as out:
        out.write(src.read())
`;

describe(`the data scientist's pages (${STORE})`, () => {
  it('alice previews a dataset, submits a job from the form with a dry run first, and watches it finish', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    const page = alice.page;

    await page.goto(`${stack.url}/console/#/datasets`);
    const row = page.locator('tr', { hasText: 'scratch/tiny' });
    await row.getByRole('button', { name: 'Preview' }).click();
    await page.locator('#preview table').getByText('alpha').waitFor();
    await page.getByLabel('Partition').selectOption('1');
    await page.locator('#preview table').getByText('11').waitFor();
    await screenshot(page, 'datasets');
    expect(stack.auditEvents().some((e) => e.action === 'dataset.read' && e.actor.user === 'alice')).toBe(true);

    await page.goto(`${stack.url}/console/#/submit`);
    await page.getByLabel('Program (.py or .mjs)').setInputFiles({ name: 'copy.py', mimeType: 'text/x-python', buffer: Buffer.from(COPY_PY) });
    await page.getByLabel('Input dataset').selectOption('scratch/tiny');
    await page.getByLabel('Output dataset').fill('scratch-alice/console-copy');
    const preview = page.locator('#job-preview');
    await preview.getByText('Would run now').waitFor();
    await preview.getByText('2 partitions, 6 rows').waitFor();
    await screenshot(page, 'submit-preview');
    const previews = stack.auditEvents().filter((e) => e.action === 'job.preview' && e.actor.user === 'alice');
    expect(previews.at(-1)).toMatchObject({ decision: 'allow', object: 'job:preview', details: { outcome: 'would_run', input: 'scratch/tiny', output: 'scratch-alice/console-copy' } });
    // The dry run held nothing and started nothing.
    expect(stack.auditEvents().some((e) => e.action === 'job.submit' && e.actor.user === 'alice')).toBe(false);

    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.waitForURL(/#\/jobs\/[A-Za-z0-9_-]+$/);
    await page.locator('.job-state').getByText('succeeded', { exact: true }).waitFor({ timeout: 90_000 });
    await page.getByText('complete', { exact: true }).waitFor();
    expect(await page.locator('#job-log').textContent()).toContain('copying partition');
    // The page looked at the job with held waits (the seen token of the answer before), not a poll.
    const jobId = new URL(page.url()).hash.split('/').at(-1)!;
    expect(stack.gateway.output()).toMatch(new RegExp(`"url":"/v1/jobs/${jobId}\\?wait_s=25&seen=[A-Za-z0-9_-]+"`));
    await screenshot(page, 'job-finished');

    await page.goto(`${stack.url}/console/#/jobs`);
    await page.locator('#jobs-table').getByText('scratch-alice/console-copy').waitFor();
    await screenshot(page, 'jobs');
    expect(alice.problems).toEqual([]);
  }, 180_000);

  it('cancels a running job from the list', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    const token = await stack.login('alice');
    const slow = { name: 'slow', input: 'scratch/tiny', output: 'scratch-alice/slow', runtime: 'python', source: 'import time\ndef process(i, o, ctx):\n    time.sleep(120)\n', resources: { cores: 1, memory_mb: 256, time_limit_s: 300 } };
    const created = await stack.api('/v1/jobs', token, { method: 'POST', body: slow });
    expect(created.status, created.body).toBe(201);
    const id = created.json<{ id: string }>().id;
    await alice.page.goto(`${stack.url}/console/#/jobs`);
    const row = alice.page.locator(`tr[data-job="${id}"]`);
    await row.getByRole('button', { name: /^Cancel job/ }).click();
    await row.getByRole('button', { name: /^Confirm/ }).click();
    await row.getByText('cancelled', { exact: true }).waitFor();
    expect((await stack.api(`/v1/jobs/${id}`, token)).json<{ state: string }>().state).toBe('cancelled');
  }, 120_000);

  it('dave is told before and on submit that the policy refuses, with the rule', async () => {
    const dave = await person();
    await signInWithSso(dave.page, stack.url, 'dave');
    const page = dave.page;
    await page.goto(`${stack.url}/console/#/submit`);
    // Only what he may read is offered as input (scratch/tiny is the analysts').
    await page.getByLabel('Input dataset').locator('option[value="words"]').waitFor({ state: 'attached' });
    const inputs = await page.getByLabel('Input dataset').locator('option').allTextContents();
    expect(inputs).toContain('words');
    expect(inputs).not.toContain('scratch/tiny');
    await page.getByLabel('Program (.py or .mjs)').setInputFiles({ name: 'copy.py', mimeType: 'text/x-python', buffer: Buffer.from(COPY_PY) });
    await page.getByLabel('Input dataset').selectOption('words');
    await page.getByLabel('Output dataset').fill('scratch-dave/tagged');
    await page.getByLabel('Extra labels on the output').fill('pii');
    const preview = page.locator('#job-preview');
    await preview.getByText('Would be refused').waitFor();
    await preview.locator('.rule', { hasText: 'p, role:contractors, label:pii, write, deny' }).first().waitFor();
    await screenshot(page, 'submit-refused-preview');
    await page.getByRole('button', { name: 'Submit job' }).click();
    const result = page.locator('#submit-result');
    await result.getByText('Refused by the policy').waitFor();
    await result.locator('.rule', { hasText: 'p, role:contractors, label:pii, write, deny' }).waitFor();
    await screenshot(page, 'submit-refused');
    expect(stack.auditEvents().some((e) => e.action === 'job.preview' && e.actor.user === 'dave' && e.decision === 'deny')).toBe(true);
    // A quota line is shown the same way: more cores than a contractor may hold.
    await page.getByLabel('Extra labels on the output').fill('');
    await page.getByLabel('Cores').fill('6');
    await preview.getByText('6 cores requested, the limit is 4').waitFor();
    await preview.getByText(/p2, role:contractors, max_cores, 4/).waitFor();
  }, 120_000);

  it('shows alice her quota as gauges with the policy line of each limit', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    await alice.page.goto(`${stack.url}/console/#/quota`);
    await alice.page.getByText('Cores in use').waitFor();
    await alice.page.getByText('p2, role:analysts, max_cores, 8').waitFor();
    expect(await alice.page.getByRole('meter').count()).toBe(4);
    await screenshot(alice.page, 'quota');
  });

  it('makes a key and a certificate in the browser; the certificate names alice and opens the API', async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    const page = alice.page;
    await page.goto(`${stack.url}/console/#/certificate`);
    await page.getByLabel('Lifetime').selectOption('3600');
    await page.getByRole('button', { name: 'Create key and certificate' }).click();
    await page.getByText(/^Signed: serial/).waitFor();
    await screenshot(page, 'certificate');
    const save = async (name: string) => {
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name }).click()]);
      return readFileSync((await download.path())!, 'utf8');
    };
    const cert = await save('Download certificate');
    const key = await save('Download private key');
    const x509 = new X509Certificate(cert);
    expect(x509.subject).toContain('CN=alice');
    expect(Date.parse(x509.validTo) - Date.now()).toBeLessThanOrEqual(3600_000 + 120_000);
    const me = await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, cert, key });
    expect(me.status, me.body).toBe(200);
    expect(me.json()).toMatchObject({ user: 'alice', credential: 'certificate' });
  });

  it('every page fits a phone: no horizontal scroll at 375 px', async () => {
    const alice = await person(375);
    await signInWithSso(alice.page, stack.url, 'alice');
    for (const name of ['datasets', 'jobs', 'submit', 'quota', 'certificate']) {
      await alice.page.goto(`${stack.url}/console/#/${name}`);
      await alice.page.locator('main h1').waitFor();
      await alice.page.locator('main .muted', { hasText: /^Loading/ }).waitFor({ state: 'detached' });
      await screenshot(alice.page, `phone-${name}`);
      const overflow = (await alice.page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
      expect(overflow, name).toBeLessThanOrEqual(0);
    }
  }, 120_000);
});
