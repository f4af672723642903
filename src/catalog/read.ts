// One dataset: its folder, its manifest, and partition files that agree with the manifest.
import { lstatSync, readdirSync, readFileSync, type Stats, statSync } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type DatasetInfo, datasetNameProblem } from '../wire/index.js';
import { DatasetError } from './errors.js';
import { type DatasetManifest, MANIFEST_FILE, MANIFEST_MAX_BYTES, PARTITION_PREFIX, parseManifest } from './manifest.js';
import { type DataRoot, openRoot, realOwn, realOwnSync } from './root.js';

/** The dataset `name` under `root`, or a DatasetError saying why it cannot be used. */
export async function readDataset(root: string, name: string): Promise<DatasetInfo> {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new DatasetError('invalid_name', problem, resolve(root));
  return loadDataset(await openRoot(root), name);
}

/** `name` must already satisfy the naming rule. */
export async function loadDataset(root: DataRoot, name: string): Promise<DatasetInfo> {
  return (await openDataset(root, name)).info;
}

export interface OpenDataset {
  info: DatasetInfo;
  manifest: DatasetManifest;
  /** The dataset's folder (its real path: links were refused on the way). */
  dir: string;
}

/**
 * A dataset checked as loadDataset checks it, with its manifest: what a job reads partitions by.
 * `sync`: the folder, the manifest and the listing read with synchronous calls (the same checks), for
 * the engine's intake on its own disk, where each of a dozen thread-pool hops cost more than its call.
 * Not where the data root may be a slow shared filesystem read by the gateway's event loop.
 */
export async function openDataset(root: DataRoot, name: string, o: { sync?: boolean } = {}): Promise<OpenDataset> {
  const sync = o.sync === true;
  const dir = join(root.path, name);
  const slash = name.indexOf('/');
  // A folder with a manifest is a dataset, never a namespace: the listing does not look inside it either.
  const parentManifest = slash > 0 ? join(root.path, name.slice(0, slash), MANIFEST_FILE) : null;
  if (parentManifest !== null && (sync ? existsSync(parentManifest) : await exists(parentManifest))) {
    throw new DatasetError('not_found', `${name.slice(0, slash)} is a dataset, not a namespace`, dir);
  }
  const missingDir = `no dataset ${name}`;
  const realDir = sync ? realOwnSync(root, dir, missingDir) : await realOwn(root, dir, missingDir);
  if (!(sync ? statSync(realDir) : await stat(realDir)).isDirectory()) throw new DatasetError('not_found', `no dataset ${name} (not a folder)`, dir);

  const manifestPath = join(dir, MANIFEST_FILE);
  const missingManifest = `no ${MANIFEST_FILE}`;
  const realManifest = sync ? realOwnSync(root, manifestPath, missingManifest) : await realOwn(root, manifestPath, missingManifest);
  const manifestStat = sync ? statSync(realManifest) : await stat(realManifest);
  if (!manifestStat.isFile()) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} is not a file`, manifestPath);
  if (manifestStat.size > MANIFEST_MAX_BYTES) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} is larger than ${MANIFEST_MAX_BYTES} bytes`, manifestPath);
  const manifest = parseManifest(sync ? readFileSync(realManifest, 'utf8') : await readFile(realManifest, 'utf8'), manifestPath);
  await checkPartitions(root, dir, realDir, manifest, sync);
  const info: DatasetInfo = {
    name,
    format: manifest.format,
    columns: manifest.columns,
    partitions: manifest.partitions.length,
    rows: manifest.partitions.reduce((n, p) => n + p.rows, 0),
    bytes: manifest.partitions.reduce((n, p) => n + p.bytes, 0),
    owner: manifest.owner,
    labels: manifest.labels,
    created_at: manifest.created_at,
    produced_by: manifest.produced_by,
  };
  return { info, manifest, dir: realDir };
}

/** Every listed partition is a file of the listed size inside the root, and no partition is unlisted. */
async function checkPartitions(root: DataRoot, dir: string, realDir: string, manifest: DatasetManifest, sync: boolean): Promise<void> {
  const listed = new Set(manifest.partitions.map((p) => p.file));
  const unlisted = (sync ? readdirSync(realDir) : await readdir(realDir)).filter((f) => f.startsWith(PARTITION_PREFIX) && !listed.has(f)).sort()[0];
  if (unlisted !== undefined) throw new DatasetError('invalid_manifest', `${unlisted} is not listed in ${MANIFEST_FILE}`, join(dir, unlisted));
  // An lstat each (checkPartition), synchronous, 32 a turn of the event loop: through the thread pool
  // (16 at a time) they cost a 256-partition job about 512 hand-offs of tens of microseconds of CPU
  // each before its folders. The problem reported is the first one in the manifest's order.
  for (const [i, partition] of manifest.partitions.entries()) {
    if (i > 0 && i % TURN_FILES === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    checkPartition(root, dir, realDir, partition);
  }
}

const TURN_FILES = 32;

function checkPartition(root: DataRoot, dir: string, realDir: string, partition: DatasetManifest['partitions'][number]): void {
  const path = join(dir, partition.file);
  // realDir is the folder's real path (no link on its way, realOwn checked), so only the file's own
  // name could be a link: one lstat says, where a realpath took a readlink per component and a stat.
  // A link, or nothing there, goes the realpath's way for its own error.
  let info = lstatOrNull(join(realDir, partition.file));
  if (info === null || info.isSymbolicLink()) {
    let real: string;
    try {
      real = realOwnSync(root, path, `${partition.file} is listed in ${MANIFEST_FILE} but missing`);
    } catch (err) {
      throw err instanceof DatasetError && err.code === 'not_found' ? new DatasetError('invalid_manifest', err.message, err.path) : err;
    }
    info = statSync(real);
  }
  if (!info.isFile()) throw new DatasetError('invalid_manifest', `${partition.file} is not a file`, path);
  if (info.size !== partition.bytes) {
    throw new DatasetError('invalid_manifest', `${partition.file} has ${info.size} bytes; ${MANIFEST_FILE} says ${partition.bytes}`, path);
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/** exists, with a synchronous lstat (the engine's intake; see openDataset's `sync`). */
export function existsSync(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/** True when anything is there, even a broken link. */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}
