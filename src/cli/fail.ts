// Turns any start-up failure into one line for a person: known problems by their message,
// the unknown ones with a pointer to the log rather than a stack trace.
import { ConfigError } from '../config/lean.js';
import { TlsFileError } from '../wire/lean.js';
import { visible, visibleLines } from './safe-text.js';

const KNOWN = new Set(['ConfigError', 'TlsFileError', 'PolicyError', 'StoreError', 'UsageError', 'ApiError', 'LoginError', 'ConnectionError']);

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function describe(err: unknown): string {
  if (err instanceof ConfigError) return `config error: ${err.message}`;
  if (err instanceof TlsFileError) return `certificate error: ${err.message}`;
  if (err instanceof Error) {
    if (KNOWN.has(err.name)) return err.message;
    const code = (err as NodeJS.ErrnoException).code;
    if (code?.startsWith('ERR_PARSE_ARGS')) return `${err.message.split('. To specify')[0]}; run gatehouse --help`;
    if (code === 'EADDRINUSE') return `address in use: ${(err as NodeJS.ErrnoException & { address?: string; port?: number }).address}:${(err as { port?: number }).port} (another Gatehouse running? change server.port / engine.port)`;
    if (code === 'EACCES') return `permission denied: ${err.message}`;
    return `${err.name}: ${err.message}`;
  }
  return String(err);
}

/**
 * Prints the reason on one line and exits non-zero. Set GATEHOUSE_DEBUG=1 for the stack. The
 * gateway's messages can quote what someone typed: their control characters are shown escaped, and
 * an ApiError's message stays on its one line.
 */
export function fail(command: string, err: unknown, code = 1): never {
  const reason = describe(err);
  process.stderr.write(`gatehouse${command ? ` ${command}` : ''}: ${err instanceof Error && err.name === 'ApiError' ? visible(reason) : visibleLines(reason)}\n`);
  if (process.env.GATEHOUSE_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${visibleLines(err.stack)}\n`);
  process.exit(code);
}
