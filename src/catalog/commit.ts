// A job's output becomes a dataset in one rename (the engine's jobs, and the gateway's for Slurm jobs): the folder of finished partition files gets its
// manifest and is moved into its name, so a reader sees the whole dataset or none of it.
//
// The engine may be root and the folder was written by a task: nothing here follows a link. Every
// file is read through a descriptor opened with O_NOFOLLOW and checked (a plain file, one link, the
// one listed), and the manifest is created with O_CREAT|O_EXCL|O_NOFOLLOW. The folder itself must be
// one no task can change any more (sealJobOutput moves it out of their reach and takes it over).
//
// Replacing a dataset is its owner's: an overwrite replaces only a dataset whose manifest names the
// output's owner (the job's user), or the one owner an admin's admission ticket names
// (`replaces`). It is decided here, from the manifest read just before the old folder is moved
// away, so a dataset that appeared or changed hands while the job ran is never replaced.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type DatasetFormat, datasetNameProblem } from '../wire/index.js';
import { csvFields } from './csv.js';
import { DatasetError } from './errors.js';
import { type DatasetManifest, MANIFEST_FILE, MANIFEST_MAX_BYTES, parseManifest, partitionFile } from './manifest.js';
import { exists } from './read.js';
import { type DataRoot, openRoot, realOwn } from './root.js';

export interface FinishedOutput {
  /** A folder on the data root's file system holding part-00000.<format> … and nothing else of value. */
  folder: string;
  format: DatasetFormat;
  rows: number[];
  /** Used when the output has no rows to read a header from. */
  fallbackColumns: string[];
  owner: string;
  labels: string[];
  producedBy: string;
  overwrite: boolean;
  /**
   * The admission ticket's claim that an admin may replace a dataset of this owner (null: one
   * nobody owns). Without it an overwrite replaces only a dataset `owner` owns.
   */
  replaces?: { owner: string | null };
  /** Where a replaced dataset is parked until the new one is in place (removed after). */
  trash: string;
  /**
   * The folder was already checked and handed to the engine (sealJobOutput): skip doing it again per
   * file. Either way the folder must be out of every task's reach.
   */
  sealed?: boolean;
  /**
   * With `sealed`: each file's identity and size as the seal checked them (a plain file of one link,
   * in a folder only root may enter since), so the commit does not lstat every partition again.
   */
  sealedFiles?: ReadonlyMap<string, FileIdentity>;
}

export class OutputExistsError extends Error {
  override readonly name: string = 'OutputExistsError';
}

/** The existing dataset is not the job's user's to replace (see replaceRefusal). */
export class ReplaceRefusedError extends OutputExistsError {
  override readonly name = 'ReplaceRefusedError';
}

/** Who asks to replace a dataset: the job's user, and the owner an admin's ticket names, if any. */
export interface ReplaceRight {
  user: string;
  replaces?: { owner: string | null } | undefined;
}

/**
 * Null when `right` may replace dataset `name` whose manifest names `owner`: it is the user's own,
 * or the ticket's claim names exactly that owner (null only when the claim says null). Else why not.
 */
export function replaceRefusal(name: string, owner: string | null, right: ReplaceRight): string | null {
  if (owner !== null && owner === right.user) return null;
  if (right.replaces !== undefined && right.replaces.owner === owner) return null;
  const whose = owner === null ? `${name} has no owner` : `${name} belongs to ${owner}`;
  const claim =
    right.replaces === undefined
      ? 'and the admission ticket names no owner whose dataset an admin may replace'
      : `and the admission ticket lets an admin replace only a dataset ${right.replaces.owner === null ? 'nobody owns' : `of ${right.replaces.owner}`}`;
  return `${whose}, not ${right.user}, ${claim}; the engine replaces only a dataset the job's user owns`;
}

/** What is at a dataset's name: its folder's identity, and its manifest (null: a namespace, no manifest). */
export interface ExistingDataset {
  dev: number;
  ino: number;
  manifest: DatasetManifest | null;
  /** sha256 of the manifest's bytes (null without one): the version a caller decided on, as readableDataset's etag. */
  etag: string | null;
}

/**
 * Reads what is at `name` without following a link: null when nothing is. The folder must be a
 * real folder inside the root, the engine's (or root's) and writable by nobody else, so no task
 * can have planted or swapped anything in it; the manifest is opened through the folder's own
 * descriptor with O_NOFOLLOW and must be a plain file of one link.
 */
