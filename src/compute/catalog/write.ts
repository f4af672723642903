// Making a dataset: written into a hidden staging folder beside its place and renamed into it,
// so a reader (or a restart after a crash) sees the whole dataset or none of it.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DatasetError, type DatasetManifest, exists, MANIFEST_FILE, openRoot, parseManifest, partitionFile, realOwn } from '../../catalog/index.js';
import { type DatasetFormat, datasetNameProblem } from '../../wire/index.js';

export interface PartitionData {
  text: string;
  rows: number;
}

export interface NewDataset {
  format: DatasetFormat;
  columns: string[];
  owner: string | null;
  labels: string[];
  produced_by: string | null;
  /** Produced one at a time, so a large dataset is never whole in memory. */
  partitions: Iterable<PartitionData>;
}

const STAGING = /^\.staging-.+-(\d+)-[0-9a-f]{8}$/;

/** Writes `name` unless something already has that name; true when it did. */
export async function writeDataset(rootDir: string, name: string, dataset: NewDataset): Promise<boolean> {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new DatasetError('invalid_name', problem, resolve(rootDir));
  const target = join(resolve(rootDir), name);
  const parent = dirname(target);
  const slash = name.indexOf('/');
  if (slash > 0 && (await exists(join(parent, MANIFEST_FILE)))) throw new DatasetError('invalid_name', `${name.slice(0, slash)} is a dataset, not a namespace`, parent);
  await mkdir(parent, { recursive: true });
  // Never write through a link: the reader refuses what a link leads to (see realOwn).
  if (slash > 0) await realOwn(await openRoot(rootDir), parent, 'the namespace folder disappeared');
  if (await exists(target)) return false;
  await removeAbandonedStaging(parent);

  const staging = join(parent, `.staging-${basename(name)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging);
  try {
    const partitions: DatasetManifest['partitions'] = [];
    for (const { text, rows } of dataset.partitions) {
      const file = partitionFile(partitions.length, dataset.format);
      await writeFile(join(staging, file), text);
      partitions.push({ file, rows, bytes: Buffer.byteLength(text) });
    }
    const manifest: DatasetManifest = {
      format: dataset.format,
      columns: dataset.columns,
      partitions,
      owner: dataset.owner,
      labels: dataset.labels,
      created_at: new Date().toISOString(),
      produced_by: dataset.produced_by,
    };
    const text = `${JSON.stringify(manifest, null, 2)}\n`;
    parseManifest(text, join(target, MANIFEST_FILE)); // never write what the reader would refuse
    await writeFile(join(staging, MANIFEST_FILE), text);
    try {
      await rename(staging, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false; // someone else made it meanwhile
      throw err;
    }
    return true;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Staging folders whose writer died (a crash, a kill -9) are garbage. */
async function removeAbandonedStaging(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) {
    const pid = STAGING.exec(entry)?.[1];
    if (pid !== undefined && !alive(Number(pid))) await rm(join(dir, entry), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
