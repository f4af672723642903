// `gatehouse put DIR NAME` and `gatehouse rm NAME`: a person's own data into the catalog, and out of
// it, under the same policy and audit trail as a job's output. put uploads DIR/*.csv in name order
// as partitions 0, 1, … (each streamed from disk, a progress line on a terminal), then commits them
// in one step; if anything fails, nothing is visible and the staged partitions are dropped.
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { ApiError, call, ConnectionError, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { datasetPath } from './dataset-read-commands.js';
import { UsageError } from './fail.js';
import { ByteProgress } from './byte-progress.js';
import { structured } from './output.js';
import { printLine, visible } from './safe-text.js';
import { formatBytes } from './table.js';

const LABEL = /^[a-z0-9][a-z0-9_-]*$/;

export async function put(target: Target, dir: string | undefined, name: string | undefined, o: { labels?: string | undefined; json: boolean }): Promise<number> {
  if (dir === undefined || name === undefined) throw new UsageError('gatehouse put DIR NAME: the folder of .csv partitions, and the dataset to create');
  const labels = o.labels === undefined ? [] : o.labels.split(',').map((l) => l.trim()).filter((l) => l !== '');
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined) throw new UsageError(`--labels: "${bad}" is not a label (lower-case letters, digits, _ and -)`);
  const folder = resolve(dir);
  let files: string[];
  try {
    files = readdirSync(folder).filter((f) => f.endsWith('.csv') && statSync(join(folder, f)).isFile()).sort();
  } catch (err) {
    throw new UsageError(`cannot read ${dir}: ${(err as Error).message}`);
  }
  if (files.length === 0) throw new UsageError(`${dir} holds no .csv files: each one becomes a partition, in name order`);
  const token = await accessToken(target);
  const sizes = files.map((f) => statSync(join(folder, f)).size);
  const progress = new ByteProgress(sizes.reduce((a, b) => a + b, 0));
  try {
    for (const [n, file] of files.entries()) await upload(target, `${datasetPath(name)}/partitions/${n}`, join(folder, file), sizes[n]!, { token, progress });
    progress.done();
    const done = await call<{ name: string; owner: string; labels: string[]; columns: string[]; partitions: number; rows: number; bytes: number; replaced: boolean }>(target, 'POST', `${datasetPath(name)}/commit`, { token, body: { partitions: files.length, ...(labels.length > 0 ? { labels } : {}) }, timeoutMs: 120_000 });
    printLine(o.json ? structured(done) : `${visible(name)}: ${done.partitions} partition(s), ${done.rows.toLocaleString('en-US')} rows, ${formatBytes(done.bytes)}, columns ${visible(done.columns.join(','))}${done.labels.length > 0 ? `, labels ${visible(done.labels.join(','))}` : ''}${done.replaced ? ' (replaced)' : ''}`);
    return 0;
  } catch (err) {
    progress.stop();
    // Nothing was committed: drop what was staged, so it counts no more against the storage quota.
    await call(target, 'DELETE', `/v1/uploads/${name.split('/').map(encodeURIComponent).join('/')}`, { token }).catch(() => undefined);
    throw err;
  }
}

export async function rm(target: Target, name: string | undefined, json: boolean): Promise<number> {
  if (name === undefined) throw new UsageError('which dataset? gatehouse rm NAME');
  const done = await call<{ name: string; bytes: number }>(target, 'DELETE', datasetPath(name), { token: await accessToken(target) });
  printLine(json ? structured(done) : `removed ${visible(name)} (${formatBytes(done.bytes)})`);
  return 0;
}

/** One partition PUT, streamed from the file (backpressure: the network paces the disk). */
function upload(target: Target, path: string, file: string, size: number, o: { token: string; progress: ByteProgress }): Promise<void> {
  return new Promise((done, fail) => {
    const req = httpsRequest(new URL(path, target.url), { method: 'PUT', headers: { authorization: `Bearer ${o.token}`, 'content-type': 'text/csv', 'content-length': size }, ca: target.ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status === 200) return done();
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch {
          // said by status below
        }
        fail(new ApiError(status, typeof body.error === 'string' ? body.error : `http_${status}`, typeof body.message === 'string' ? body.message : `HTTP ${status}`, body));
      });
    });
    req.on('error', (err) => fail(new ConnectionError(`the upload of ${file} stopped: ${err.message}`)));
    const source = createReadStream(file);
    source.on('data', (c) => o.progress.add(c.length));
    source.on('error', (err) => req.destroy(err));
    source.pipe(req);
  });
}

