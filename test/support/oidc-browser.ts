// Drives the development OIDC provider's pages the way a browser would: plain HTTP requests with a
// cookie jar, redirects followed by hand, forms read from the HTML and posted back. No JavaScript,
// so the provider's auto-submitting form_post pages are submitted here instead.

export interface Credentials {
  username: string;
  password: string;
}

export interface BrowserOptions {
  /** Refuse at the consent page instead of allowing. */
  deny?: boolean;
}

export type DeviceOutcome =
  /** The device is signed in: the next poll returns the subject. */
  | 'approved'
  /** Refused at consent: the next poll fails with access_denied. */
  | 'denied'
  /** The provider showed its login form again (wrong username or password): nothing changed. */
  | 'login_failed'
  /** The provider showed an error page (unknown, expired or used code, ...). */
  | 'error';

export interface DeviceResult {
  outcome: DeviceOutcome;
  /** The last page the browser showed. */
  html: string;
}

/** Approves (or refuses) a device login: from verification_uri_complete, or verification_uri plus the user_code typed in. */
export async function approveDevice(
  target: string | { verification_uri: string; user_code: string },
  credentials: Credentials,
  options: BrowserOptions = {},
): Promise<DeviceResult> {
  const browser = new Browser();
  const url = typeof target === 'string' ? target : target.verification_uri;
  const userCode = typeof target === 'string' ? undefined : target.user_code;
  const end = await browser.walk(url, credentials, { ...options, userCode });
  if (end.kind === 'redirect') throw new Error(`device login left the provider for ${end.location}`);
  return { outcome: end.outcome, html: end.html };
}

/**
 * Walks an authorization URL through login and consent and returns the callback URL (with code and
 * state, or error) the browser would be sent to; the gateway's callback itself is not requested.
 */
export async function completeCodeFlow(authorizationUrl: string, credentials: Credentials, options: BrowserOptions = {}): Promise<URL> {
  const browser = new Browser();
  const end = await browser.walk(authorizationUrl, credentials, options);
  if (end.kind === 'redirect') return new URL(end.location);
  throw new Error(`the provider did not redirect back (${end.outcome}): ${textOf(end.html).slice(0, 300)}`);
}

type End = { kind: 'redirect'; location: string } | { kind: 'page'; outcome: DeviceOutcome; html: string };

interface Form {
  id: string;
  action: string;
  method: string;
  fields: Map<string, string>;
}

const MAX_STEPS = 20;

export class Browser {
  readonly jar = new CookieJar();

  /** Follows redirects and fills the provider's forms until a page ends the flow or a redirect leaves the provider. */
  async walk(start: string, credentials: Credentials, options: BrowserOptions & { userCode?: string }): Promise<End> {
    const origin = new URL(start).origin;
    let response = await this.request(start);
    let loggedIn = false;
    let denied = false;
    for (let step = 0; step < MAX_STEPS; step++) {
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        const next = new URL(location, response.url || start);
        if (next.origin !== origin) return { kind: 'redirect', location: next.href };
        response = await this.request(next.href);
        continue;
      }
      const html = await response.text();
      // Whatever the provider shows after a refusal ends the walk.
      if (denied) return { kind: 'page', outcome: 'denied', html };
      const forms = parseForms(html, response.url || start);
      const byId = (id: string) => forms.find((f) => f.id === id);

      const input = byId('op.deviceInputForm');
      const confirm = byId('op.deviceConfirmForm');
      const login = byId('login');
      const consent = byId(options.deny ? 'deny' : 'consent');
      if (input) {
        if (options.userCode === undefined) return { kind: 'page', outcome: 'error', html };
        input.fields.set('user_code', options.userCode);
        options = { ...options, userCode: undefined };
        response = await this.submit(input);
      } else if (confirm) {
        confirm.fields.set('confirm', 'yes');
        response = await this.submit(confirm);
      } else if (login) {
        if (loggedIn) return { kind: 'page', outcome: 'login_failed', html };
        loggedIn = true;
        login.fields.set('username', credentials.username);
        login.fields.set('password', credentials.password);
        response = await this.submit(login);
      } else if (consent) {
        response = await this.submit(consent);
        denied = options.deny === true;
      } else if (forms.length === 1 && /<title>Submitting Callback<\/title>/.test(html) && forms[0]) {
        // oidc-provider's form_post page submits itself with a script; a browser would.
        response = await this.submit(forms[0]);
      } else {
        const ok = response.status === 200 && /<title>Signed in/.test(html);
        return { kind: 'page', outcome: ok ? 'approved' : 'error', html };
      }
    }
    throw new Error(`no end after ${MAX_STEPS} steps at ${response.url}`);
  }

  submit(form: Form): Promise<Response> {
    const body = new URLSearchParams([...form.fields]).toString();
    return this.request(form.action, { method: form.method, body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }

  async request(url: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const target = new URL(url);
    const cookie = this.jar.header(target);
    const response = await fetch(target, {
      method: init.method ?? 'GET',
      body: init.body,
      redirect: 'manual',
      headers: { ...init.headers, ...(cookie ? { cookie } : {}) },
    });
    this.jar.store(target, response.headers.getSetCookie());
    // fetch leaves response.url empty for some manual redirects; keep where we were.
    Object.defineProperty(response, 'url', { value: target.href });
    return response;
  }
}

interface Cookie {
  name: string;
  value: string;
  host: string;
  path: string;
  expires: number;
}

/** Enough of RFC 6265 for one provider on one host: name, path, expiry. */
export class CookieJar {
  private readonly cookies = new Map<string, Cookie>();

  store(url: URL, setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const cookie: Cookie = { name: pair.slice(0, eq), value: pair.slice(eq + 1), host: url.host, path: defaultPath(url.pathname), expires: Infinity };
      for (const attribute of attributes) {
        const [key = '', value = ''] = attribute.split('=', 2);
        const k = key.toLowerCase();
        if (k === 'path' && value.startsWith('/')) cookie.path = value;
        else if (k === 'max-age') cookie.expires = Date.now() + Number(value) * 1000;
        else if (k === 'expires' && cookie.expires === Infinity) cookie.expires = Date.parse(value);
      }
      const key = `${cookie.host} ${cookie.path} ${cookie.name}`;
      if (cookie.expires <= Date.now()) this.cookies.delete(key);
      else this.cookies.set(key, cookie);
    }
  }

  header(url: URL): string {
    const now = Date.now();
    return [...this.cookies.values()]
      .filter((c) => c.host === url.host && c.expires > now && pathMatches(url.pathname, c.path))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

function defaultPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  return requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/');
}

function parseForms(html: string, base: string): Form[] {
  const forms: Form[] = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(match[1] ?? '');
    const fields = new Map<string, string>();
    for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1] ?? '');
      if (a.name !== undefined) fields.set(a.name, a.value ?? '');
    }
    forms.push({ id: attrs.id ?? '', action: new URL(attrs.action ?? base, base).href, method: (attrs.method ?? 'get').toUpperCase(), fields });
  }
  return forms;
}

function attributes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_:.-]+)\s*=\s*"([^"]*)"/g)) if (m[1]) out[m[1].toLowerCase()] = decodeEntities(m[2] ?? '');
  return out;
}

function decodeEntities(s: string): string {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function textOf(html: string): string {
  return html.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
}
