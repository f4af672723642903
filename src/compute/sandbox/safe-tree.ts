// How the engine, as root, handles a tree tasks could write in without ever following a link or
// trusting a name a task could change: a folder a task could write is first moved (rename) into a
// folder only root can enter, then taken over (owner root, mode 0700, through descriptors opened
// without following links, top down), and only then read, written or removed. Apart because the job
// area, the data root and the uid sweep all use it: link safety is checked in this one place.
//
//   <parent>/.removing-<random>/ 0700 root   a tree being removed, after it was taken from the tasks
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SandboxError } from './sandbox-error.js';
import { Turns } from './turns.js';

/** Beside a tree being removed: the root-only folder it is moved into first. */
export const REMOVING_PREFIX = '.removing-';

export const NOFOLLOW = constants.O_NOFOLLOW;

export function amRoot(): boolean {
  return process.getuid?.() === 0;
}

/** A folder with exactly this owner and mode, created if missing; refused if something else sits there. */
export async function ensureDir(path: string, mode: number, owner: { uid: number; gid: number } | null): Promise<void> {
  try {
    await mkdir(path, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = await lstat(path);
  if (!st.isDirectory()) throw new SandboxError('unsafe_path', `${path} exists and is not a folder`);
  if (owner) await chown(path, owner.uid, owner.gid);
  await chmod(path, mode); // mkdir's mode passes through the umask
}

/**
 * ensureDir with synchronous calls: a job's folders are four of them on the way to its first worker,
 * each call a few microseconds, where the thread pool cost a hand-off and a wake-up of the loop each.
 */
export function ensureDirSync(path: string, mode: number, owner: { uid: number; gid: number } | null): void {
  try {
    mkdirSync(path, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(path);
  if (!st.isDirectory()) throw new SandboxError('unsafe_path', `${path} exists and is not a folder`);
  if (owner) chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode); // mkdir's mode passes through the umask
}

/**
 * Makes `dir` root's (0700) through a descriptor opened without following links, checking it is
 * the folder `expected` describes when given. Only for a folder whose parent no task can change.
 * Synchronous: a tree's removal does it for every folder (in turns), the seal for out/.
 */
export function takeOverDirSync(dir: string, expected?: { ino: number; dev: number }): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (!st.isDirectory() || (expected && (st.ino !== expected.ino || st.dev !== expected.dev))) {
      throw new SandboxError('unsafe_path', `${dir} changed while it was being taken over`);
    }
    if (amRoot()) fchownSync(fd, 0, 0);
    fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

/**
 * Takes a whole tree from the tasks and deletes it, top down: each folder becomes root's and 0700
 * before its entries are listed, so none of them can be swapped for a link afterwards (even by a task
 * holding a descriptor on the folder: the kernel checks its permission anew at each change), and only
 * then are they deleted. Links, files, FIFOs and devices are unlinked: unlinking never follows them.
 * Synchronous calls in turns (turns.ts); a folder's entry types come with its listing (an unknown
 * type is lstat'ed by Node), read after the folder was taken over, so no task can change them.
 *
 * A task can nest folders deeper than any path the kernel takes (PATH_MAX, 4096 bytes), each made
 * relative to the last. Node has no *at() calls, so a folder whose path grows past SHALLOW_BYTES is
 * first moved up into `holder` (root's, 0700, on the same file system) under a short name, and walked
 * from there: every path used stays under SHALLOW_BYTES plus one name. Its parent is root's by then,
 * so no task can change what the rename moves.
 */
const SHALLOW_BYTES = 2048;

async function removeTakenTree(dir: string, turns: Turns, holder: string): Promise<void> {
  takeOverDirSync(dir);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    await turns.tick();
    let path = join(dir, entry.name);
    if (!entry.isDirectory()) {
      unlinkSync(path);
      continue;
    }
    if (Buffer.byteLength(path) > SHALLOW_BYTES) {
      const shallow = join(holder, `deep-${randomBytes(8).toString('hex')}`);
      renameSync(path, shallow);
      path = shallow;
    }
    await removeTakenTree(path, turns, holder);
  }
  rmdirSync(dir);
}

/**
 * As root, removes a tree tasks could write in without ever following a link: it is renamed into a
 * new root-only folder beside it (so no task can reach it by name), taken over (so none can change
 * it through a descriptor), then deleted. `path`'s parent must be one tasks cannot rename entries
 * in: root's, or sticky (/tmp) with `path` not theirs to move once their processes are gone.
 */
export async function removeTaskTree(path: string): Promise<void> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (st === null) return;
  if (!st.isDirectory()) {
    await rm(path, { force: true }); // unlink: a link itself goes, never what it points to
    return;
  }
  const holder = join(dirname(path), `${REMOVING_PREFIX}${randomBytes(8).toString('hex')}`);
  await mkdir(holder, { mode: 0o700 });
  await chmod(holder, 0o700);
  const moved = join(holder, 'tree');
  await rename(path, moved);
  // A tree whose removal stops (a folder that cannot be taken over) is left, what remains of it, in
  // its root-only holder, and the engine retries at start.
  await removeTakenTree(moved, new Turns(), holder);
  rmdirSync(holder);
}

/**
 * rm -rf of a tree tasks may have written in. As root: without ever following a link (see
 * removeTaskTree; the tree's parent must be one tasks cannot change, as every caller's is). A
 * non-root engine lacks root's override of folder modes, and in/ (0500) or a folder the task made
 * unwritable would stop it: such folders are opened up (never through a link) and it retries.
 */
export async function removeTree(dir: string): Promise<void> {
  if (amRoot()) {
    await removeTaskTree(dir);
    return;
  }
  try {
    await rm(dir, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await openUp(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

async function openUp(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => null);
  if (!st?.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => undefined);
  for (const name of await readdir(dir).catch(() => [] as string[])) await openUp(join(dir, name));
}
