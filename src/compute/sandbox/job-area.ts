// The folders a job's tasks work in, and the permissions that keep jobs apart. Everything lives in
// `<data root>/.staging/`, on the data root's file system, so inputs can be hard-linked (no copy)
// and a finished output folder renamed into place atomically.
//
//   <data root>/            0711 root   tasks may pass through, never list
//     <dataset>/            0700 root   no task reads a dataset except through its own in/
//     .staging/             0711 root
//       .runtime/           0755 root   the runner scripts, read by every task
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
import { randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { chmod, chown, copyFile, link, lstat, mkdir, open, readdir, readFile, realpath, rename, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { type Isolation, SandboxError } from './isolation.js';
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

export const STAGING_DIR = '.staging';
export const RUNTIME_DIR = '.runtime';
/** Inside a job's area: where out/ is sealed, out of the tasks' reach. */
export const SEALED_DIR = '.sealed';
/** Beside a tree being removed: the root-only folder it is moved into first. */
export const REMOVING_PREFIX = '.removing-';

const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NOFOLLOW = constants.O_NOFOLLOW;

function amRoot(): boolean {
  return process.getuid?.() === 0;
}

/** A folder with exactly this owner and mode, created if missing; refused if something else sits there. */
async function ensureDir(path: string, mode: number, owner: { uid: number; gid: number } | null): Promise<void> {
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
 * Creates (or, after a restart, re-checks) a job's area. Idempotent: out/ and work/ keep their
 * files; in/ is rebuilt to hold exactly `inputs`, each a regular file linked by its base name.
 */
export async function prepareJobArea(
  iso: Isolation,
  o: { stagingRoot: string; jobId: string; uid: number | null; inputs: string[] },
): Promise<JobArea> {
  if (!JOB_ID.test(o.jobId)) throw new SandboxError('unsafe_path', `job id ${JSON.stringify(o.jobId)} is not a plain name ([A-Za-z0-9_-], up to 128)`);
  if (iso.root && o.uid === null) throw new SandboxError('invalid_config', `job ${o.jobId}: the engine runs as root, so the job needs its own uid (tasks never run as root)`);
  if (!iso.root && o.uid !== null) throw new SandboxError('invalid_config', `job ${o.jobId}: the engine is not root and cannot give the job uid ${o.uid}`);
  if (o.uid !== null && iso.taskUids && (o.uid < iso.taskUids.first || o.uid > iso.taskUids.last)) {
    throw new SandboxError('invalid_config', `job ${o.jobId}: uid ${o.uid} is outside engine.task_uids ${iso.taskUids.first}-${iso.taskUids.last}`);
  }
  const staging = resolve(o.stagingRoot);
  if (!(await lstat(staging)).isDirectory()) throw new SandboxError('unsafe_path', `${staging} is not a folder`);

  const dir = join(staging, o.jobId);
  const area: JobArea = { jobId: o.jobId, dir, input: join(dir, 'in'), output: join(dir, 'out'), work: join(dir, 'work'), uid: o.uid, gid: o.uid };
  const job = o.uid === null ? null : { uid: o.uid, gid: o.uid };
  const rootOwner = iso.root ? { uid: 0, gid: 0 } : null;
  await ensureDir(dir, 0o711, rootOwner);
  // in/ is filled while only the engine may write it, then closed: owned by root and readable
  // through the job's group, so the task reads it but cannot plant a link in it that a root reader
  // of in/ would follow. (A non-root engine owns it and reads it, 0500.)
  await ensureDir(area.input, 0o700, rootOwner);
  await linkInputs(iso, area.input, o.inputs);
  await ensureDir(area.input, job ? 0o550 : 0o500, job ? { uid: 0, gid: job.gid } : null);
  // Root's folders, the job's through its group: the task writes in them but cannot chmod them,
  // so no other job's uid can ever be let in to plant something (see sealJobOutput).
  await ensureDir(area.output, job ? 0o770 : 0o700, job ? { uid: 0, gid: job.gid } : null);
  await ensureDir(area.work, job ? 0o770 : 0o700, job ? { uid: 0, gid: job.gid } : null);
  return area;
}

async function linkInputs(iso: Isolation, inDir: string, inputs: string[]): Promise<void> {
  const names = new Set<string>();
  for (const src of inputs) {
    if (!isAbsolute(src)) throw new SandboxError('unsafe_path', `input ${src} is not an absolute path`);
    const name = basename(src);
    if (names.has(name)) throw new SandboxError('unsafe_path', `two inputs are named ${name}; in/ holds each partition under its own name`);
    names.add(name);
  }
  await inBatches(inputs, async (src) => {
    const name = basename(src);
    const st = await lstat(src);
    if (!st.isFile()) throw new SandboxError('unsafe_path', `input ${src} is not a regular file`);

    const dest = join(inDir, name);
    await rm(dest, { force: true });
    let linked = true;
    try {
      await link(src, dest);
    } catch (err) {
      // Another file system (EXDEV), or protected_hardlinks for a non-root engine (EPERM): copy.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      await copyFile(src, dest, constants.COPYFILE_EXCL);
      linked = false;
    }
    // Through a descriptor opened without following links, so the owner and mode set below land
    // on the partition we linked and nothing else.
    const fh = await open(dest, constants.O_RDONLY | NOFOLLOW);
    try {
      const fst = await fh.stat();
      if (!fst.isFile() || (linked && (fst.ino !== st.ino || fst.dev !== st.dev))) {
        throw new SandboxError('unsafe_path', `input ${src} changed while it was being linked`);
      }
      if (iso.root) {
        // The inode is the dataset's own: readable by every task uid, writable by none. What hides
        // it from other jobs is the dataset folder's 0700, not this mode.
        await fh.chown(0, 0);
        await fh.chmod(0o644);
      }
    } finally {
      await fh.close();
    }
  });
  for (const name of await readdir(inDir)) {
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
  await rm(path, { recursive: true, force: true });
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o400);
  try {
    await fh.writeFile(text);
    if (area.uid !== null) await fh.chown(area.uid, area.gid ?? area.uid);
    await fh.chmod(0o400);
  } finally {
    await fh.close();
  }
  return path;
}

/**
 * Readies out/ to become a dataset. Ends every process of the job's uid (so nothing writes on),
 * then moves out/ into `.sealed/`, a folder only root may enter, and takes it over (root, 0700)
 * before looking inside: from then on no task, whatever it planted or holds open, can add, remove or
 * swap a name in it. Refuses anything but plain single-link files (a link, a hard link to a file
 * elsewhere, a FIFO or a device would give the dataset, or the engine, a reach outside out/), and
 * hands each file to root (0644) through a descriptor opened without following links and checked
 * to be the file listed. Returns the sealed folder (commit it from there) and its file names, sorted.
 *
 * `namespaced`: the job ran inside bubblewrap, so its processes died with its pid namespace when its
 * workers were killed or exited, and it had a private /tmp: the uid-wide kill and the sweep are not needed.
 */
export async function sealJobOutput(area: JobArea, o: { namespaced?: boolean } = {}): Promise<{ folder: string; files: string[] }> {
  if (area.uid !== null && !o.namespaced) await killUidProcesses(area.uid);
  const st = await lstat(area.output);
  if (!st.isDirectory()) throw new SandboxError('unsafe_path', `${area.output} is not a folder`);
  const holder = join(area.dir, SEALED_DIR);
  await removeTree(holder); // an earlier attempt's, root's own
  await mkdir(holder, { mode: 0o700 });
  await chmod(holder, 0o700);
  const folder = join(holder, 'out');
  await rename(area.output, folder);
  await takeOverDir(folder, st);
  const names = (await readdir(folder)).sort();
  await inBatches(names, async (name) => {
    const path = join(folder, name);
    const est = await lstat(path);
    if (!est.isFile()) throw new SandboxError('unsafe_path', `job ${area.jobId} wrote ${name}, which is not a plain file; outputs are plain files`);
    if (est.nlink !== 1) throw new SandboxError('unsafe_path', `job ${area.jobId} wrote ${name} as a hard link to another file; outputs are files of their own`);
    const fh = await open(path, constants.O_RDONLY | NOFOLLOW | constants.O_NONBLOCK);
    try {
      const fst = await fh.stat();
      if (!fst.isFile() || fst.ino !== est.ino || fst.dev !== est.dev || fst.nlink !== 1) throw new SandboxError('unsafe_path', `${name} changed while being sealed`);
      if (amRoot()) await fh.chown(0, 0);
      await fh.chmod(0o644);
    } finally {
      await fh.close();
    }
  });
  return { folder, files: names };
}

/**
 * Makes `dir` root's (0700) through a descriptor opened without following links, checking it is
 * the folder `expected` describes when given. Only for a folder whose parent no task can change.
 */
async function takeOverDir(dir: string, expected?: { ino: number; dev: number }): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isDirectory() || (expected && (st.ino !== expected.ino || st.dev !== expected.dev))) {
      throw new SandboxError('unsafe_path', `${dir} changed while it was being taken over`);
    }
    if (amRoot()) await fh.chown(0, 0);
    await fh.chmod(0o700);
  } finally {
    await fh.close();
  }
}

