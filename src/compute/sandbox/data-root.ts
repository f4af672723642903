// The data root made safe to run tasks beside, at every start: who may pass through it, list it or
// read its datasets, and the shared staging and runner folders under it. Apart from the job area
// because it is done once for the whole root, before any job exists.
//
//   <data root>/            0711 root   tasks may pass through, never list
//     <dataset>/            0700 root   no task reads a dataset except through its own in/
//     .staging/             0711 root   the job areas (see job-area.ts)
//       .runtime/           0755 root   the runner scripts, read by every task
import { chmod, chown, copyFile, lstat, mkdir, readdir, realpath, rename } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Isolation } from './isolation.js';
import { amRoot, ensureDir } from './safe-tree.js';

export const STAGING_DIR = '.staging';
export const RUNTIME_DIR = '.runtime';

/**
 * Makes the data root safe to run tasks beside (when the engine is root): the root 0711, every
 * dataset (and namespace) folder 0700 root, loose files without group/other access, `.staging`
 * 0711 and `.staging/.runtime` 0755. Creates `.staging` and `.runtime` in every mode. Whether task
 * uids can reach the data root at all (a parent folder without o+x, e.g. under /root) is
 * taskReachProblem's question (reach.ts).
 */
export async function secureDataRoot(dataRoot: string, iso: Isolation): Promise<{ stagingRoot: string; runtimeDir: string }> {
  const root = await realpath(resolve(dataRoot));
  const stagingRoot = join(root, STAGING_DIR);
  const runtimeDir = join(stagingRoot, RUNTIME_DIR);
  await mkdir(runtimeDir, { recursive: true });
  if (!iso.root) return { stagingRoot, runtimeDir };

  // Whether task uids can walk down to here is taskReachProblem's question: the engine still starts without.
  await chown(root, 0, 0);
  await chmod(root, 0o711);
  for (const name of await readdir(root)) {
    if (name === STAGING_DIR) continue;
    await lockDown(join(root, name), true);
  }
  await ensureDir(stagingRoot, 0o711, { uid: 0, gid: 0 });
  await ensureDir(runtimeDir, 0o755, { uid: 0, gid: 0 });
  return { stagingRoot, runtimeDir };
}

/** A dataset or namespace folder becomes 0700 root; a namespace's datasets too (defence in depth). */
async function lockDown(path: string, descend: boolean): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) {
    await chown(path, 0, 0);
    await chmod(path, 0o700);
    if (!descend) return;
    const isDataset = await lstat(join(path, '_dataset.json')).then(() => true, () => false);
    if (isDataset) return;
    for (const name of await readdir(path)) {
      const sub = join(path, name);
      if ((await lstat(sub)).isDirectory()) await lockDown(sub, false);
    }
  } else if (st.isFile()) {
    await chmod(path, st.mode & 0o700);
  }
}

/** Copies the runner scripts into `.staging/.runtime/` (0755 folder, 0644 files); returns the folder. */
export async function installRuntime(stagingRoot: string, files: string[]): Promise<string> {
  const dir = join(resolve(stagingRoot), RUNTIME_DIR);
  await ensureDir(dir, 0o755, amRoot() ? { uid: 0, gid: 0 } : null);
  for (const file of files) {
    const dest = join(dir, basename(file));
    const tmp = `${dest}.${process.pid}.tmp`;
    await copyFile(file, tmp);
    if (amRoot()) await chown(tmp, 0, 0);
    await chmod(tmp, 0o644);
    await rename(tmp, dest); // a task starting meanwhile sees the old runner or the new one, whole
  }
  return dir;
}
