// A person's upload (PUT /v1/datasets/:name/partitions/:n, then POST …/commit through the gateway):
// partitions are staged in `<data root>/.uploads/<user>/<name>/`, hidden (a `.` folder is never a
// dataset, never listed, never read), and become a dataset only at commit, in one rename with its
// manifest (src/catalog's commitOutput: owner-only replace, nothing followed through a link). An
// upload cut off mid-way leaves at most a staged file the next PUT replaces or DELETE /v1/uploads
// drops; a partition being written is a `.partial` file until it is whole.
//
// Link-safe: every folder on the way is made by the engine, checked with lstat to be a real folder
// of its own (a link planted there is refused, never followed), and files are created with
// O_CREAT|O_EXCL|O_NOFOLLOW, then renamed into their name (a rename replaces a link, never writes
// through it). Nobody but the engine writes under .uploads (0700, the engine's).
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { commitOutput, CsvCounter, DatasetError, type DatasetManifest, openRoot, PARTITION_PREFIX, partitionFile, REMOVING_PREFIX } from '../../catalog/index.js';
import { datasetNameProblem } from '../../wire/index.js';
import { inTurn } from './per-user-turns.js';

export const UPLOADS_DIR = '.uploads';

/** A byte count that would cross the caller's storage allowance. */
export class AllowanceError extends Error {
  override readonly name = 'AllowanceError';
  constructor(
    message: string,
    /** What the person's staging held besides this partition. */
    readonly staged: number,
    /** What this partition came to (or declared) when it was stopped. */
    readonly written: number,
  ) {
    super(message);
  }
}

/** The problem with an upload the person can fix (400): a partition missing, headers that differ. */
export class UploadError extends Error {
  override readonly name = 'UploadError';
}

/** One path segment for a user or dataset name: nothing in it can climb, hide or nest. */
function segment(text: string): string {
  return encodeURIComponent(text).replace(/\./g, '%2E');
}

function checkName(rootDir: string, name: string): void {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new DatasetError('invalid_name', problem, resolve(rootDir));
}

