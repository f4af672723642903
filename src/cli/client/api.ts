// The CLI's HTTP client: HTTPS to the gateway with the CA the user trusts, JSON in and out, and
// the gateway's error body turned into one readable line.
import { request as httpsRequest } from 'node:https';
import { UsageError } from '../fail.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface Target {
  url: string;
  /** PEM of the CA that signed the gateway's certificate; undefined uses the system CAs. */
  ca: string | undefined;
  caFile: string | undefined;
}

export interface CallOptions {
  body?: unknown;
  token?: string;
  /** Return the raw body instead of parsing JSON. */
  raw?: boolean;
}

export function call<T = Record<string, unknown>>(target: Target, method: string, path: string, options: CallOptions = {}): Promise<T> {
  const url = new URL(path, target.url);
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (payload) headers['content-type'] = 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ca: target.ca, timeout: 30_000 }, (res) => {
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
          return reject(new ApiError(status, 'bad_response', `the gateway at ${target.url} answered ${status} with something that is not JSON`, {}));
        }
        if (status >= 400) {
          const code = typeof body.error === 'string' ? body.error : `http_${status}`;
          return reject(new ApiError(status, code, typeof body.message === 'string' ? body.message : `HTTP ${status}`, body));
        }
        resolve(body as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new UsageError(connectionHint(err, target))));
    req.end(payload);
  });
}

function connectionHint(err: NodeJS.ErrnoException, target: Target): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return `cannot reach the gateway at ${target.url} (connection refused): is it running? (npm start), or pass --url / GATEHOUSE_URL`;
  if (code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY') {
    return `the gateway's certificate at ${target.url} is not trusted${target.caFile ? ` by ${target.caFile}` : ''}: pass --ca certs/ca.crt (or GATEHOUSE_CA)`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the gateway's certificate does not name ${new URL(target.url).hostname}: add it to server.hostnames`;
  return `cannot reach the gateway at ${target.url}: ${err.message}`;
}
