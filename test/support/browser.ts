// A real browser for the console's tests: Debian's chromium driven by playwright-core (no browser
// download), trusting only the test gateway's certificate, pinned by its public key's hash
// (--ignore-certificate-errors-spki-list), never every certificate. Each person gets their own
// context (their own cookie jar); screenshots go to test-artifacts/ (gitignored) to be looked at.
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from './gatehouse.js';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test-artifacts');

/** base64 sha256 of a certificate's SubjectPublicKeyInfo: the form chromium's SPKI pin list takes. */
export function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

export async function launchChromium(certsDir: string): Promise<Browser> {
  const pin = spkiHash(readFileSync(join(certsDir, 'gateway.crt'), 'utf8'));
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${pin}`],
  });
}

export interface Person {
  context: BrowserContext;
  page: Page;
  /** What the page printed to its console and any script error: a finished console prints none. */
  problems: string[];
}

/** A fresh browser profile (cookies, storage) at the given viewport width. */
export async function newPerson(browser: Browser, width = 1280, height = 860): Promise<Person> {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  return { context, page, problems };
}

/** Saves a full-page screenshot as test-artifacts/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  // From the top: a sticky header scrolled with the page would be drawn across the middle.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Signs in through the SSO provider's real pages: the console's button, the provider's login and consent forms. */
export async function signInWithSso(page: Page, base: string, username: string, password = `${username}-demo`): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByRole('link', { name: 'Sign in with single sign-on' }).click();
  await page.locator('form#login').waitFor();
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('form#login button[type=submit]');
  // The provider asks for consent the first time this person signs in to the gateway's client.
  const consent = page.locator('form#consent button');
  const landed = page.locator('#sign-out');
  await consent.or(landed).first().waitFor();
  if (await consent.isVisible()) await consent.click();
  await landed.waitFor();
}
