// The data root and the one rule every path under it obeys: after following symbolic links it
// is still inside the root, so a link cannot hand a job /etc or another system's files.
import { realpathSync, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import { DatasetError } from './errors.js';

export interface DataRoot {
  /** As configured, resolved: the paths shown in messages. */
  path: string;
  /** With every link followed: what containment is checked against. */
  real: string;
}

export async function openRoot(root: string): Promise<DataRoot> {
  const path = resolve(root);
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DatasetError('not_found', 'the data root does not exist', path);
    throw err;
  }
  if (!(await stat(real)).isDirectory()) throw new DatasetError('not_found', 'the data root is not a folder', path);
  return { path, real };
}

/** openRoot with synchronous calls (see openDataset's `sync`). */
export function openRootSync(root: string): DataRoot {
  const path = resolve(root);
  let real: string;
  try {
    real = realpathSync.native(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DatasetError('not_found', 'the data root does not exist', path);
    throw err;
  }
  if (!statSync(real).isDirectory()) throw new DatasetError('not_found', 'the data root is not a folder', path);
  return { path, real };
}

/** The real path of `path`, refused when a link leads it outside the root (or onto the root itself). */
export async function realInside(root: DataRoot, path: string, missing: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    throw missingOr(err, path, missing);
  }
  return inside(root, path, real);
}

/**
 * The real path of `path`, which must be `path` itself (below the root, links are refused): a link
 * inside the root would give a dataset a second name, and policy decides by name.
 */
export async function realOwn(root: DataRoot, path: string, missing: string): Promise<string> {
  return own(root, path, await realInside(root, path, missing));
}

/**
 * realOwn with a synchronous realpath (the same realpath(3)): for checking many files in a row,
 * where each through the thread pool cost tens of microseconds of CPU against a few.
 */
export function realOwnSync(root: DataRoot, path: string, missing: string): string {
  let real: string;
  try {
    real = realpathSync.native(path);
  } catch (err) {
    throw missingOr(err, path, missing);
  }
  return own(root, path, inside(root, path, real));
}

function missingOr(err: unknown, path: string, missing: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' ? new DatasetError('not_found', missing, path) : err;
}

function inside(root: DataRoot, path: string, real: string): string {
  if (!real.startsWith(root.real + sep)) {
    throw new DatasetError('outside_root', 'is a symbolic link that leads outside the data root', path);
  }
  return real;
}

function own(root: DataRoot, path: string, real: string): string {
  if (real !== resolve(root.real, relative(root.path, path))) throw new DatasetError('outside_root', 'is a symbolic link; under the data root datasets are real folders and files, so none has a second name', path);
  return real;
}
