// `gatehouse login | logout | whoami | cert`: the data scientist's side of identity. They call the
// gateway's HTTP API like any other client and keep what they get under the user's config folder.
import { structured } from './output.js';
import type * as ChildProcesses from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ApiError, call, type Target } from './client/api.js';
import { certificateDir, forgetLogin, loadLogin, saveLogin, writePrivate } from './client/credentials.js';
import { promptHidden, promptLine, readPasswordFromStdin } from './client/prompt.js';
import { accessToken, savedFrom, where } from './client/session.js';
import { UsageError } from './fail.js';
import { printLine, printNote, safeJson } from './safe-text.js';

export interface LoginOptions {
  sso: boolean;
  ldap: boolean;
  user?: string | undefined;
  passwordStdin: boolean;
  browser: boolean;
  json: boolean;
}

interface Whoami {
  user: string;
  groups: string[];
  auth_method: string;
  credential: string;
  expires_at: string;
}

interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

const out = printLine;
const note = printNote;

export async function login(target: Target, options: LoginOptions): Promise<number> {
  if (options.sso === options.ldap) throw new UsageError('choose one: gatehouse login --sso (your company SSO) or --ldap (directory password)');
  const answer = options.sso ? await deviceLogin(target, options) : await ldapLogin(target, options);
  const me = await call<Whoami>(target, 'GET', '/v1/whoami', { token: answer.access_token });
  saveLogin(target, savedFrom(answer, me));
  if (options.json) out(structured({ status: 'logged_in', url: target.url, context: target.context ?? null, ...me }));
  else out(`logged in to ${where(target)} as ${me.user} (${me.groups.join(', ') || 'no groups'}) with ${me.auth_method}`);
  return 0;
}

async function ldapLogin(target: Target, options: LoginOptions): Promise<TokenAnswer> {
  const username = options.user ?? (await promptLine('username: '));
  if (!username) throw new UsageError('a username is needed: --user NAME');
  const password = options.passwordStdin ? await readPasswordFromStdin() : await promptHidden(`password for ${username}: `);
  if (password === '') throw new UsageError('an empty password is never accepted');
  return call<TokenAnswer>(target, 'POST', '/v1/auth/ldap', { body: { username, password } });
}

async function deviceLogin(target: Target, options: LoginOptions): Promise<TokenAnswer> {
  const start = await call<{ device_code: string; user_code: string; verification_uri: string; verification_uri_complete: string; interval: number; expires_in: number }>(target, 'POST', '/v1/auth/device', { body: {} });
  // The URL and code go to stderr so that --json keeps stdout for the result; tools read them too.
  note(`To log in, open ${start.verification_uri} and enter the code ${start.user_code}`);
  note(`  or open ${start.verification_uri_complete}`);
  if (options.json) note(safeJson({ status: 'pending', verification_uri: start.verification_uri, verification_uri_complete: start.verification_uri_complete, user_code: start.user_code, expires_in: start.expires_in }));
  if (options.browser) openBrowser(start.verification_uri_complete);
  let interval = Math.max(1, start.interval);
  const deadline = Date.now() + start.expires_in * 1000;
  const startedAt = Date.now();
  const spinner = progress(() => `waiting for approval… ${Math.round((Date.now() - startedAt) / 1000)} s (expires in ${Math.max(0, Math.round((deadline - Date.now()) / 1000))} s)`);
  try {
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, interval * 1000));
      try {
        return await call<TokenAnswer>(target, 'POST', '/v1/auth/device/token', { body: { device_code: start.device_code } });
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        if (err.code === 'authorization_pending') continue;
        if (err.code === 'slow_down') {
          interval += 5; // RFC 8628 §3.5
          continue;
        }
        if (err.code === 'access_denied') throw new UsageError('the login was refused at the SSO provider');
        if (err.code === 'expired_token') break;
        throw err;
      }
    }
  } finally {
    spinner.stop();
  }
  throw new UsageError('the login code expired before it was approved; run gatehouse login --sso again');
}

