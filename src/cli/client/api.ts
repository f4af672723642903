// The CLI's HTTP client: HTTPS to the gateway with the CA the user trusts, JSON in and out, and
// the gateway's error body turned into one readable line.
import type { ClientRequest, IncomingMessage } from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';

// node:https (and TLS under it) is loaded by the first call, not by importing this file: help and
// the verbs that stop before the network (not logged in, a usage error) do not pay for it.
const load = createRequire(import.meta.url);
function httpsRequest(url: URL, options: Https.RequestOptions, callback: (res: IncomingMessage) => void): ClientRequest {
  return (load('node:https') as typeof Https).request(url, options, callback);
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown>,
    /** The answer's Retry-After in seconds, when it had one (a 429 that says when to ask again). */
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** The gateway could not be reached at all: worth a retry for a watcher, a hint for a person (exit 5). */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
}

export interface Target {
  url: string;
  /** PEM of the CA that signed the gateway's certificate; undefined uses the system CAs. */
  ca: string | undefined;
  caFile: string | undefined;
  /** The context that named the gateway, if one did: its login is kept under its name. */
  context?: string | undefined;
  /** Where the CA came from (`--ca`, `context "prod"`, ...), for an error that says what to fix. */
  caSource?: string | undefined;
}

export interface CallOptions {
  body?: unknown;
  token?: string;
  /** Return the raw body instead of parsing JSON. */
  raw?: boolean;
  /** How long the gateway may stay silent (30 s); longer for an answer that takes work, like audit verify. */
  timeoutMs?: number;
}

export function call<T = Record<string, unknown>>(target: Target, method: string, path: string, options: CallOptions = {}): Promise<T> {
  const url = new URL(path, target.url);
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const headers = requestHeaders(options.token, 'application/json');
  if (payload) headers['content-type'] = 'application/json';
  const timeout = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ca: target.ca, timeout }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        let body: Record<string, unknown> = {};
        try {
          body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        } catch {
          if (status < 400 && options.raw) return resolve(text as T);
          return reject(notJson(status, target));
        }
        if (status >= 400) return reject(apiError(status, body, res.headers['retry-after']));
        resolve(body as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeout / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new ConnectionError(connectionHint(err, target))));
    req.end(payload);
  });
}

/**
 * GET a body that arrives over time (a job's logs, possibly followed until the job ends) and hand
 * each chunk to `sink` as it comes. Resolves when the gateway ends the body; rejects with the same
 * ApiError as `call` when it answers an error. Only the wait for the answer times out: a followed
 * log may be quiet for as long as the job is.
 */
export function stream(target: Target, path: string, options: { token?: string; sink: (chunk: Buffer) => Promise<void> | void }): Promise<void> {
  const headers = requestHeaders(options.token, 'text/plain, application/json');
  let sinkError: unknown;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, target.url), { method: 'GET', headers, ca: target.ca, timeout: 30_000 }, (res) => {
      req.setTimeout(0);
      const status = res.statusCode ?? 0;
      if (status >= 400) return void errorBody(res, status, target).then(reject, reject);
      res.on('data', (chunk: Buffer) => {
        const pending = options.sink(chunk);
        // Back-pressure: a slow reader (a pipe into less) slows the download instead of filling memory.
        if (pending) {
          res.pause();
          pending.then(
            () => res.resume(),
            (err: unknown) => {
              sinkError = err;
              req.destroy();
            },
          );
        }
      });
      res.on('end', () => resolve());
      res.on('error', (err) => reject(sinkError ?? new ConnectionError(`the connection to ${target.url} ended early (${err.message})`)));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(sinkError ?? new ConnectionError(connectionHint(err, target))));
    req.end();
  });
}

function requestHeaders(token: string | undefined, accept: string): Record<string, string> {
  const headers: Record<string, string> = { accept };
  if (token) headers.authorization = `Bearer ${token}`;
  return headers;
}

function errorBody(res: IncomingMessage, status: number, target: Target): Promise<ApiError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(apiError(status, text ? (JSON.parse(text) as Record<string, unknown>) : {}, res.headers['retry-after']));
      } catch {
        resolve(notJson(status, target));
      }
    });
  });
}

/** The gateway's `{error, message, ...details}` as an ApiError that callers branch on by code. */
function apiError(status: number, body: Record<string, unknown>, retryAfter?: string): ApiError {
  const code = typeof body.error === 'string' ? body.error : `http_${status}`;
  // Only delta-seconds: the gateway never sends an HTTP date, and a clock-skewed date would mislead.
  const retryAfterS = retryAfter !== undefined && /^\d{1,6}$/.test(retryAfter.trim()) ? Number(retryAfter.trim()) : undefined;
  return new ApiError(status, code, typeof body.message === 'string' ? body.message : `HTTP ${status}`, body, retryAfterS);
}

const notJson = (status: number, target: Target) => new ApiError(status, 'bad_response', `the gateway at ${target.url} answered ${status} with something that is not JSON`, {});

function connectionHint(err: NodeJS.ErrnoException, target: Target): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return `cannot reach the gateway at ${target.url} (connection refused): is it running? (npm start), or pass --url / GATEHOUSE_URL`;
  if (code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY') {
    const by = target.caFile ? ` by ${target.caFile} (${target.caSource ?? '--ca'})` : '';
    const fix = target.context !== undefined ? `gatehouse config set-context ${target.context} --ca FILE` : 'pass --ca certs/ca.crt (or GATEHOUSE_CA)';
    return `the gateway's certificate at ${target.url} is not trusted${by}: ${fix}`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the gateway's certificate does not name ${new URL(target.url).hostname}: add it to server.hostnames`;
  return `cannot reach the gateway at ${target.url}: ${err.message}`;
}
