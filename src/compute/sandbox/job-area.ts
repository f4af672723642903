// The folders a job's tasks work in, and the permissions that keep jobs apart. Everything lives in
// `<data root>/.staging/`, on the data root's file system, so inputs can be hard-linked (no copy)
// and a finished output folder renamed into place atomically. (The data root and .staging
// themselves: data-root.ts; how root removes or takes over what tasks wrote: safe-tree.ts.)
//
//   <data root>/.staging/
//       <job id>/           0711 root
//         in/               0550 root:<job gid>  hard links to the job's partitions (inodes 0644 root)
//         out/              0770 root:<job gid>  what the job writes (it cannot open the folder to others)
//         work/             0770 root:<job gid>  cwd, HOME, TMPDIR; the user's source, 0400
//         .sealed/          0700 root            out/ is moved here, out of every task's reach, to be sealed
//       .removing-<random>/ 0700 root            a tree being removed, after it was taken from the tasks
//
// As root the engine never follows a link or trusts a name a task could change: a folder a task
// could write is first moved (rename) into a folder only root can enter, then taken over (owner
// root, mode 0700, through descriptors opened without following links, top down), and only then
// read, written or removed.
import { chmodSync, closeSync, constants, copyFileSync, fchmodSync, fchownSync, fstatSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import type { Isolation } from './isolation.js';
import { SandboxError } from './sandbox-error.js';
import { amRoot, ensureDirSync, NOFOLLOW, removeTree, takeOverDirSync } from './safe-tree.js';
import { inTurns } from './turns.js';
import { sweepUid } from './uid-sweep.js';
import { killUidProcesses } from './uids.js';

export interface JobArea {
  jobId: string;
  /** `<staging>/<job id>`, host path. */
  dir: string;
  input: string;
  output: string;
  work: string;
  /** The job's own uid (and gid, the same number); null when the engine is not root. */
  uid: number | null;
  gid: number | null;
}

/** The job's folders as its tasks see them: host paths in plain mode, /job/... inside bubblewrap. */
export interface TaskPaths {
  input: string;
  output: string;
  work: string;
  runtime: string;
}

/** A sealed output file as the seal found it: the commit lists it without looking again. */
export interface SealedFile {
  ino: number;
  dev: number;
  size: number;
}

/** Inside a job's area: where out/ is sealed, out of the tasks' reach. */
export const SEALED_DIR = '.sealed';

const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Creates (or, after a restart, re-checks) a job's area. Idempotent: out/ and work/ keep their
 * files; in/ is rebuilt to hold exactly `inputs`, each a regular file linked by its base name.
 */
export async function prepareJobArea(
  iso: Isolation,
  o: {
    stagingRoot: string;
    jobId: string;
    uid: number | null;
    inputs: string[];
    /**
     * Called once out/ and work/ are made and in/ is root's alone (0700, not yet filled), before the
     * inputs are linked: workers may start from here (they load the job's source while the inputs
     * are linked), as long as none is handed a partition before this function resolves.
     */
    foldersMade?: (area: JobArea) => Promise<void>;
  },
): Promise<JobArea> {
  if (!JOB_ID.test(o.jobId)) throw new SandboxError('unsafe_path', `job id ${JSON.stringify(o.jobId)} is not a plain name ([A-Za-z0-9_-], up to 128)`);
  if (iso.root && o.uid === null) throw new SandboxError('invalid_config', `job ${o.jobId}: the engine runs as root, so the job needs its own uid (tasks never run as root)`);
  if (!iso.root && o.uid !== null) throw new SandboxError('invalid_config', `job ${o.jobId}: the engine is not root and cannot give the job uid ${o.uid}`);
  if (o.uid !== null && iso.taskUids && (o.uid < iso.taskUids.first || o.uid > iso.taskUids.last)) {
    throw new SandboxError('invalid_config', `job ${o.jobId}: uid ${o.uid} is outside engine.task_uids ${iso.taskUids.first}-${iso.taskUids.last}`);
  }
  const staging = resolve(o.stagingRoot);
  if (!lstatSync(staging).isDirectory()) throw new SandboxError('unsafe_path', `${staging} is not a folder`);

  const dir = join(staging, o.jobId);
  const area: JobArea = { jobId: o.jobId, dir, input: join(dir, 'in'), output: join(dir, 'out'), work: join(dir, 'work'), uid: o.uid, gid: o.uid };
  const job = o.uid === null ? null : { uid: o.uid, gid: o.uid };
  const rootOwner = iso.root ? { uid: 0, gid: 0 } : null;
  // The folders with synchronous calls (a few microseconds each), the first worker waits for them.
  ensureDirSync(dir, 0o711, rootOwner);
  // in/ is filled while only the engine may write it, then closed: owned by root and readable
  // through the job's group, so the task reads it but cannot plant a link in it that a root reader
  // of in/ would follow. (A non-root engine owns it and reads it, 0500.) A task already started
  // (foldersMade) cannot read or write it until it is closed.
  ensureDirSync(area.input, 0o700, rootOwner);
  // Root's folders, the job's through its group: the task writes in them but cannot chmod them,
  // so no other job's uid can ever be let in to plant something (see sealJobOutput).
  ensureDirSync(area.output, job ? 0o770 : 0o700, job ? { uid: 0, gid: job.gid } : null);
  ensureDirSync(area.work, job ? 0o770 : 0o700, job ? { uid: 0, gid: job.gid } : null);
  await o.foldersMade?.(area);
  await linkInputs(iso, area.input, o.inputs);
  ensureDirSync(area.input, job ? 0o550 : 0o500, job ? { uid: 0, gid: job.gid } : null);
  return area;
}

/**
 * How many running jobs' in/ folders hold a hard link to the partition file `file` (that inode):
 * links only the engine makes (in/ is root's, 0550, filled before any task starts and named by the
 * partition's own file name), so a dataset read may accept them as its own (src/catalog's
 * EngineLinks). A link anywhere else (a task's out/ or work/) is not counted: still refused.
 */
export async function jobInputLinks(stagingRoot: string, file: string, dev: number, ino: number): Promise<number> {
  if (!FILE_NAME.test(file)) return 0;
  let count = 0;
  for (const job of await readdir(stagingRoot).catch(() => [] as string[])) {
    if (!JOB_ID.test(job)) continue; // .runtime, .removing-*: never a job's area
    const st = await lstat(join(stagingRoot, job, 'in', file)).catch(() => null);
    if (st?.isFile() && st.dev === dev && st.ino === ino) count += 1;
  }
  return count;
}

async function linkInputs(iso: Isolation, inDir: string, inputs: string[]): Promise<void> {
  const names = new Set<string>();
  for (const src of inputs) {
    if (!isAbsolute(src)) throw new SandboxError('unsafe_path', `input ${src} is not an absolute path`);
    const name = basename(src);
    if (names.has(name)) throw new SandboxError('unsafe_path', `two inputs are named ${name}; in/ holds each partition under its own name`);
    names.add(name);
  }
  // What in/ holds already (a restart's re-check; empty for a new job): only those names need
  // removing before their link is made. in/ is root's alone while it is filled, so no task adds one.
  const present = new Set(readdirSync(inDir));
  await inTurns(inputs, (src) => {
    const name = basename(src);
    const dest = join(inDir, name);
    if (present.has(name)) rmSync(dest, { force: true });
    let linked = true;
    try {
      // link(2) never follows src: a link there is linked as a link, and refused just below.
      linkSync(src, dest);
    } catch (err) {
      // Another file system (EXDEV), or protected_hardlinks for a non-root engine (EPERM): copy. A
      // folder is EPERM too. A copy reads through a link, so src is looked at first.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      if (!lstatSync(src).isFile()) throw new SandboxError('unsafe_path', `input ${src} is not a regular file`);
      copyFileSync(src, dest, constants.COPYFILE_EXCL);
      linked = false;
    }
    // in/ is root's alone while it is filled: the name is what was just linked (or copied), so one
    // lstat tells what that is. A descriptor is opened only to change the inode (once per dataset).
    const st = lstatSync(dest);
    if (!st.isFile()) {
      rmSync(dest, { force: true });
      throw new SandboxError('unsafe_path', `input ${src} is not a regular file`);
    }
    if (!iso.root || (st.uid === 0 && st.gid === 0 && (st.mode & 0o7777) === 0o644)) return;
    // Through a descriptor opened without following links, so the owner and mode set below land
    // on the partition we linked and nothing else.
    const fd = openSync(dest, constants.O_RDONLY | NOFOLLOW);
    try {
      const fst = fstatSync(fd);
      if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) {
        throw new SandboxError('unsafe_path', `input ${src} changed while it was being ${linked ? 'linked' : 'copied'}`);
      }
      // The inode is the dataset's own: readable by every task uid, writable by none. What hides
      // it from other jobs is the dataset folder's 0700, not this mode. Set only where it is not
      // so already (after a dataset's first job it is).
      if (fst.uid !== 0 || fst.gid !== 0) fchownSync(fd, 0, 0);
      if ((fst.mode & 0o7777) !== 0o644) fchmodSync(fd, 0o644);
    } finally {
      closeSync(fd);
    }
  });
  for (const name of present) {
    if (!names.has(name)) await rm(join(inDir, name), { recursive: true, force: true });
  }
}

