// A job's output becomes a dataset in one rename: the folder of finished partition files gets its
// manifest and is moved into its name, so a reader sees the whole dataset or none of it.
//
// The engine may be root and the folder was written by a task: nothing here follows a link. Every
// file is read through a descriptor opened with O_NOFOLLOW and checked (a plain file, one link, the
// one listed), and the manifest is created with O_CREAT|O_EXCL|O_NOFOLLOW. The folder itself must be
// one no task can change any more (sealJobOutput moves it out of their reach and takes it over).
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type DatasetFormat, datasetNameProblem } from '../../wire/index.js';
import { DatasetError } from './errors.js';
import { type DatasetManifest, MANIFEST_FILE, parseManifest, partitionFile } from './manifest.js';
import { exists } from './read.js';
import { openRoot, realOwn } from './root.js';

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
  /** Where a replaced dataset is parked until the new one is in place (removed after). */
  trash: string;
  /**
   * The folder was already checked and handed to the engine (sealJobOutput): skip doing it again per
   * file. Either way the folder must be out of every task's reach.
   */
  sealed?: boolean;
}

export class OutputExistsError extends Error {
  override readonly name = 'OutputExistsError';
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
  const partitions: DatasetManifest['partitions'] = [];
  const files: FileIdentity[] = [];
  for (const [i, rows] of output.rows.entries()) {
    const file = partitionFile(i, output.format);
    const info = await plainFile(join(output.folder, file));
    if (!output.sealed) await settleFile(join(output.folder, file), info);
    partitions.push({ file, rows, bytes: info.size });
    files.push(info);
  }
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
    await realOwn(root, target, `no dataset ${name}`);
    // Only a dataset is replaced: a namespace holds other people's datasets.
    if (!(await exists(join(target, MANIFEST_FILE)))) throw new OutputExistsError(`${name} is a namespace (a folder of datasets), not a dataset`);
    await rename(target, output.trash);
    replaced = true;
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

interface FileIdentity {
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

/** RFC 4180 fields of one header line. */
function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') fields.push(field), (field = '');
    else field += c;
  }
  fields.push(field);
  return fields;
}
