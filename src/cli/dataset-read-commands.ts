// `gatehouse get NAME` and `gatehouse preview NAME`: a dataset read through the gateway, under the
// same policy, labels and audit trail as a job's input.
//
// get writes each partition as DIR/part-NNNNN.<format>, through part-NNNNN.<format>.partial, which an
// interrupted run leaves behind; the next run continues it with Range (and If-Range, so a partial
// of another version of the dataset is never completed with this one's bytes: DIR/.gatehouse-get.json
// names the dataset and version the partials belong to). A complete partition is not fetched again.
import { structured } from './output.js';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { UsageError } from './fail.js';
import { ApiError, ConnectionError, call, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { ByteProgress } from './byte-progress.js';
import { printLine, visible } from './safe-text.js';
import { formatBytes, table } from './table.js';

interface Detail {
  name: string;
  format: 'csv' | 'jsonl';
  columns: string[];
  partitions: { index: number; rows: number; bytes: number }[];
  etag: string;
}

/** The API path of a dataset: each part of namespace/name encoded on its own. */
export const datasetPath = (name: string) => `/v1/datasets/${name.split('/').map(encodeURIComponent).join('/')}`;

/** "0,2-3" → [0, 2, 3], each below `count`. */
export function partitionList(spec: string | undefined, count: number): number[] {
  if (spec === undefined) return [...Array(count).keys()];
  const out = new Set<number>();
  for (const item of spec.split(',').map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (m === null) throw new UsageError(`--partitions: "${item}" is not N or N-M (such as 0,2-3)`);
    const [from, to] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (to < from) throw new UsageError(`--partitions: ${item} counts down`);
    if (to >= count) throw new UsageError(`--partitions: the dataset has ${count} partition(s), numbered 0 to ${count - 1}`);
    for (let i = from; i <= to; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

const STATE_FILE = '.gatehouse-get.json';

export async function get(target: Target, name: string | undefined, o: { output?: string | undefined; partitions?: string | undefined; json: boolean }): Promise<number> {
  if (name === undefined) throw new UsageError('which dataset? gatehouse get NAME (gatehouse datasets lists yours)');
  const token = await accessToken(target);
  const detail = await call<Detail>(target, 'GET', datasetPath(name), { token });
  const wanted = partitionList(o.partitions, detail.partitions.length);
  const dir = resolve(o.output ?? name);
  mkdirSync(dir, { recursive: true });
  // Partials of another dataset or version are not continued.
  const state = join(dir, STATE_FILE);
  const before = readState(state);
  const sameVersion = before.name === name && before.etag === detail.etag;
  writeFileSync(state, `${JSON.stringify({ name, etag: detail.etag })}\n`);

  const total = wanted.reduce((n, i) => n + detail.partitions[i]!.bytes, 0);
  const progress = new ByteProgress(total);
  let fetched = 0;
  for (const i of wanted) {
    const { bytes } = detail.partitions[i]!;
    const file = join(dir, `part-${String(i).padStart(5, '0')}.${detail.format}`);
    const partial = `${file}.partial`;
    if (!sameVersion) rmSync(partial, { force: true });
    if (sameVersion && existsSync(file) && statSync(file).size === bytes) {
      progress.add(bytes);
      continue;
    }
    const have = existsSync(partial) ? statSync(partial).size : 0;
    if (have === bytes && bytes > 0) {
      renameSync(partial, file); // complete, interrupted before its rename
      progress.add(bytes);
      continue;
    }
    const got = await download(target, `${datasetPath(name)}/partitions/${i}`, partial, { token, from: have < bytes ? have : 0, etag: detail.etag, progress });
    fetched += got;
    if (statSync(partial).size !== bytes) throw new ConnectionError(`partition ${i} ended at ${statSync(partial).size} of ${bytes} bytes; run the same command again to continue`);
    renameSync(partial, file);
  }
  progress.done();
  const summary = { dataset: name, dir, partitions: wanted, bytes: total, fetched };
  printLine(o.json ? structured(summary) : `${visible(name)}: ${wanted.length} partition(s), ${formatBytes(total)} in ${visible(dir)}${fetched < total ? ` (${formatBytes(fetched)} fetched now)` : ''}`);
  return 0;
}

function readState(file: string): { name?: string; etag?: string } {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { name?: string; etag?: string };
  } catch {
    return {}; // none, or damaged: nothing is continued
  }
}

/** GETs a partition into `file` from byte `from` (continuing a partial one); resolves with the bytes received. */
function download(target: Target, path: string, file: string, o: { token: string; from: number; etag: string; progress: ByteProgress }): Promise<number> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token}`, accept: '*/*' };
  if (o.from > 0) Object.assign(headers, { range: `bytes=${o.from}-`, 'if-range': `"${o.etag}"` });
  return new Promise((done, fail) => {
    const req = httpsRequest(new URL(path, target.url), { method: 'GET', headers, ca: target.ca, timeout: 30_000 }, (res) => {
      req.setTimeout(0);
      const status = res.statusCode ?? 0;
      if (status >= 400) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            // said by status below
          }
          fail(new ApiError(status, typeof body.error === 'string' ? body.error : `http_${status}`, typeof body.message === 'string' ? body.message : `HTTP ${status}`, body));
        });
        return;
      }
      // 206 continues the partial; 200 (no range, or another version) starts it over.
      const append = status === 206;
      if (append) o.progress.add(o.from);
      const out = createWriteStream(file, { flags: append ? 'a' : 'w', mode: 0o600 });
      let received = 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        o.progress.add(c.length);
      });
      res.pipe(out); // backpressure: a slow disk slows the download
      res.on('error', (err) => out.destroy(err));
      out.on('finish', () => done(received));
      out.on('error', (err) => fail(new ConnectionError(`the download stopped (${err.message}); run the same command again to continue`)));
      res.on('aborted', () => out.destroy(new Error('the connection ended early')));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
    req.on('error', (err) => fail(new ConnectionError(`cannot reach the gateway at ${target.url}: ${err.message}`)));
    req.end();
  });
}


export async function preview(target: Target, name: string | undefined, o: { rows?: string | undefined; partition?: string | undefined; json: boolean }): Promise<number> {
  if (name === undefined) throw new UsageError('which dataset? gatehouse preview NAME [--rows N] [--partition N]');
  const rows = o.rows === undefined ? 10 : Number(o.rows);
  if (!Number.isInteger(rows) || rows < 1 || rows > 1000) throw new UsageError('--rows: a whole number from 1 to 1000');
  const partition = o.partition === undefined ? 0 : Number(o.partition);
  if (!Number.isInteger(partition) || partition < 0) throw new UsageError('--partition: a partition number, from 0');
  const answer = await call<{ columns: string[]; rows: Record<string, unknown>[] }>(target, 'GET', `${datasetPath(name)}/partitions/${partition}?preview=${rows}`, { token: await accessToken(target) });
  if (o.json) {
    printLine(structured(answer));
    return 0;
  }
  // The manifest's columns, then any other key a JSON line has.
  const columns = [...new Set([...answer.columns, ...answer.rows.flatMap((r) => Object.keys(r))])];
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
  printLine(table(columns, answer.rows.map((r) => columns.map((c) => cell(r[c])))));
  if (answer.rows.length === 0) printLine(`(partition ${partition} of ${visible(name)} has no rows)`);
  return 0;
}
