// Issue 19, points 5 and 6, in a real browser (Debian's chromium through playwright-core) against a
// real gateway, engine and SSO provider: carol (auditor) finds alice's job in the trail, opens an
// event in its chain and the job's lineage, and exports the search as CSV; bob (admin) sees a broken
// policy edit refused with its file:line, asks "can I?", looks at compute and revokes a certificate
// after confirming; alice sees none of these pages and their API refuses her. Screenshots of each
// page go to test-artifacts/ (gitignored).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../src/auth/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { launchChromium, newPerson, type Person, screenshot, signInWithSso } from './support/browser.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

let stack: Stack;
let browser: Browser;
const people: Person[] = [];
let jobId = '';
let aliceToken = '';

async function person(width?: number, height?: number): Promise<Person> {
  const p = await newPerson(browser, width, height);
  people.push(p);
  return p;
}

/** A full-page screenshot from the top (the sticky top bar stays where a scrolled page left it otherwise). */
async function shot(p: Person['page'], name: string): Promise<void> {
  await p.evaluate('window.scrollTo(0, 0)');
  await screenshot(p, name);
}

/** GET from inside the page (its cookie, its origin): the status. */
const statusFromPage = (p: Person, path: string) => p.page.evaluate(async (url) => (await fetch(url)).status, path);

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,alpha\n2,beta\n', rows: 2 }] });
  aliceToken = await stack.login('alice');
  const submitted = await stack.api('/v1/jobs', aliceToken, {
    method: 'POST',
    body: { name: 'word-copy', input: 'scratch/tiny', output: 'scratch/word-copy', runtime: 'python', source: "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n", resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } },
  });
  expect(submitted.status, submitted.body).toBe(201);
  jobId = submitted.json<{ id: string }>().id;
  await until(async () => ((await stack.api(`/v1/jobs/${jobId}`, aliceToken)).json<{ state: string }>().state === 'succeeded' ? true : undefined), 60_000, 'the job to succeed');
  browser = await launchChromium(stack.certsDir);
}, 180_000);

afterAll(async () => {
  for (const p of people) await p.context.close().catch(() => undefined);
  await browser?.close();
  await stack?.stop();
});

