// Removing a dataset (DELETE /v1/datasets/:name, decided by the gateway). Link-safe: the folder is
// checked as a replaced dataset is (readExisting: a real folder, the engine's, no link on the way,
// its manifest opened with O_NOFOLLOW), then renamed away inside the data root to a hidden
// `.removing-*` name that no reader or listing looks at, and only then removed. fs.rm unlinks a
// symbolic link it meets and never follows it, so nothing outside the folder is touched. The
// version the gateway decided on (the manifest's sha256) must still be the one there: a dataset
// replaced in between is refused (`changed`), not removed under the old decision.
import { randomUUID } from 'node:crypto';
import { lstat, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { datasetNameProblem } from '../wire/index.js';
import { readExisting } from './commit.js';
import { DatasetError } from './errors.js';
import { openRoot } from './root.js';

/** Where removals are parked for the moment between rename and rm (hidden: never listed, never read). */
export const REMOVING_PREFIX = '.removing-';
/** A folder a removal refused and could not put back (its name was taken meanwhile): for IT to look at. */
export const KEPT_PREFIX = '.removal-refused-';

export async function removeDataset(rootDir: string, name: string, etag: string): Promise<void> {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new DatasetError('invalid_name', problem, resolve(rootDir));
  const root = await openRoot(rootDir);
  const target = join(root.path, name);
  const existing = await readExisting(root, name);
  if (existing === null || existing.manifest === null) throw new DatasetError('not_found', `no dataset ${name}`, target);
  if (existing.etag !== etag) throw new DatasetError('changed', `${name} changed since it was looked up; it is not removed`, target);
  const parked = join(root.path, `${REMOVING_PREFIX}${randomUUID()}`);
  await rename(target, parked);
  // What moved must be the folder that was checked; anything else goes back, untouched.
  const moved = await lstat(parked);
  if (moved.dev !== existing.dev || moved.ino !== existing.ino) {
    // Back where it was; if something took its place meanwhile, kept under a name the start-up sweep
    // (sweep-removals.ts) does not take: it was never decided to go.
    await rename(parked, target).catch(() => rename(parked, join(root.path, `${KEPT_PREFIX}${randomUUID()}`)));
    throw new DatasetError('changed', `${name} changed while it was checked; it is not removed`, target);
  }
  await rm(parked, { recursive: true, force: true });
}
