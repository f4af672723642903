// Reading a dataset for a person (GET /v1/datasets/:name and its partitions), by whoever serves the
// data root: the engine, or the gateway for Slurm. Task uids write under the root, so nothing here
// follows a link: every folder on the way is opened one name at a time with O_NOFOLLOW through its
// parent's descriptor (openat, by /proc/self/fd), and the manifest and partition files the same
// way, each checked to be a plain file of one link; a partition must have the size the manifest
// says. What is read is what was checked, through the same descriptor.
import { createHash } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import Type from 'typebox';
import { datasetNameProblem } from '../wire/index.js';
import { DatasetError, UnreadableError } from './errors.js';
import { type DatasetManifest, DatasetManifestSchema, MANIFEST_FILE, MANIFEST_MAX_BYTES, parseManifest } from './manifest.js';
import { openRoot } from './root.js';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const FILE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export interface ReadableDataset {
  manifest: DatasetManifest;
  /** sha256 of the manifest's bytes: which version of the dataset was read (an ETag). */
  etag: string;
}

/**
 * How many of a partition's links the engine itself made (a running job's input, hard-linked into
 * its job area where no task can plant a name): those are not a second name someone else gave the
 * file, so a partition is still "of one link" with them. Absent: every extra link is refused.
 */
export type EngineLinks = (file: string, dev: number, ino: number) => Promise<number>;

/** A ReadableDataset on the wire (the engine's GET /dataset). */
export const DatasetReadSchema = Type.Object({ manifest: DatasetManifestSchema, etag: Type.String({ pattern: '^[0-9a-f]{64}$' }) }, { additionalProperties: false });

/** `name`'s manifest, with every partition checked (plain file, one link, the size it lists). */
export async function readableDataset(rootDir: string, name: string, links?: EngineLinks): Promise<ReadableDataset> {
  const dir = await openDatasetDir(rootDir, name);
  try {
    const found = await readManifestAt(dir, name);
    for (const [i, p] of found.manifest.partitions.entries()) (await openPartitionAt(dir, name, i, p, links)).close();
    return found;
  } finally {
    await dir.close();
  }
}

export interface OpenedPartition extends ReadableDataset {
  /** The partition file, checked; the caller closes it (a stream with autoClose does). */
  file: FileHandle;
  size: number;
}

/**
 * Partition `index` of `name`, opened for reading. With `etag`, the dataset must still be the
 * version that was decided on (a replaced one is refused: `changed`).
 */
export async function openPartition(rootDir: string, name: string, index: number, etag?: string, links?: EngineLinks): Promise<OpenedPartition> {
  const dir = await openDatasetDir(rootDir, name);
  try {
    const found = await readManifestAt(dir, name);
    if (etag !== undefined && etag !== found.etag) throw new DatasetError('changed', `${name} changed since it was looked up`, join(rootDir, name));
    const listed = found.manifest.partitions[index];
    if (listed === undefined) throw new DatasetError('not_found', `${name} has no partition ${index}`, join(rootDir, name));
    const file = await openPartitionAt(dir, name, index, listed, links);
    return { ...found, file: file.handle, size: listed.bytes };
  } finally {
    await dir.close();
  }
}

/** The dataset's folder, each name on the way opened without following a link. */
async function openDatasetDir(rootDir: string, name: string): Promise<FileHandle> {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new DatasetError('invalid_name', problem, rootDir);
  const root = await openRoot(rootDir);
  let dir = await open(root.real, DIR_FLAGS).catch((err: unknown) => {
    throw refusal(err, name, root.path);
  });
  let path = root.path;
  for (const part of name.split('/')) {
    path = join(path, part);
    // Hidden and staging folders (. and _) are never datasets, as in the listing.
    if (part.startsWith('.') || part.startsWith('_')) {
      await dir.close();
      throw new DatasetError('not_found', `no dataset ${name}`, path);
    }
    try {
      const next = await open(at(dir, part, path), DIR_FLAGS);
      await dir.close();
      dir = next;
    } catch (err) {
      await dir.close();
      throw refusal(err, name, path);
    }
  }
  return dir;
}

async function readManifestAt(dir: FileHandle, name: string): Promise<ReadableDataset> {
  const fh = await open(at(dir, MANIFEST_FILE, name), FILE_FLAGS).catch((err: unknown) => {
    throw refusal(err, name, MANIFEST_FILE);
  });
  try {
    const info = await fh.stat();
    if (!info.isFile() || info.nlink !== 1) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} of ${name} is not a plain file of its own`, name);
    if (info.size > MANIFEST_MAX_BYTES) throw new DatasetError('invalid_manifest', `${MANIFEST_FILE} is larger than ${MANIFEST_MAX_BYTES} bytes`, name);
    const bytes = await fh.readFile();
    return { manifest: parseManifest(bytes.toString('utf8'), join(name, MANIFEST_FILE)), etag: createHash('sha256').update(bytes).digest('hex') };
  } finally {
    await fh.close();
  }
}

async function openPartitionAt(dir: FileHandle, name: string, index: number, listed: DatasetManifest['partitions'][number], links?: EngineLinks): Promise<{ handle: FileHandle; close: () => void }> {
  const where = join(name, listed.file);
  const handle = await open(at(dir, listed.file, where), FILE_FLAGS).catch((err: unknown) => {
    const e = refusal(err, name, where);
    throw e.code === 'not_found' ? new DatasetError('invalid_manifest', `partition ${index} (${listed.file}) is listed but missing`, where) : e;
  });
  try {
    const info = await handle.stat();
    // Every link beyond the first must be one the engine made for a job's input (see EngineLinks).
    const engineMade = info.nlink > 1 && links !== undefined ? await links(listed.file, info.dev, info.ino) : 0;
    if (!info.isFile() || info.nlink !== 1 + engineMade) throw new DatasetError('invalid_manifest', `${listed.file} is not a plain file of its own`, where);
    if (info.size !== listed.bytes) throw new DatasetError('invalid_manifest', `${listed.file} has ${info.size} bytes; ${MANIFEST_FILE} says ${listed.bytes}`, where);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return { handle, close: () => void handle.close().catch(() => undefined) };
}

/** `name` inside the folder `dir` is open on, reached through its descriptor where /proc gives one. */
function at(dir: FileHandle, name: string, fallback: string): string {
  const via = `/proc/self/fd/${dir.fd}`;
  if (existsSync(via)) return `${via}/${name}`;
  // Without /proc there is no openat from Node: refuse rather than walk names a task could swap.
  throw new DatasetError('not_found', 'reading datasets needs /proc (openat through /proc/self/fd)', fallback);
}

function refusal(err: unknown, name: string, path: string): DatasetError {
  if (err instanceof DatasetError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new DatasetError('not_found', `no dataset ${name}`, path);
  // O_NOFOLLOW on a link: ELOOP (a folder asked for with O_DIRECTORY may say ENOTDIR, above).
  if (code === 'ELOOP') return new DatasetError('outside_root', 'is a symbolic link; datasets are read only through real folders and files', path);
  if (code === 'EACCES' || code === 'EPERM') return new UnreadableError(`no dataset ${name} (cannot be opened: ${code})`, path);
  throw err;
}
