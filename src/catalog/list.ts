// The catalog: every dataset under the data root, top-level or one namespace deep
// (scratch/alice). A broken dataset is skipped and reported, never fatal to the listing.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type DatasetInfo, datasetNameProblem } from '../wire/index.js';
import { DatasetError } from './errors.js';
import { MANIFEST_FILE, PARTITION_PREFIX } from './manifest.js';
import { exists, loadDataset } from './read.js';
import { type DataRoot, openRoot, realOwn } from './root.js';

export interface CatalogProblem {
  path: string;
  message: string;
}

export interface Catalog {
  /** Sorted by name. */
  datasets: DatasetInfo[];
  /** Sorted by path. */
  problems: CatalogProblem[];
}

/**
 * With `only`, the listing as it would answer for that one name (the dataset, or none), without
 * loading any other: the same walk, with every other entry left out before it is read, so a
 * name's answer cannot differ from the full listing's (each entry is decided on its own).
 * Problems found on the way are those of that name's path only.
 */
export async function listDatasets(rootDir: string, only?: string): Promise<Catalog> {
  let root: DataRoot;
  try {
    root = await openRoot(rootDir);
  } catch (err) {
    if (err instanceof DatasetError) return { datasets: [], problems: [{ path: err.path, message: err.message }] };
    throw err;
  }
  const problems: CatalogProblem[] = [];
  const names: string[] = [];
  const top = only?.split('/')[0];
  for (const entry of await folders(root.path, problems)) {
    if (top !== undefined && entry !== top) continue;
    const path = join(root.path, entry);
    const problem = datasetNameProblem(entry);
    if (problem !== null) problems.push({ path, message: problem });
    else if (await exists(join(path, MANIFEST_FILE))) names.push(entry);
    else await namespace(root, entry, names, problems, only);
  }
  const wanted = only === undefined ? names : names.filter((name) => name === only);
  const loaded = await Promise.all(wanted.map((name) => loadDataset(root, name).then((d) => d, (err: unknown) => toProblem(err))));
  const datasets: DatasetInfo[] = [];
  for (const result of loaded) {
    if ('name' in result) datasets.push(result);
    else problems.push(result);
  }
  datasets.sort((a, b) => compare(a.name, b.name));
  problems.sort((a, b) => compare(a.path, b.path));
  return { datasets, problems };
}

/** A folder without a manifest: the datasets inside it, or a dataset that lost its manifest. */
async function namespace(root: DataRoot, ns: string, names: string[], problems: CatalogProblem[], only: string | undefined): Promise<void> {
  const path = join(root.path, ns);
  let entries: string[];
  try {
    entries = await readdir(await realOwn(root, path, 'disappeared while listing'));
  } catch (err) {
    problems.push(toProblem(err));
    return;
  }
  if (entries.some((e) => e.startsWith(PARTITION_PREFIX))) {
    problems.push({ path, message: `has partition files but no ${MANIFEST_FILE}` });
    return;
  }
  for (const entry of await folders(path, problems)) {
    const name = `${ns}/${entry}`;
    if (only !== undefined && name !== only) continue;
    const problem = datasetNameProblem(name);
    if (problem !== null) problems.push({ path: join(path, entry), message: problem });
    else if (await exists(join(path, entry, MANIFEST_FILE))) names.push(name);
    else problems.push({ path: join(path, entry), message: `no ${MANIFEST_FILE} (a folder inside the namespace ${ns} must be a dataset)` });
  }
}

/** The folders (or links to folders) in `dir`, leaving out hidden and staging entries (. and _). */
async function folders(dir: string, problems: CatalogProblem[]): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name.startsWith('_')) continue;
    if (entry.isDirectory()) out.push(entry.name);
    else if (entry.isSymbolicLink()) {
      try {
        if ((await stat(join(dir, entry.name))).isDirectory()) out.push(entry.name);
      } catch {
        problems.push({ path: join(dir, entry.name), message: 'is a broken symbolic link' });
      }
    }
  }
  return out.sort(compare);
}

function toProblem(err: unknown): CatalogProblem {
  if (err instanceof DatasetError) return { path: err.path, message: err.message };
  const e = err as NodeJS.ErrnoException;
  // An unreadable folder or file (EACCES, EIO...) is one dataset's problem, not the listing's.
  if (typeof e?.code === 'string' && typeof e.path === 'string') return { path: e.path, message: `cannot be read (${e.code})` };
  throw err;
}

/** Code-point order, the same on every machine (localeCompare is not). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
