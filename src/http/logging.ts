// Logger options shared by the gateway and the engine: JSON lines, secrets redacted.
import type { LoggerOptions } from 'pino';

/** Log paths whose values are replaced, wherever a request, response or error object carries them. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  // A Slurm token the gateway minted for a person (src/proxy/slurm), wherever request headers are logged.
  'headers["x-slurm-user-token"]',
  'headers["X-SLURM-USER-TOKEN"]',
  'req.headers["x-slurm-user-token"]',
  'req.headers["X-SLURM-USER-TOKEN"]',
  'password',
  '*.password',
  '*.*.password',
  '*.bind_password',
  '*.client_secret',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.device_code',
  '*.private_key',
];

/** Query parameters that carry credentials in OAuth flows; masked before a URL is logged. */
const SECRET_QUERY = new Set(['code', 'token', 'access_token', 'refresh_token', 'id_token', 'password', 'client_secret', 'device_code', 'state']);

export function loggerOptions(service: 'gateway' | 'engine', level: string): LoggerOptions & { stream: NodeJS.WritableStream } {
  return {
    level,
    // process.stdout rather than pino's own fd writer: that one retries forever when stdout is a
    // closed pipe, and the process then never gets to its signal handlers.
    stream: process.stdout,
    base: { service, pid: process.pid },
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // A log line quotes what jobs and people wrote (a job's error, a name): JSON escapes C0 controls
    // but leaves DEL, C1 controls and bidi overrides raw, which a terminal tailing the log may act on.
    hooks: { streamWrite: escapeTerminalControls },
  };
}

/**
 * DEL, C1 controls (U+0080–U+009F), bidi marks, embeddings, overrides and isolates and U+2028/9 as
 * JSON escapes. They can only occur inside JSON strings, so the line stays JSON with the same values.
 */
export function escapeTerminalControls(json: string): string {
  return json.replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function scrubUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const key of [...params.keys()]) {
    if (SECRET_QUERY.has(key.toLowerCase())) params.set(key, '[redacted]');
  }
  return `${url.slice(0, q)}?${params.toString()}`;
}
