// At the engine's start: the datasets whose removal a crash cut short. removeDataset (remove.ts)
// renames a dataset to a hidden `.removing-<uuid>` folder in the data root before it removes it; a
// crash in between leaves that folder, never listed or read, but holding the disk. Only real folders
// of exactly that shape at the top of the root are taken (what remove.ts makes); fs.rm unlinks a
// link it meets inside and follows none, so nothing outside the folder is touched.
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REMOVING_PREFIX } from './remove.js';
import { openRoot } from './root.js';

const PARKED = new RegExp(`^${REMOVING_PREFIX.replace('.', '\\.')}[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`);

/** Removes every parked removal under `rootDir`; returns the names it removed. */
export async function sweepRemovals(rootDir: string): Promise<string[]> {
  const root = await openRoot(rootDir);
  const swept: string[] = [];
  for (const name of await readdir(root.path)) {
    if (!PARKED.test(name)) continue;
    const path = join(root.path, name);
    try {
      if (!(await lstat(path)).isDirectory()) continue;
      await rm(path, { recursive: true, force: true });
      swept.push(name);
    } catch {
      // One that cannot go now (gone already, a busy disk) must not keep the engine from starting.
    }
  }
  return swept;
}
