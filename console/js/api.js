// The API as the console calls it: same origin, the session cookie sent by the browser, and on every
// change the CSRF token the gateway bound to this session, read from its cookie and echoed in
// x-csrf-token (the gateway refuses a cookie-authenticated change without it).

const CSRF_COOKIE = '__Host-gatehouse_csrf';
const SAFE = new Set(['GET', 'HEAD']);

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `the gateway answered ${status}`);
    this.status = status;
    this.code = body?.error ?? 'error';
    this.body = body ?? {};
  }
}

export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

/** The raw response of a call; throws ApiError for an answer that is not 2xx. */
export async function request(path, { method = 'GET', body, headers = {}, signal } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (!SAFE.has(method)) {
    const token = csrfToken();
    if (token) h['x-csrf-token'] = token;
  }
  let payload;
  if (body !== undefined) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers: h, body: payload, credentials: 'same-origin', cache: 'no-store', signal });
  if (!response.ok) {
    let data;
    try {
      data = await response.json();
    } catch {
      data = { error: 'error', message: `the gateway answered ${response.status}` };
    }
    if (response.status === 401) window.dispatchEvent(new CustomEvent('gatehouse:signed-out'));
    throw new ApiError(response.status, data);
  }
  return response;
}

/** A JSON call. */
export async function api(path, options) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  return response.json();
}