/**
 * Takes a whole tree from the tasks, top down: each folder becomes root's and 0700 before its
 * entries are listed, so none of them can be swapped for a link afterwards (even by a task holding
 * a descriptor on the folder: the kernel checks its permission anew at each change). Links, files,
 * FIFOs and devices are left as they are: unlinking never follows them.
 */
async function takeOverTree(dir: string): Promise<void> {
  await takeOverDir(dir);
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await lstat(path)).isDirectory()) await takeOverTree(path);
  }
}

/**
 * As root, removes a tree tasks could write in without ever following a link: it is renamed into a
 * new root-only folder beside it (so no task can reach it by name), taken over (so none can change
 * it through a descriptor), then deleted. `path`'s parent must be one tasks cannot rename entries
 * in: root's, or sticky (/tmp) with `path` not theirs to move once their processes are gone.
 */
async function removeTaskTree(path: string): Promise<void> {
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
  // A tree not wholly taken over is left in its root-only holder (the engine retries at start):
  // deleting it half-held could follow a link a task swapped in.
  await takeOverTree(moved);
  await rm(holder, { recursive: true, force: true });
}

// World-writable places a task without bubblewrap can leave files in (with namespaces they are
// private tmpfs mounts, gone with the task; the sweep is for whatever got past that).
const SHARED_TMP = ['/tmp', '/var/tmp', '/dev/shm', '/run/lock'];

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