/**
 * Writes the user's source into work/ (0400, the job's own), returning its host path. Whatever the
 * job left under that name before a restart is removed first, and the file is created exclusively,
 * so a link planted there is never written through.
 */
export async function writeJobSource(area: JobArea, fileName: string, text: string): Promise<string> {
  if (!FILE_NAME.test(fileName)) throw new SandboxError('unsafe_path', `source file name ${JSON.stringify(fileName)} is not a plain name`);
  const path = join(area.work, fileName);
  // Synchronous calls, as the folders: a source is small, and the job's workers wait for it.
  rmSync(path, { recursive: true, force: true });
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o400);
  try {
    writeFileSync(fd, text);
    if (area.uid !== null) fchownSync(fd, area.uid, area.gid ?? area.uid);
    fchmodSync(fd, 0o400);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * Readies out/ to become a dataset. Ends every process of the job's uid (so nothing writes on),
 * then moves out/ into `.sealed/`, a folder only root may enter, and takes it over (root, 0700)
 * before looking inside: from then on no task, whatever it planted or holds open, can add, remove or
 * swap a name in it. Refuses anything but plain single-link files (a link, a hard link to a file
 * elsewhere, a FIFO or a device would give the dataset, or the engine, a reach outside out/), and
 * hands each file to root (0644) by its name, which no task can change any more, never following a
 * link. Returns the sealed folder (commit it from there), its file names, sorted,
 * and each file's identity and size as checked (nothing can change them once sealed).
 *
 * `namespaced`: the job ran inside bubblewrap, so its processes died with its pid namespace when its
 * workers were killed or exited, and it had a private /tmp: the uid-wide kill and the sweep are not needed.
 */
export async function sealJobOutput(area: JobArea, o: { namespaced?: boolean } = {}): Promise<{ folder: string; files: string[]; identities: Map<string, SealedFile> }> {
  if (area.uid !== null && !o.namespaced) await killUidProcesses(area.uid);
  // Synchronous calls up to the listing (a few microseconds each): the person waits for the seal.
  const st = lstatSync(area.output);
  if (!st.isDirectory()) throw new SandboxError('unsafe_path', `${area.output} is not a folder`);
  const holder = join(area.dir, SEALED_DIR);
  if (lstatSync(holder, { throwIfNoEntry: false }) !== undefined) await removeTree(holder); // an earlier attempt's, root's own
  mkdirSync(holder, { mode: 0o700 });
  chmodSync(holder, 0o700);
  const folder = join(holder, 'out');
  renameSync(area.output, folder);
  takeOverDirSync(folder, st);
  const names = readdirSync(folder).sort();
  const identities = new Map<string, SealedFile>();
  // From here no process but root's can add, remove or swap a name in the folder (it is root's, 0700,
  // inside root's 0700 .sealed/: the kernel checks that anew at each change, even through a task's
  // open descriptor), so the inode a name's lstat finds is the one its calls below change: by name,
  // never following a link (lchown; chmod only once lstat found a plain file). Two calls a file where
  // a descriptor took five (open, fstat, fchown, close and the uid's check).
  const root = amRoot();
  await inTurns(names, (name) => {
    const path = join(folder, name);
    const est = lstatSync(path);
    if (!est.isFile()) throw new SandboxError('unsafe_path', `job ${area.jobId} wrote ${name}, which is not a plain file; outputs are plain files`);
    if (est.nlink !== 1) throw new SandboxError('unsafe_path', `job ${area.jobId} wrote ${name} as a hard link to another file; outputs are files of their own`);
    if (root && (est.uid !== 0 || est.gid !== 0)) lchownSync(path, 0, 0);
    // A task's file is most often 0644 already (its umask): one call less per partition.
    if ((est.mode & 0o7777) !== 0o644) chmodSync(path, 0o644);
    identities.set(name, { ino: est.ino, dev: est.dev, size: est.size });
  });
  return { folder, files: names, identities };
}

/**
 * Removes the job's area. With a job uid it first kills whatever still runs as that uid and
 * deletes what the uid left at the top of /tmp, /var/tmp, /dev/shm and /run/lock and its SysV IPC
 * objects, so the next job given the uid inherits nothing.
 */
/** `namespaced`: as for sealJobOutput. */
export async function removeJobArea(area: JobArea, o: { namespaced?: boolean } = {}): Promise<void> {
  if (area.uid !== null && !o.namespaced) {
    await killUidProcesses(area.uid);
    await sweepUid(area.uid);
  }
  await removeTree(area.dir);
}

export const SANDBOX_PATHS: TaskPaths = { input: '/job/in', output: '/job/out', work: '/job/work', runtime: '/job/runtime' };

export function taskPaths(iso: Isolation, area: JobArea, runtimeDir: string): TaskPaths {
  if (iso.bwrap) return { ...SANDBOX_PATHS };
  return { input: area.input, output: area.output, work: area.work, runtime: runtimeDir };
}