/** A folder the engine made and alone writes; created if missing; a link or anything else there is refused. */
async function privateDir(path: string, create: boolean): Promise<boolean> {
  if (create) {
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (st === null) return false;
  if (!st.isDirectory()) throw new DatasetError('outside_root', 'is not a real folder (a link?); uploads are staged only in the engine’s own folders', path);
  const me = process.getuid?.() ?? 0;
  if (st.uid !== me) throw new DatasetError('outside_root', `is owned by uid ${st.uid}, not the engine; nothing is staged there`, path);
  if ((st.mode & 0o777) !== 0o700) await chmod(path, 0o700); // checked a real folder just above; only the engine writes its parent
  return true;
}

/** The staging folder of `user`'s upload of `name` (made, with its parents, when `create`); null when there is none. */
async function stagingDir(rootDir: string, user: string, name: string, create: boolean): Promise<{ root: string; dir: string } | null> {
  const root = await openRoot(rootDir);
  let dir = root.path;
  for (const part of [UPLOADS_DIR, segment(user), segment(name)]) {
    dir = join(dir, part);
    if (!(await privateDir(dir, create))) return null;
  }
  return { root: root.path, dir };
}

/** What the user's uploads take (every file, partials too, in blocks; each folder), but `except` (a file about to be replaced). */
export async function stagedBytes(rootDir: string, user: string, except?: string): Promise<number> {
  const root = await openRoot(rootDir);
  const mine = join(root.path, UPLOADS_DIR, segment(user));
  if (!(await privateDir(join(root.path, UPLOADS_DIR), false)) || !(await privateDir(mine, false))) return 0;
  let total = 0;
  for (const upload of await readdir(mine)) {
    const dir = join(mine, upload);
    if (!(await lstat(dir)).isDirectory()) continue;
    for (const file of await readdir(dir)) {
      const path = join(dir, file);
      if (path === except) continue;
      const st = await lstat(path).catch(() => null);
      if (st?.isFile()) total += Math.max(st.size, st.blocks * 512, BLOCK);
    }
    total += BLOCK; // the folder itself
  }
  return total;
}

/**
 * What a staged file or folder counts for at least: the block it takes (an empty one, its inode).
 * Counting bytes alone, thousands of one-byte partitions under names of their own would fill the
 * data root's disk and inodes while the quota saw a few kilobytes (review 29).
 */
const BLOCK = 4096;
const blocksOf = (bytes: number) => Math.max(BLOCK, Math.ceil(bytes / BLOCK) * BLOCK);

/**
 * Writes partition `n` of `user`'s upload of `name` from `body`, stopping (and removing what was
 * written) as soon as it would take the user's staging past `allowance` bytes. `declared`: the
 * request's Content-Length, refused before a byte is written when it cannot fit.
 */
export async function stagePartition(rootDir: string, o: { user: string; name: string; n: number; allowance: number; declared?: number | undefined; body: Readable; idleMs: number }): Promise<{ bytes: number }> {
  checkName(rootDir, o.name);
  // One partition at a time per user: each is checked against the staging the one before left.
  return inTurn(o.user, () => stageOne(rootDir, o));
}

async function stageOne(rootDir: string, o: { user: string; name: string; n: number; allowance: number; declared?: number | undefined; body: Readable; idleMs: number }): Promise<{ bytes: number }> {
  // Gone while it waited its turn: its 'close' came before anyone listened for it.
  if (o.body.destroyed) throw new UploadError('the upload was interrupted before its end');
  const staging = await stagingDir(rootDir, o.user, o.name, true);
  if (staging === null) throw new DatasetError('not_found', 'the staging folder disappeared', rootDir);
  const target = join(staging.dir, partitionFile(o.n, 'csv'));
  const staged = await stagedBytes(rootDir, o.user, target);
  const room = o.allowance - staged;
  if (blocksOf(o.declared ?? 0) > room) {
    o.body.resume(); // discarded, not left unread: the refusal must reach the caller before the connection closes
    await rmdir(staging.dir).catch(() => undefined); // a name's folder made for nothing (only when empty)
    throw new AllowanceError(o.declared === undefined ? `no room is left (${Math.max(0, room)} bytes)` : `${o.declared} bytes declared, ${Math.max(0, room)} left`, staged, o.declared ?? 0);
  }
  const partial = join(staging.dir, `.${partitionFile(o.n, 'csv')}.${randomUUID()}.partial`);
  const fh = await open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  // Bytes that stop coming would hold this person's turn (inTurn) forever: after idleMs without
  // one, the upload is stopped like a cut one (its partial file removed, the turn given back).
  const idle = () => counted.destroy(new UploadError(`no bytes for ${Math.round(o.idleMs / 1000)} s; the upload was stopped (data.upload_idle_timeout)`));
  const timer = setTimeout(idle, o.idleMs);
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      timer.refresh();
      if (blocksOf(bytes) > room) done(new AllowanceError(`more than ${Math.max(0, room)} bytes sent`, staged, bytes));
      else done(null, chunk);
    },
  });
  // The body is piped, not handed to pipeline: a refusal must not destroy the request (its socket),
  // so the answer (413) still reaches the caller while the rest of the body is discarded.
  const written = pipeline(counted, fh.createWriteStream());
  const cut = () => counted.destroy(new UploadError('the upload was interrupted before its end'));
  o.body.once('error', cut);
  o.body.once('close', () => {
    if (!o.body.readableEnded) cut();
  });
  o.body.pipe(counted);
  try {
    await written.finally(() => clearTimeout(timer));
    await rename(partial, target); // replaces a partition staged before (or a link planted there), never follows it
  } catch (err) {
    o.body.unpipe(counted);
    o.body.resume();
    await fh.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw err;
  }
  return { bytes };
}

