// One dataset: its folder, its manifest, and partition files that agree with the manifest.
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type DatasetInfo, datasetNameProblem } from '../wire/index.js';
import { DatasetError } from './errors.js';
import { type DatasetManifest, MANIFEST_FILE, MANIFEST_MAX_BYTES, PARTITION_PREFIX, parseManifest } from './manifest.js';
import { type DataRoot, openRoot, realOwn } from './root.js';

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

/** A dataset checked as loadDataset checks it, with its manifest: what a job reads partitions by. */
export async function openDataset(root: DataRoot, name: string): Promise<OpenDataset> {
  const dir = join(root.path, name);
  const slash = name.indexOf('/');
  // A folder with a manifest is a dataset, never a namespace: the listing does not look inside it either.
  if (slash > 0 && (await exists(join(root.path, name.slice(0, slash), MANIFEST_FILE)))) {
    throw new DatasetError('not_found', `${name.slice(0, slash)} is a dataset, not a namespace`, dir);
  }
  const realDir = await realOwn(root, dir, `no dataset ${name}`);
  if (!(await stat(realDir)).isDirectory()) throw new DatasetError('not_found', `no dataset ${name} (not a folder)`, dir);

  const manifestPath = join(dir, MANIFEST_FILE);
  const realManifest = await realOwn(root, manifestPath, `no ${MANIFEST_FILE}`);
  const manifestStat = await stat(realManifest);
  if (!manifestStat.isFile()) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} is not a file`, manifestPath);
  if (manifestStat.size > MANIFEST_MAX_BYTES) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} is larger than ${MANIFEST_MAX_BYTES} bytes`, manifestPath);
  const manifest = parseManifest(await readFile(realManifest, 'utf8'), manifestPath);
  await checkPartitions(root, dir, realDir, manifest);
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
async function checkPartitions(root: DataRoot, dir: string, realDir: string, manifest: DatasetManifest): Promise<void> {
  const listed = new Set(manifest.partitions.map((p) => p.file));
  const unlisted = (await readdir(realDir)).filter((f) => f.startsWith(PARTITION_PREFIX) && !listed.has(f)).sort()[0];
  if (unlisted !== undefined) throw new DatasetError('invalid_manifest', `${unlisted} is not listed in ${MANIFEST_FILE}`, join(dir, unlisted));
  // Checked several at a time (each is a realpath and a stat on the thread pool: one after another
  // they were most of a 256-partition job's wait before its folders), and the problem reported is
  // still the first one in the manifest's order.
  const problems = await inBatches(manifest.partitions, (partition) => checkPartition(root, dir, partition).then(() => null, (err: unknown) => err));
  const first = problems.find((p) => p !== null);
  if (first !== undefined) throw first;
}

async function checkPartition(root: DataRoot, dir: string, partition: DatasetManifest['partitions'][number]): Promise<void> {
  const path = join(dir, partition.file);
  let real: string;
  try {
    real = await realOwn(root, path, `${partition.file} is listed in ${MANIFEST_FILE} but missing`);
  } catch (err) {
    throw err instanceof DatasetError && err.code === 'not_found' ? new DatasetError('invalid_manifest', err.message, err.path) : err;
  }
  const info = await stat(real);
  if (!info.isFile()) throw new DatasetError('invalid_manifest', `${partition.file} is not a file`, path);
  if (info.size !== partition.bytes) {
    throw new DatasetError('invalid_manifest', `${partition.file} has ${info.size} bytes; ${MANIFEST_FILE} says ${partition.bytes}`, path);
  }
}

/** work(item) for every item, at most `width` at once; the results in the items' order. */
async function inBatches<T, R>(items: readonly T[], work: (item: T) => Promise<R>, width = 16): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return results;
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
