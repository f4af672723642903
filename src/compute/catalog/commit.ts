// A job's output becomes a dataset in one rename: the folder of finished partition files gets its
// manifest and is moved into its name, so a reader sees the whole dataset or none of it.
import { createReadStream } from 'node:fs';
import { chmod, chown, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
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
  /** The folder was already checked and handed to the engine (sealJobOutput): skip doing it again per file. */
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

  const partitions: DatasetManifest['partitions'] = [];
  for (const [i, rows] of output.rows.entries()) {
    const file = partitionFile(i, output.format);
    const path = join(output.folder, file);
    const info = await stat(path);
    if (!output.sealed) await settle(path, 0o644);
    partitions.push({ file, rows, bytes: info.size });
  }
  const manifest: DatasetManifest = {
    format: output.format,
    columns: (await outputColumns(output.folder, output.format, partitions)) ?? output.fallbackColumns,
    partitions,
    owner: output.owner,
    labels: [...new Set(output.labels)].sort(),
    created_at: new Date().toISOString(),
    produced_by: output.producedBy,
  };
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  parseManifest(text, join(target, MANIFEST_FILE)); // never commit what the reader would refuse
  await writeFile(join(output.folder, MANIFEST_FILE), text, { mode: 0o644 });
  for (const entry of await readdir(output.folder)) {
    if (entry !== MANIFEST_FILE && !partitions.some((p) => p.file === entry)) await rm(join(output.folder, entry), { force: true, recursive: true });
  }
  await settle(output.folder, 0o700);

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

/** Written by a task's uid; once committed the engine's own and read-only to tasks. */
async function settle(path: string, mode: number): Promise<void> {
  if (process.getuid?.() === 0) await chown(path, 0, 0);
  await chmod(path, mode);
}

/** The header of the first CSV partition, or the keys of the first JSON line; null when there are no rows. */
async function outputColumns(folder: string, format: DatasetFormat, partitions: DatasetManifest['partitions']): Promise<string[] | null> {
  const first = partitions.find((p) => p.bytes > 0);
  if (first === undefined) return null;
  const line = await firstLine(join(folder, first.file));
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

async function firstLine(file: string): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    const newline = chunk.indexOf(10);
    chunks.push(newline < 0 ? chunk : chunk.subarray(0, newline));
    length += chunk.length;
    if (newline >= 0 || length > 1024 * 1024) break;
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
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