export async function readExisting(root: DataRoot, name: string): Promise<ExistingDataset | null> {
  const target = join(root.path, name);
  const before = await lstat(target).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
    throw err;
  });
  if (before === null) return null;
  if (!before.isDirectory()) throw new DatasetError('invalid_manifest', `${name} is not a dataset folder (a link or a file); it is not replaced`, target);
  await realOwn(root, target, `no dataset ${name}`);
  const dir = await open(target, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const st = await dir.stat();
    if (st.dev !== before.dev || st.ino !== before.ino) throw new DatasetError('invalid_manifest', `${name} changed while it was read; it is not replaced`, target);
    const me = process.getuid?.() ?? 0;
    const myGroup = process.getgid?.() ?? 0;
    const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0 && st.gid !== myGroup);
    if ((st.uid !== 0 && st.uid !== me) || othersWrite) {
      throw new DatasetError('invalid_manifest', `the folder of ${name} is writable by others than the engine (owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}); it is not replaced`, target);
    }
    // Through the folder's descriptor where /proc gives one (openat): the name cannot lead elsewhere.
    const via = existsSync(`/proc/self/fd/${dir.fd}`) ? `/proc/self/fd/${dir.fd}/${MANIFEST_FILE}` : join(target, MANIFEST_FILE);
    const fh = await open(via, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      if (err.code === 'ELOOP') throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} of ${name} is a symbolic link; it is not replaced`, join(target, MANIFEST_FILE));
      throw err;
    });
    if (fh === null) return { dev: st.dev, ino: st.ino, manifest: null, etag: null };
    try {
      const info = await fh.stat();
      if (!info.isFile() || info.nlink !== 1) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} of ${name} is not a plain file of its own; it is not replaced`, join(target, MANIFEST_FILE));
      if (info.size > MANIFEST_MAX_BYTES) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} is larger than ${MANIFEST_MAX_BYTES} bytes`, join(target, MANIFEST_FILE));
      const bytes = await fh.readFile();
      return { dev: st.dev, ino: st.ino, manifest: parseManifest(bytes.toString('utf8'), join(target, MANIFEST_FILE)), etag: createHash('sha256').update(bytes).digest('hex') };
    } finally {
      await fh.close();
    }
  } finally {
    await dir.close();
  }
}

/** Moves the output into place as dataset `name`; the folder is gone afterwards. */
export async function commitOutput(rootDir: string, name: string, output: FinishedOutput): Promise<DatasetManifest> {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new DatasetError('invalid_name', problem, resolve(rootDir));
  const root = await openRoot(rootDir);
  const target = join(root.path, name);
  const parent = dirname(target);
  const slash = name.indexOf('/');
  if (slash > 0 && (await exists(join(parent, MANIFEST_FILE)))) throw new DatasetError('invalid_name', `${name.slice(0, slash)} is a dataset, not a namespace`, parent);
  await mkdir(parent, { recursive: true, mode: 0o711 });
  if (slash > 0) await realOwn(root, parent, 'the namespace folder disappeared');

  const folderStat = await lstat(output.folder);
  if (!folderStat.isDirectory()) throw new DatasetError('invalid_manifest', 'the output is not a folder', output.folder);
  // Each partition checked on its own (a few at a time: on a 256-partition job one after another
  // was most of the commit's time), listed in order.
  const files: FileIdentity[] = new Array(output.rows.length);
  await inParallel(output.rows.length, COMMIT_WIDTH, async (i) => {
    const path = join(output.folder, partitionFile(i, output.format));
    const known = output.sealed ? output.sealedFiles?.get(partitionFile(i, output.format)) : undefined;
    const info = known ?? (await plainFile(path));
    if (!output.sealed) await settleFile(path, info);
    files[i] = info;
  });
  const partitions: DatasetManifest['partitions'] = output.rows.map((rows, i) => ({ file: partitionFile(i, output.format), rows, bytes: files[i]!.size }));
  const manifest: DatasetManifest = {
    format: output.format,
    columns: (await outputColumns(output.folder, output.format, partitions, files)) ?? output.fallbackColumns,
    partitions,
    owner: output.owner,
    labels: [...new Set(output.labels)].sort(),
    created_at: new Date().toISOString(),
    produced_by: output.producedBy,
  };
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  parseManifest(text, join(target, MANIFEST_FILE)); // never commit what the reader would refuse
  // Whatever is not a partition goes first (a _dataset.json the job wrote included: unlinking never
  // follows a link), then the manifest is created new, never opened through a name that exists.
  for (const entry of await readdir(output.folder)) {
    if (!partitions.some((p) => p.file === entry)) await rm(join(output.folder, entry), { force: true, recursive: true });
  }
  const fh = await open(join(output.folder, MANIFEST_FILE), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(text);
    if (process.getuid?.() === 0) await fh.chown(0, 0);
    await fh.chmod(0o644);
  } finally {
    await fh.close();
  }
  if (process.getuid?.() === 0) await chown(output.folder, 0, 0);
  await chmod(output.folder, 0o700);

  let replaced = false;
  if (await exists(target)) {
    if (!output.overwrite) throw new OutputExistsError(`dataset ${name} exists; submit with "mode": "overwrite" to replace it`);
    const existing = await readExisting(root, name);
    if (existing !== null) {
      // Only a dataset is replaced: a namespace holds other people's datasets.
      if (existing.manifest === null) throw new OutputExistsError(`${name} is a namespace (a folder of datasets), not a dataset`);
      // And only one the job's user owns, or the owner an admin's ticket names.
      const refusal = replaceRefusal(name, existing.manifest.owner, { user: output.owner, replaces: output.replaces });
      if (refusal !== null) throw new ReplaceRefusedError(refusal);
      await rename(target, output.trash);
      replaced = true;
      // What moved must be the folder whose manifest was read; anything else goes back, untouched.
      const moved = await lstat(output.trash);
      if (moved.dev !== existing.dev || moved.ino !== existing.ino) {
        await rename(output.trash, target);
        throw new OutputExistsError(`dataset ${name} changed while its owner was checked; it is not replaced`);
      }
    }
  }
  try {
    await rename(output.folder, target);
  } catch (err) {
    if (replaced) await rename(output.trash, target); // the old dataset goes back where it was
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new OutputExistsError(`dataset ${name} appeared while the job ran`);
    throw err;
  }
  if (replaced) await rm(output.trash, { recursive: true, force: true });
  return manifest;
}

/** Partition files checked at once: each is a syscall or a few on libuv's thread pool (4 threads). */
const COMMIT_WIDTH = 16;

/** work(0) .. work(count - 1), at most `width` at a time; the first failure is thrown once all have settled. */
async function inParallel(count: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    try {
      while (next < count && !failed) await work(next++);
    } catch (err) {
      failed = true; // the other lanes take no new item
      throw err;
    }
  };
  const lanes = await Promise.allSettled(Array.from({ length: Math.min(width, count) }, lane));
  const rejected = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
}

export interface FileIdentity {
  ino: number;
  dev: number;
  size: number;
}

/** lstat: a plain file of one link (never a link, FIFO, device or a second name of a file elsewhere). */
async function plainFile(path: string): Promise<FileIdentity> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new DatasetError('invalid_manifest', 'a partition file is missing from the output', path);
    throw err;
  });
  if (!st.isFile() || st.nlink !== 1) throw new DatasetError('invalid_manifest', 'a partition is not a plain file of its own', path);
  return { ino: st.ino, dev: st.dev, size: st.size };
}

/** Opens a file without following a link and checks it is the one `expected` describes. */
async function openChecked(path: string, expected: FileIdentity) {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.nlink !== 1 || st.ino !== expected.ino || st.dev !== expected.dev) {
      throw new DatasetError('invalid_manifest', 'a partition changed while the output was committed', path);
    }
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Written by a task's uid; once committed the engine's own and read-only to tasks. */
async function settleFile(path: string, expected: FileIdentity): Promise<void> {
  const fh = await openChecked(path, expected);
  try {
    if (process.getuid?.() === 0) await fh.chown(0, 0);
    await fh.chmod(0o644);
  } finally {
    await fh.close();
  }
}

/** The header of the first CSV partition, or the keys of the first JSON line; null when there are no rows. */
async function outputColumns(folder: string, format: DatasetFormat, partitions: DatasetManifest['partitions'], files: FileIdentity[]): Promise<string[] | null> {
  const index = partitions.findIndex((p) => p.bytes > 0);
  if (index < 0) return null;
  const first = partitions[index]!;
  const line = await firstLine(join(folder, first.file), files[index]!);
  if (line === '') return null;
  if (format === 'csv') return csvFields(line);
  try {
    const value: unknown = JSON.parse(line);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return Object.keys(value);
  } catch {
    // reported below, with the file's name
  }
  throw new DatasetError('invalid_manifest', `${first.file} does not start with a JSON object line`, join(folder, first.file));
}

const HEADER_MAX_BYTES = 1024 * 1024;

async function firstLine(file: string, expected: FileIdentity): Promise<string> {
  const fh = await openChecked(file, expected);
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    const buffer = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      const newline = chunk.indexOf(10);
      chunks.push(Buffer.from(newline < 0 ? chunk : chunk.subarray(0, newline)));
      length += bytesRead;
      if (newline >= 0 || length > HEADER_MAX_BYTES) break;
    }
    return Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
  } finally {
    await fh.close();
  }
}