/** What `uid` left in the shared temporary folders and in SysV IPC. Only for a uid with no process left. */
export async function sweepUid(uid: number): Promise<void> {
  if (!amRoot()) return;
  for (const dir of SHARED_TMP) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(dir, name);
      const st = await lstat(path).catch(() => null);
      if (st && st.uid === uid) await removeTaskTree(path);
    }
  }
  await removeIpcObjects(uid);
}

const IPC_KINDS = [
  { file: '/proc/sysvipc/shm', id: 'shmid', flag: '-m' },
  { file: '/proc/sysvipc/msg', id: 'msqid', flag: '-q' },
  { file: '/proc/sysvipc/sem', id: 'semid', flag: '-s' },
] as const;

/** Removes the SysV shared memory segments, message queues and semaphore sets `uid` owns or made. */
async function removeIpcObjects(uid: number): Promise<void> {
  const ipcrm = ['/usr/bin/ipcrm', '/bin/ipcrm'].find((f) => existsSync(f));
  for (const kind of IPC_KINDS) {
    const text = await readFile(kind.file, 'utf8').catch(() => '');
    const [header, ...rows] = text.split('\n').filter((l) => l.trim() !== '');
    if (header === undefined) continue;
    const cols = header.trim().split(/\s+/);
    const at = (name: string) => cols.indexOf(name);
    const ids = rows
      .map((r) => r.trim().split(/\s+/))
      .filter((f) => f[at('uid')] === String(uid) || f[at('cuid')] === String(uid))
      .map((f) => f[at(kind.id)]!)
      .filter((id) => /^\d+$/.test(id));
    if (ids.length === 0) continue;
    if (!ipcrm) throw new SandboxError('unavailable', `uid ${uid} left SysV IPC objects and util-linux's ipcrm is not installed to remove them`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(ipcrm, ids.flatMap((id) => [kind.flag, id]), { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
      child.on('error', reject);
      child.on('close', () => resolve()); // one gone meanwhile is no failure
    });
  }
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

/**
 * Makes the data root safe to run tasks beside (when the engine is root): the root 0711, every
 * dataset (and namespace) folder 0700 root, loose files without group/other access, `.staging`
 * 0711 and `.staging/.runtime` 0755. Creates `.staging` and `.runtime` in every mode. Refuses a
 * data root that task uids cannot reach (a parent folder without o+x, e.g. under /root).
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

export const SANDBOX_PATHS: TaskPaths = { input: '/job/in', output: '/job/out', work: '/job/work', runtime: '/job/runtime' };

export function taskPaths(iso: Isolation, area: JobArea, runtimeDir: string): TaskPaths {
  if (iso.bwrap) return { ...SANDBOX_PATHS };
  return { input: area.input, output: area.output, work: area.work, runtime: runtimeDir };
}

/** File-by-file work with a few operations in flight: each is a syscall or two on the thread pool. */
async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<void>, width = 16): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}
