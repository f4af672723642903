// `gatehouse audit query | export | verify`: the auditor's verbs over GET /v1/audit, /v1/audit/export
// and /v1/audit/verify. Filters go to the gateway as given (it resolves ages like 7d on its clock);
// what can be checked here is, so a typo sends nothing.
import { once } from 'node:events';
import { createWriteStream, existsSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { type AuditEvent, publicKeyOfJwk, verifyArchive } from '../audit/index.js';
import { eventLines, headerLine, type Layout, layoutFor, RecordCounter, renderVerify, type VerifyReport } from './audit-view.js';
import { listChains, retireChain } from './audit-chains.js';
import { ApiError, call, stream, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { UsageError } from './fail.js';
import { rotateKey, verifyWithWitness } from './audit-local.js';
import type { Config } from '../config/index.js';
import { currentFormat, structured } from './output.js';
import { printLine, printNote, safeJson, VisibleStream } from './safe-text.js';

export interface AuditOptions {
  user?: string | undefined;
  group?: string | undefined;
  action?: string | undefined;
  object?: string | undefined;
  decision?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  requestId?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
  all: boolean;
  json: boolean;
  format?: string | undefined;
  output?: string | undefined;
  /** verify: a retention archive to check locally instead of the live trail. */
  file?: string | undefined;
  /** verify: a witness file to check the trail on this host against (audit-local.ts). */
  witness?: string | undefined;
  /** verify --witness: a copy of audit.dir instead of the configured one. */
  dir?: string | undefined;
  /** retire: why (kept with the chain and in the trail). */
  reason?: string | undefined;
  /** The configuration, for the verbs that work on this host's files. */
  config?: () => Config;
}

/** Each filter's query parameter and the flag that sets it. */
const FILTERS = [
  ['user', 'user', '--user'],
  ['group', 'group', '--group'],
  ['action', 'action', '--action'],
  ['object', 'object', '--object'],
  ['decision', 'decision', '--decision'],
  ['since', 'since', '--since'],
  ['until', 'until', '--until'],
  ['requestId', 'request_id', '--request-id'],
] as const;
const FLAG_OF: Record<string, string> = { ...Object.fromEntries(FILTERS.map(([, param, flag]) => [param, flag])), limit: '--limit', cursor: '--cursor', format: '--format' };

const out = printLine;
/** Verify reads the whole trail before it answers: give it minutes, not the usual 30 s. */
const VERIFY_TIMEOUT_MS = 15 * 60_000;

export async function auditCommand(sub: string | undefined, args: string[], target: () => Target, options: AuditOptions): Promise<number> {
  if (sub === 'retire') return retireChain(target(), args, options.reason, options.json);
  if (args.length > 0) throw new UsageError(`audit ${sub} takes no argument; got ${args.join(' ')} (filters are flags: --user, --action, ...)`);
  switch (sub) {
    case 'query':
      return query(target(), options);
    case 'export':
      return exportTrail(target(), options);
    case 'verify':
      if (options.witness !== undefined) {
        if (options.file !== undefined) throw new UsageError('audit verify takes --witness or --file, not both');
        return verifyWithWitness(target, options.config!, { witness: options.witness, dir: options.dir, json: options.json });
      }
      return verify(target(), options);
    case 'rotate-key':
      return rotateKey(options.config!, options.json);
    case 'chains':
      return listChains(target(), options.json);
    default:
      throw new UsageError(`audit ${sub ?? ''}: choose query, export, verify, chains, retire or rotate-key`.replace('audit :', 'audit:'));
  }
}

/** The filters as query parameters, after the checks that need no gateway. */
function filterParams(o: AuditOptions): URLSearchParams {
  if (o.decision !== undefined && !['allow', 'deny', 'error'].includes(o.decision)) throw new UsageError(`--decision ${o.decision}: choose allow, deny or error`);
  const params = new URLSearchParams();
  for (const [key, param, flag] of FILTERS) {
    const value = o[key];
    if (value === undefined) continue;
    if (value === '') throw new UsageError(`${flag} is empty; leave it out to match every value`);
    params.set(param, value);
  }
  return params;
}

function refuse(o: AuditOptions, verb: string, flags: (keyof AuditOptions)[], why: string): void {
  const given = flags.filter((f) => o[f] !== undefined && o[f] !== false);
  if (given.length > 0) throw new UsageError(`audit ${verb} does not take ${given.map((f) => (f === 'requestId' ? '--request-id' : `--${f}`)).join(', ')}: ${why}`);
}

interface Page {
  events: AuditEvent[];
  next_cursor: string | null;
}

async function query(target: Target, o: AuditOptions): Promise<number> {
  refuse(o, 'query', ['format'], 'that is for audit export');
  // A YAML sequence can be written a page at a time too: each page's items continue the one list.
  const yaml = currentFormat() === 'yaml';
  const params = filterParams(o);
  if (o.limit !== undefined) {
    if (!/^[0-9]+$/.test(o.limit) || Number(o.limit) < 1 || Number(o.limit) > 1000) throw new UsageError(`--limit ${o.limit}: a whole number from 1 to 1000`);
    params.set('limit', o.limit);
  }
  let cursor = o.cursor;
  let layout: Layout | undefined;
  let count = 0;
  if (o.json && !yaml) process.stdout.write('[');
  for (;;) {
    if (cursor !== undefined) params.set('cursor', cursor);
    const page = await auditCall<Page>(target, `/v1/audit?${params}`);
    // Each page is printed as it comes, so --all over many pages holds one page at a time.
    if (yaml) {
      if (page.events.length > 0) out(structured(page.events));
    } else if (o.json) process.stdout.write(page.events.map((e, i) => `${count + i > 0 ? ',' : ''}${safeJson(e)}`).join(''));
    else if (page.events.length > 0) {
      if (!layout) {
        layout = layoutFor(page.events, process.stdout.isTTY ? process.stdout.columns : undefined);
        out(headerLine(layout));
      }
      out(eventLines(page.events, layout).join('\n'));
    }
    count += page.events.length;
    if (page.next_cursor === null) break;
    if (!o.all) {
      // With --json the hint goes to stderr: stdout stays one JSON array.
      const hint = `more: run with --all or --cursor ${page.next_cursor}`;
      if (o.json) printNote(hint);
      else out(hint);
      break;
    }
    cursor = page.next_cursor;
  }
  if (yaml) {
    if (count === 0) out('[]');
  } else if (o.json) out(']');
  else if (count === 0) out('no events match');
  return 0;
}

async function exportTrail(target: Target, o: AuditOptions): Promise<number> {
  refuse(o, 'export', ['limit', 'cursor', 'all'], 'an export takes every match');
  // Without --format, an --output file named *.csv asks for CSV.
  const format = o.format ?? (o.output?.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl');
  if (format !== 'csv' && format !== 'jsonl') throw new UsageError(`--format ${format}: choose jsonl or csv`);
  const params = filterParams(o);
  params.set('format', format);
  const sink = o.output === undefined ? stdoutSink() : fileSink(o.output);
  const counter = new RecordCounter(format);
  const progress = exportProgress(counter, o.output);
  try {
    await stream(target, `/v1/audit/export?${params}`, {
      token: await accessToken(target),
      sink: (chunk) => {
        counter.add(chunk);
        progress.tick();
        return sink.write(chunk);
      },
    });
    await sink.finish();
  } catch (err) {
    progress.stop(false);
    sink.abort();
    throw auditError(err);
  }
  progress.stop(true);
  return 0;
}

async function verify(target: Target, o: AuditOptions): Promise<number> {
  if (o.file !== undefined) return verifyFile(target, o.file, o.json);
  refuse(o, 'verify', ['user', 'group', 'action', 'object', 'decision', 'since', 'until', 'requestId', 'limit', 'cursor', 'all', 'format', 'output'], 'it checks the whole trail');
  const report = await auditCall<VerifyReport>(target, '/v1/audit/verify', VERIFY_TIMEOUT_MS);
  out(o.json ? structured(report) : renderVerify(report));
  return report.ok ? 0 : 1;
}

/**
 * An archive verifies on its own. Its signatures are checked with the gateway's published audit
 * key when the gateway answers; otherwise with the key the archive carries, and the report says so.
 */
async function verifyFile(target: Target, file: string, json: boolean): Promise<number> {
  if (!existsSync(file)) throw new UsageError(`--file: no such file ${file}`);
  let trusted: Map<string, KeyObject> | undefined;
  try {
    const jwks = await call<{ keys: { kid: string; kty: string; crv: string; x: string }[] }>(target, 'GET', '/.well-known/jwks.json', {});
    trusted = new Map(jwks.keys.filter((k) => k.kid.startsWith('audit-')).map((k) => [k.kid, publicKeyOfJwk(k)]));
  } catch {
    trusted = undefined; // offline: the archive's own key, reported as such
  }
  const report = await verifyArchive(file, trusted);
  if (json) out(structured(report));
  else {
    out(renderVerify(report));
    out(report.key_source === 'trusted' ? `signatures checked with the gateway's key ${report.kid}` : `signatures checked with the key the archive carries (${report.kid}): compare it with the gateway's /.well-known/jwks.json`);
  }
  return report.ok ? 0 : 1;
}

async function auditCall<T>(target: Target, path: string, timeoutMs?: number): Promise<T> {
  try {
    return await call<T>(target, 'GET', path, { token: await accessToken(target), timeoutMs });
  } catch (err) {
    throw auditError(err);
  }
}

/** The gateway's refusals in the auditor's words: a bad filter names its flag (and is a usage error). */
export function auditError(err: unknown): unknown {
  if (!(err instanceof ApiError)) return err;
  if (err.code === 'invalid_request' && typeof err.body.field === 'string' && err.body.field.startsWith('query.')) {
    const param = err.body.field.slice('query.'.length);
    const flag = FLAG_OF[param] ?? param;
    // "since: ..." from the filter checks, "query.limit must be ..." from the schema.
    const rest = err.message.startsWith(`${param}: `) ? `: ${err.message.slice(param.length + 2)}` : err.message.startsWith(err.body.field) ? err.message.slice(err.body.field.length) : `: ${err.message}`;
    return new UsageError(`${flag}${rest}`);
  }
  if (err.code === 'forbidden') return new ApiError(err.status, err.code, `not allowed to read the audit trail: ${err.message}`, err.body);
  return err;
}

interface Sink {
  write(chunk: Buffer): Promise<void> | void;
  finish(): Promise<void>;
  abort(): void;
}

/**
 * Standard output. A pipe or a redirect gets the gateway's bytes unchanged (an export is evidence);
 * a terminal gets them with control characters escaped as JSON does (`\u001b`), so what someone
 * typed into an event is shown and never acted on, and a JSON line still parses.
 */
function stdoutSink(): Sink {
  // A reader that went away (`| head`) ends the command quietly, as cat would.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));
  const text = process.stdout.isTTY ? new VisibleStream() : undefined;
  const write = (data: Buffer | string) => (data.length === 0 || process.stdout.write(data) ? undefined : once(process.stdout, 'drain').then(() => undefined));
  return {
    write: (chunk) => write(text ? text.push(chunk) : chunk),
    finish: async () => {
      if (text) await write(text.end());
    },
    abort: () => {},
  };
}

/**
 * A regular file is written as FILE.partial and renamed when the export is complete, so a broken
 * export never leaves a file that looks whole. Anything else (a FIFO, /dev/stdout) is written as is.
 */
function fileSink(file: string): Sink {
  const direct = existsSync(file) && !statSync(file).isFile();
  const path = direct ? file : `${file}.partial`;
  const fd = openSync(path, 'w', 0o600); // opened now: a bad path fails before anything is fetched
  const stream = createWriteStream(path, { fd }); // owns the fd from here, and closes it
  let failed: Error | undefined;
  stream.on('error', (err) => (failed = err));
  return {
    write(chunk) {
      if (failed) throw failed;
      if (!stream.write(chunk)) return once(stream, 'drain').then(() => undefined);
    },
    async finish() {
      await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
      if (failed) throw failed;
      if (!direct) renameSync(path, file);
    },
    abort() {
      stream.destroy();
      if (!direct) rmSync(path, { force: true });
    },
  };
}

/** "12,345 events written" on a terminal's stderr, at most a few times a second; nothing otherwise. */
function exportProgress(counter: RecordCounter, output: string | undefined): { tick(): void; stop(done: boolean): void } {
  if (!process.stderr.isTTY) return { tick() {}, stop() {} };
  let shown = 0;
  const show = () => process.stderr.write(`\r${counter.count.toLocaleString('en-US')} events written${output ? ` to ${output}` : ''}\u001b[K`);
  return {
    tick() {
      if (Date.now() - shown < 200) return;
      shown = Date.now();
      show();
    },
    stop(done) {
      if (done) {
        show();
        process.stderr.write('\n');
      } else process.stderr.write('\r\u001b[K'); // the error line says what happened instead
    },
  };
}