describe('the auditor', () => {
  it("finds alice's job in the trail, opens an event in its chain and the job's lineage, and exports the search as CSV", async () => {
    const carol = await person();
    const { page } = carol;
    await signInWithSso(page, stack.url, 'carol');
    await expect(page.locator('#nav a[data-page="audit"]').count()).resolves.toBe(1);
    await expect(page.locator('#nav a[data-page="policy"]').count()).resolves.toBe(1); // auditors read the policy
    await expect(page.locator('#nav a[data-page="certificates"]').count()).resolves.toBe(0);

    await page.click('#nav a[data-page="audit"]');
    await page.getByLabel('User', { exact: true }).fill('alice');
    await page.getByLabel('Action', { exact: true }).fill('job.');
    await page.click('#search');
    const row = page.locator('tbody tr', { hasText: 'job.submit' });
    await row.waitFor();
    await expect(row.locator('a', { hasText: jobId }).count()).resolves.toBe(1);
    // The verification badge: the whole trail verified, with its last signed checkpoint (or none yet).
    await page.locator('.verify-badge', { hasText: 'chain verified' }).waitFor();
    expect(page.url()).toContain('user=alice');
    await shot(page, 'admin-audit-search');

    // One event with its place in the chain.
    await row.getByRole('button', { name: /Details of event/ }).click();
    const panel = page.locator('#event-panel');
    await panel.getByText('Place in the chain').waitFor();
    const submit = stack.auditEvents().find((e) => e.action === 'job.submit' && e.object === `job:${jobId}`)!;
    await expect(panel.textContent()).resolves.toContain(submit.hash);
    await shot(page, 'admin-audit-event');

    // The export of the current search, as the browser downloads it.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
    const csv = readFileSync((await download.path())!, 'utf8');
    const lines = csv.trim().split('\n');
    expect(lines[0]).toMatch(/^id,time,/);
    expect(lines.slice(1).every((l) => l.includes('alice'))).toBe(true);
    expect(csv).toContain(`job:${jobId}`);
    expect(lines.length).toBeGreaterThanOrEqual(4); // submit, start, finish at least

    // The job's lineage, from the row's link.
    await row.locator('a', { hasText: jobId }).click();
    await page.locator('.lineage-flow').waitFor();
    await expect(page.locator('.lineage-input').textContent()).resolves.toContain('scratch/tiny');
    await expect(page.locator('.lineage-output').textContent()).resolves.toContain('scratch/word-copy');
    await expect(page.locator('.lineage-job').textContent()).resolves.toContain('alice');
    await page.locator('td .rule', { hasText: 'p, role:analysts, dataset:scratch/*, read, allow' }).first().waitFor();
    await shot(page, 'admin-lineage');
    expect(carol.problems).toEqual([]);
  }, 120_000);

  it('reads the trail and the lineage at phone width', async () => {
    const phone = await person(390, 844);
    await signInWithSso(phone.page, stack.url, 'carol');
    await phone.page.goto(`${stack.url}/console/#/lineage?job=${jobId}`);
    await phone.page.locator('.lineage-flow').waitFor();
    // Nothing wider than the screen: the table folds into rows, the diagram into a column.
    await expect(phone.page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>).resolves.toBeLessThanOrEqual(0);
    await shot(phone.page, 'admin-lineage-phone');
    await phone.page.goto(`${stack.url}/console/#/audit?user=alice`);
    await phone.page.locator('tbody tr').first().waitFor();
    await expect(phone.page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>).resolves.toBeLessThanOrEqual(0);
    await shot(phone.page, 'admin-audit-phone');
  }, 60_000);
});

