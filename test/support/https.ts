// A small HTTPS client for tests: real TLS, our CA, optional client certificate.
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string;
  key?: string;
  headers?: Record<string, string>;
  method?: string;
  body?: string;
  /** Idle time before the request is abandoned (default 10 s). */
  timeoutMs?: number;
}

export function fetchTls(url: string, options: TlsOptions = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        headers: options.headers,
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out: ${url}`)));
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export type { TLSSocket };