/** A one-line progress indicator on a terminal; silent when stderr is not one. */
function progress(text: () => string): { stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  const timer = setInterval(() => process.stderr.write(`\r${frames[i++ % frames.length]} ${text()}\u001b[K`), 100);
  return {
    stop() {
      clearInterval(timer);
      process.stderr.write('\r\u001b[K');
    },
  };
}

/**
 * Only a web address goes to the browser command: the gateway names the URL, and a `file:` URL, a
 * scheme handler or a word starting with `-` (read as an option by xdg-open or open) must not be run.
 */
export function browsable(url: string): boolean {
  if (url.startsWith('-')) return false;
  try {
    return ['https:', 'http:'].includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

function openBrowser(url: string): void {
  if (!browsable(url)) return; // the printed URL (escaped) is still there to read
  const graphical = process.platform === 'darwin' || process.platform === 'win32' || Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY || process.env.BROWSER);
  if (!graphical) return; // an ssh session: the user opens the printed URL on their own machine
  const command = process.env.BROWSER || (process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open');
  try {
    // Loaded here, not at the top: whoami, logout and cert never open a browser.
    const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof ChildProcesses;
    const child = spawn(command, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // No browser to open: the printed URL is enough.
  }
}

export async function logout(target: Target, json: boolean): Promise<number> {
  const saved = loadLogin(target);
  if (!saved) {
    if (json) out(structured({ status: 'not_logged_in', url: target.url }));
    else out(`not logged in to ${where(target)}`);
    return 0;
  }
  try {
    await call(target, 'POST', '/v1/auth/logout', { body: { refresh_token: saved.refresh_token } });
  } finally {
    // Even when the gateway cannot be reached, the local copy goes: logging out must never leave tokens behind.
    forgetLogin(target);
  }
  if (json) out(structured({ status: 'logged_out', url: target.url, user: saved.user }));
  else out(`logged out ${saved.user} from ${where(target)}; the login's tokens and certificates are revoked`);
  return 0;
}

export async function whoami(target: Target, json: boolean): Promise<number> {
  const me = await call<Whoami>(target, 'GET', '/v1/whoami', { token: await accessToken(target) });
  if (json) out(structured({ ...me, url: target.url, context: target.context ?? null }));
  else {
    out(`user        ${me.user}`);
    out(`groups      ${me.groups.join(', ') || '(none)'}`);
    out(`logged in   with ${me.auth_method} at ${where(target)}`);
    out(`token until ${me.expires_at} (renewed automatically)`);
  }
  return 0;
}

export async function certificate(target: Target, options: { json: boolean; ttl?: number | undefined }): Promise<number> {
  const token = await accessToken(target);
  // The key and CSR code is the gateway's certificate room: loaded for this verb only.
  const { createKeyAndCsr } = await import('../auth/index.js');
  const { keyPem, csrPem } = await createKeyAndCsr();
  const issued = await call<{ certificate: string; ca: string; expires_at: string; serial: string }>(target, 'POST', '/v1/certs', {
    token,
    body: { csr: csrPem, ...(options.ttl ? { ttl_s: options.ttl } : {}) },
  });
  const dir = certificateDir(target);
  const files = { key: join(dir, 'client.key'), cert: join(dir, 'client.crt'), ca: join(dir, 'ca.crt') };
  writePrivate(files.key, keyPem);
  writePrivate(files.cert, issued.certificate);
  writePrivate(files.ca, issued.ca);
  if (options.json) out(structured({ serial: issued.serial, expires_at: issued.expires_at, certificate: files.cert, key: files.key, ca: files.ca }));
  else {
    out(`client certificate ${issued.serial}, valid until ${issued.expires_at}`);
    out(`  certificate ${files.cert}`);
    out(`  key         ${files.key}   (never leaves this machine)`);
    out(`  CA          ${files.ca}`);
    out(`  try it: curl --cert ${files.cert} --key ${files.key} --cacert ${files.ca} ${target.url}/v1/whoami`);
  }
  return 0;
}