describe('the IT admin', () => {
  it('sees a broken policy edit refused with its file:line, asks can-i, looks at compute and revokes a certificate', async () => {
    const csr = (await createKeyAndCsr()).csrPem;
    const issued = await stack.api('/v1/certs', aliceToken, { method: 'POST', body: { csr } });
    expect(issued.status, issued.body).toBe(200);
    const serial = issued.json<{ serial: string }>().serial;

    const bob = await person();
    const { page } = bob;
    await signInWithSso(page, stack.url, 'bob');
    await page.click('#nav a[data-page="policy"]');
    await page.locator('#serving').waitFor();

    // A broken edit: the running gateway refuses it (by itself, or when bob asks), the old version serves.
    const file = join(stack.policies, 'policy.csv');
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, `${good}p, role:analysts, dataset:words, raed, allow\n`);
    const badLine = good.split('\n').length;
    try {
      await page.click('#reload-policy');
      const refused = page.locator('#reload-status .notice-error', { hasText: 'Refused' });
      await refused.waitFor();
      await expect(refused.textContent()).resolves.toContain(`policy.csv:${badLine}: unknown action "raed"`);
      await page.locator('#last-reload .notice-error', { hasText: 'The latest edit was refused' }).waitFor();
      await expect(page.locator('#last-reload').textContent()).resolves.toContain(`policy.csv:${badLine}`);
      await shot(page, 'admin-policy-refused');
    } finally {
      writeFileSync(file, good);
    }

    // A good edit: put in service, and the page shows who gained what.
    writeFileSync(file, `${good}p, role:auditors, dataset:words, read, allow\n`);
    await page.click('#reload-policy');
    await page.locator('#policy-diff li', { hasText: 'role:auditors gains read on dataset:words' }).waitFor();
    await page.locator('#last-reload .notice-ok').waitFor();
    await shot(page, 'admin-policy-diff');

    // Can I? alice reading scratch/tiny: allowed, by which rule, through which roles.
    await page.locator('#can-i').getByLabel('Name').fill('alice');
    await page.locator('#can-i').getByLabel('Object').fill('dataset:scratch/tiny');
    await page.click('#can-i-ask');
    const answer = page.locator('#can-i-result');
    await answer.waitFor();
    const text = (await answer.textContent()) ?? '';
    expect(text).toContain('Allowed');
    expect(text).toContain('p, role:analysts, dataset:scratch/*, read, allow');
    expect(text).toMatch(/user:alice → group:analysts → role:analysts/);
    // A group: contractors may not read it.
    await page.locator('#can-i').getByLabel('Who').selectOption('group');
    await page.locator('#can-i').getByLabel('Name').fill('contractors');
    await page.click('#can-i-ask');
    await page.locator('#can-i-result', { hasText: 'Denied' }).waitFor();
    await shot(page, 'admin-policy-can-i');

    // Compute: slots, the queue, everyone's usage with the line of each limit.
    await page.click('#nav a[data-page="usage"]');
    await page.locator('.slot-card').first().waitFor();
    await page.locator('tbody tr', { hasText: 'alice' }).first().waitFor();
    const aliceRow = page.locator('tbody tr', { hasText: 'alice' }).first();
    await expect(aliceRow.locator('td[data-label="Cores"]').textContent()).resolves.toMatch(/^0 \/ 8policy\.csv:\d+ · role:analysts$/);
    await expect(aliceRow.locator('td[data-label="Cores"] .limit-line').getAttribute('title')).resolves.toMatch(/^policy\.csv:\d+: p2, role:analysts, max_cores, 8$/);
    await shot(page, 'admin-compute');

    // Certificates: alice's is listed; revoking asks first, and Cancel leaves it valid.
    await page.click('#nav a[data-page="certificates"]');
    const revoke = page.locator(`button[data-serial="${serial}"]`);
    await revoke.waitFor();
    await revoke.click();
    await page.locator('dialog.confirm').getByRole('button', { name: 'Cancel' }).click();
    await expect(page.locator('tbody tr', { hasText: serial }).textContent()).resolves.toContain('valid');
    await revoke.click();
    await shot(page, 'admin-certificates-confirm');
    await page.click('#confirm-yes');
    await page.locator('.notice-ok', { hasText: 'revoked' }).waitFor();
    await page.click('#show-ended');
    await page.locator('tbody tr', { hasText: serial }).getByText('revoked').waitFor();
    await shot(page, 'admin-certificates');
    const list = (await stack.api('/v1/certs', aliceToken)).json<{ certificates: { serial: string; revoked: boolean; revoked_by: string }[] }>().certificates;
    expect(list.find((c) => c.serial === serial)).toMatchObject({ revoked: true, revoked_by: 'bob' });
    // The refused reload answered 422 on purpose; nothing else went wrong in the page.
    expect(bob.problems.filter((p) => !/status of 422/.test(p))).toEqual([]);
  }, 120_000);
});

describe('a data scientist', () => {
  it("sees none of the auditor's or IT's pages, and their API refuses her", async () => {
    const alice = await person();
    await signInWithSso(alice.page, stack.url, 'alice');
    for (const name of ['audit', 'lineage', 'policy', 'can_i', 'usage', 'certificates']) await expect(alice.page.locator(`#nav a[data-page="${name}"]`).count(), name).resolves.toBe(0);
    await alice.page.goto(`${stack.url}/console/#/audit`);
    await alice.page.getByText('This page is not open to you').waitFor();
    await shot(alice.page, 'admin-alice-refused');
    for (const path of ['/v1/audit?limit=1', `/v1/audit/lineage/${jobId}`, '/v1/audit/events/1', '/v1/policy', '/v1/policy/diff', '/v1/quota/users', '/v1/compute/slots', '/v1/certs?all=1']) {
      await expect(statusFromPage(alice, path), path).resolves.toBe(403);
    }
    await expect(statusFromPage(alice, '/v1/certs')).resolves.toBe(200); // her own
  }, 60_000);
});