/** What a staged partition holds: its header's fields and its rows. */
async function readStaged(path: string, index: number): Promise<{ columns: string[]; rows: number }> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new UploadError(`partition ${index} was not uploaded`);
    if (err.code === 'ELOOP') throw new DatasetError('outside_root', 'is a symbolic link; it is not committed', path);
    throw err;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.nlink !== 1) throw new DatasetError('outside_root', 'is not a plain file of its own; it is not committed', path);
    const counter = new CsvCounter();
    try {
      for await (const chunk of fh.createReadStream({ autoClose: false })) counter.push(chunk as Buffer);
    } catch (err) {
      throw new UploadError(`partition ${index}: ${(err as Error).message}`);
    }
    const columns = counter.header();
    if (columns === null) throw new UploadError(`partition ${index} is empty: a CSV partition starts with its header line`);
    if (!counter.balanced) throw new UploadError(`partition ${index} ends inside a quoted field`);
    return { columns, rows: counter.records - 1 };
  } finally {
    await fh.close();
  }
}

/** Columns a manifest can hold: 1 to 4096 distinct names of 1 to 256 characters. */
function columnsProblem(columns: string[]): string | null {
  if (columns.length > 4096) return `${columns.length} columns; a dataset has at most 4096`;
  const bad = columns.find((c) => c.length < 1 || c.length > 256);
  if (bad !== undefined) return `a column name must have 1 to 256 characters (got ${JSON.stringify(bad.slice(0, 40))})`;
  const twice = columns.find((c, i) => columns.indexOf(c) !== i);
  if (twice !== undefined) return `the column ${JSON.stringify(twice.slice(0, 40))} appears twice`;
  return null;
}

export interface UploadCommit {
  user: string;
  name: string;
  partitions: number;
  labels: string[];
  overwrite: boolean;
  replaces?: { owner: string | null } | undefined;
}

/** Checks the staged partitions (all there, one header) and commits them as dataset `name`, owned by the user. */
export async function commitUpload(rootDir: string, c: UploadCommit): Promise<DatasetManifest> {
  checkName(rootDir, c.name);
  const staging = await stagingDir(rootDir, c.user, c.name, false);
  if (staging === null) throw new UploadError(`nothing is staged for ${c.name}: upload its partitions first`);
  const names = new Set(Array.from({ length: c.partitions }, (_, i) => partitionFile(i, 'csv')));
  const extra = (await readdir(staging.dir)).filter((f) => f.startsWith(PARTITION_PREFIX) && !names.has(f)).sort()[0];
  if (extra !== undefined) throw new UploadError(`${extra} is staged but the commit names ${c.partitions} partition(s); upload again or drop the upload`);
  const rows: number[] = [];
  let columns: string[] | null = null;
  for (let i = 0; i < c.partitions; i++) {
    const found = await readStaged(join(staging.dir, partitionFile(i, 'csv')), i);
    if (columns === null) {
      const problem = columnsProblem(found.columns);
      if (problem !== null) throw new UploadError(`partition 0's header: ${problem}`);
      columns = found.columns;
    } else if (JSON.stringify(found.columns) !== JSON.stringify(columns)) {
      throw new UploadError(`partition ${i}'s header (${found.columns.join(',').slice(0, 200)}) differs from partition 0's (${columns.join(',').slice(0, 200)})`);
    }
    rows.push(found.rows);
  }
  return commitOutput(rootDir, c.name, {
    folder: staging.dir,
    format: 'csv',
    rows,
    fallbackColumns: columns ?? [],
    owner: c.user,
    labels: c.labels,
    producedBy: `upload by ${c.user}`.slice(0, 256),
    overwrite: c.overwrite,
    ...(c.replaces !== undefined ? { replaces: c.replaces } : {}),
    trash: join(staging.root, `${REMOVING_PREFIX}${randomUUID()}`),
  });
}

/** Drops a staged upload; false when there was none. Parked under a hidden name first, then removed (rm unlinks links, never follows them). */
export async function dropUpload(rootDir: string, user: string, name: string): Promise<boolean> {
  checkName(rootDir, name);
  const staging = await stagingDir(rootDir, user, name, false);
  if (staging === null) return false;
  const parked = join(staging.root, `${REMOVING_PREFIX}${randomUUID()}`);
  await rename(staging.dir, parked);
  await rm(parked, { recursive: true, force: true });
  return true;
}
