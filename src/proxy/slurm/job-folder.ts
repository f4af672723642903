// A Slurm job's folder on the file system the gateway host and the nodes share (slurm.jobs_dir):
//
//   <jobs_dir>/<job id>/            made by the gateway, then given to the person's account (0700)
//     spec.json                     {id, spec, granted, data_root: in/}: what bin/gatehouse-task.js reads
//     in/<input>/                   the granted input, copied from data.root by the gateway: the tasks
//                                   never need to read data.root, which stays closed to people's accounts
//     out/ done/ work/              made by the tasks, as the person
//     log-<partition>.txt           each task's output, written by slurmd as the person
//
// Once the folder is the person's, everything in it is theirs to replace with a link, at any moment
// (their processes may outlive the job: proctrack/linuxproc loses a double fork). The gateway, which
// may be root, reads from it only through openOwned: every step without following a link, the file
// a plain file of one link owned by the account, read up to a bound. Nothing it commits is renamed
// out of the folder: it is copied (see output-commit.ts), so the person keeps no hold on it. It
// removes the folder only through descriptors (removeJobFolder), never by path.
//
// All of it rests on jobs_dir being the gateway's (openJobsDir): nobody else may create, rename or
// remove a name in it, or the job folder itself could be swapped for a link between two steps.
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, lchown, lstat, mkdir, open, opendir, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { OpenDataset } from '../../catalog/index.js';
import { MANIFEST_FILE } from '../../catalog/index.js';
import { GatehouseError } from '../../wire/index.js';
import type { SlurmAccount } from './client.js';

/** What spec.json holds, for the task. */
export interface TaskJobFile {
  id: string;
  spec: unknown;
  granted: unknown;
}

/** The folder of job `id` (the id is the gateway's: letters, digits and dashes). */
export function jobFolderOf(jobsDir: string, id: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new GatehouseError('invalid_request', `not a job id: ${JSON.stringify(id)}`);
  return join(jobsDir, id);
}

/**
 * Makes the job's folder anew (a leftover of an interrupted submission is removed first), copies
 * the granted input into it and writes spec.json. The folder is still the gateway's: giveToAccount
 * hands it over once Slurm has said whom the job runs as.
 */
export async function prepareJobFolder(jobsDir: string, job: TaskJobFile, input: OpenDataset, inputName: string): Promise<string> {
  await openJobsDir(jobsDir);
  const dir = jobFolderOf(jobsDir, job.id);
  await removeJobFolder(dir); // a leftover may have been the person's already
  await mkdir(dir, { mode: 0o700 });
  const staged = join(dir, 'in', inputName);
  await mkdir(staged, { recursive: true, mode: 0o755 });
  for (const p of input.manifest.partitions) {
    // Read from the dataset's real folder (links were refused when it was opened); written new here.
    await copyFile(join(input.dir, p.file), join(staged, p.file), constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    await chmod(join(staged, p.file), 0o644);
  }
  await writeFile(join(staged, MANIFEST_FILE), `${JSON.stringify(input.manifest, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
  await writeFile(join(dir, 'spec.json'), `${JSON.stringify({ ...job, data_root: join(dir, 'in') })}\n`, { mode: 0o644, flag: 'wx' });
  return dir;
}

/** Gives the folder (only the folder: its contents stay the gateway's and read-only) to the account. */
export async function giveToAccount(dir: string, account: SlurmAccount): Promise<void> {
  const me = process.getuid?.() ?? 0;
  if (me === account.uid) return;
  try {
    await lchown(dir, account.uid, account.gid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') {
      throw new GatehouseError('not_ready', "the gateway cannot give the job's folder to your account (it needs CAP_CHOWN on slurm.jobs_dir); tell your administrator");
    }
    throw err;
  }
}

/**
 * Makes jobs_dir if missing and checks that only the gateway (or root) can change it or any folder
 * above it, so that `<jobs_dir>/<id>` always names the folder the gateway made. A folder above may
 * be writable by others only with the sticky bit (/tmp, a scratch file system), where nobody can
 * rename what is not theirs. jobs_dir itself becomes 0711: people's accounts reach their own
 * folder in it, and list nothing. Refused with not_ready naming slurm.jobs_dir (the administrator's
 * to fix): a person who made the folder first, or put a link at its name, would own every job's.
 */
export async function openJobsDir(jobsDir: string): Promise<void> {
  const path = resolve(jobsDir);
  const refuse = (why: string) => new GatehouseError('not_ready', `slurm.jobs_dir (${path}): ${why}; the Slurm backend will not make job folders there`);
  // Slurm reads % and a backslash in the log path it is given (<dir>/log-%a.txt) as its own patterns.
  if (/[%\\\n]/.test(path)) throw refuse('the path has a %, a backslash or a newline, which Slurm reads in file names');
  const me = process.getuid?.() ?? 0;
  const myGroup = process.getgid?.() ?? 0;
  const parts = path.split('/').filter((p) => p !== '');
  let at = '/';
  for (const [i, name] of parts.entries()) {
    at = join(at, name);
    const last = i === parts.length - 1;
    let st = await lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (st === null) {
      // Made by whoever comes first (a sticky folder above lets anyone): checked below either way.
      await mkdir(at, { mode: 0o711 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      st = await lstat(at);
    }
    if (st.isSymbolicLink()) throw refuse(`${at} is a symbolic link; give the real path`);
    if (!st.isDirectory()) throw refuse(`${at} is not a folder`);
    if (st.uid !== 0 && st.uid !== me) throw refuse(`${at} belongs to uid ${st.uid}; it and every folder above it must be root's or the gateway's`);
    const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0 && st.gid !== myGroup);
    const sticky = (st.mode & 0o1000) !== 0;
    if (othersWrite && (last || !sticky)) throw refuse(`${at} is writable by others (mode ${(st.mode & 0o7777).toString(8)})`);
  }
  await chmod(path, 0o711); // checked above: a real folder of the gateway's, in folders nobody else can change
}

/** Nesting the removal follows with open folders before it moves what is deeper up to the top. */
const REMOVE_DEPTH = 16;
/** Passes over the top folder before giving up on a folder something keeps filling. */
const REMOVE_PASSES = 10_000;

/**
 * Removes the job's folder: the staged input, the outputs, the logs, and whatever the person left.
 * Every entry is reached from a descriptor of the folder above it (openat through /proc/self/fd),
 * so swapping a folder for a link while it is removed leads nowhere else: fs.rm walks by path, and
 * a folder renamed away with a link put in its place made root delete the same names wherever the
 * link pointed. Nothing is followed onto another file system (a mount inside is left, and the
 * removal fails). Deep nesting is moved up to the top folder rather than held open level by level.
 */
export async function removeJobFolder(dir: string): Promise<void> {
  let top: Handle;
  try {
    top = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ELOOP' || code === 'ENOTDIR') return unlink(dir); // a link or a file in the gateway's own jobs_dir
    throw err;
  }
  try {
    const { dev } = await top.stat();
    for (let pass = 0; ; pass++) {
      if (!(await emptyFolder(top, dev, 0, top))) break;
      if (pass >= REMOVE_PASSES) throw new GatehouseError('internal', `${dir} is still being filled after ${REMOVE_PASSES} passes; it is left`);
    }
  } finally {
    await top.close();
  }
  await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Removes what is in `folder`; true when the top folder must be gone over again (moved-up or new entries). */
async function emptyFolder(folder: Handle, dev: number, depth: number, top: Handle): Promise<boolean> {
  let again = false;
  // readdir through the descriptor: opendir opens /proc/self/fd/N, which is the folder already open.
  const entries = await opendir(`/proc/self/fd/${folder.fd}`, { bufferSize: 256 });
  for await (const entry of entries) {
    if (await removeEntry(folder, entry.name, dev, depth, top)) again = true;
  }
  if (depth === 0) {
    // Entries made or moved up while the folder was read may not have been listed.
    const left = await opendir(`/proc/self/fd/${folder.fd}`);
    try {
      if ((await left.read()) !== null) again = true;
    } finally {
      await left.close();
    }
  }
  return again;
}

async function removeEntry(parent: Handle, name: string, dev: number, depth: number, top: Handle): Promise<boolean> {
  const at = `/proc/self/fd/${parent.fd}/${name}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await unlink(at); // a file, a link, a FIFO, a socket: the name goes, nothing is followed
      return false;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code !== 'EISDIR' && code !== 'EPERM') throw err;
    }
    if (depth + 1 >= REMOVE_DEPTH) {
      try {
        await rename(at, `/proc/self/fd/${top.fd}/.deep-${randomUUID()}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
      return true;
    }
    let child: Handle;
    try {
      child = await open(at, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code === 'ELOOP' || code === 'ENOTDIR') continue; // swapped for a link or a file meanwhile: unlink that
      throw err;
    }
    let again: boolean;
    try {
      if ((await child.stat()).dev !== dev) throw new GatehouseError('internal', `a file system is mounted at ${name} inside a job folder; it is left`);
      again = await emptyFolder(child, dev, depth + 1, top);
    } finally {
      await child.close();
    }
    try {
      await rmdir(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return again;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return true; // filled meanwhile: the next pass
      if (code === 'ENOTDIR') continue;
      throw err;
    }
    return again;
  }
  return true;
}

/**
 * Reads `parts` under `dir` (a folder the gateway made, in a folder only it can write) without
 * following a link at any step, as a plain file of one link owned by `uid`, at most `maxBytes`.
 * Null when something on the way is missing; a GatehouseError when it is not what the job's
 * account could have written (a link, a FIFO, a second name of another file, someone else's).
 */
export async function readOwned(dir: string, parts: readonly string[], uid: number, maxBytes: number, from = 0): Promise<Buffer | null> {
  const fh = await openOwned(dir, parts, uid);
  if (fh === null) return null;
  try {
    const size = (await fh.stat()).size;
    if (from >= size) return Buffer.alloc(0);
    const length = Math.min(size - from, maxBytes);
    const buffer = Buffer.allocUnsafe(length);
    let read = 0;
    while (read < length) {
      const { bytesRead } = await fh.read(buffer, read, length - read, from + read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return buffer.subarray(0, read);
  } finally {
    await fh.close();
  }
}

/** The last `maxBytes` (at most) of a file, read as readOwned does: a task's last line without reading its whole log. */
export async function readOwnedTail(dir: string, parts: readonly string[], uid: number, maxBytes: number): Promise<Buffer | null> {
  const fh = await openOwned(dir, parts, uid);
  if (fh === null) return null;
  let size: number;
  try {
    size = (await fh.stat()).size;
  } finally {
    await fh.close();
  }
  return readOwned(dir, parts, uid, maxBytes, Math.max(0, size - maxBytes));
}

type Handle = Awaited<ReturnType<typeof open>>;

/** Opens `parts` under `dir` as readOwned describes; the caller closes it. */
export async function openOwned(dir: string, parts: readonly string[], uid: number): Promise<Handle | null> {
  if (parts.length === 0 || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('/'))) throw new GatehouseError('internal', `not a path inside a job folder: ${parts.join('/')}`);
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let current: Handle;
  try {
    current = await open(dir, flags | constants.O_DIRECTORY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    for (const [i, name] of parts.entries()) {
      const last = i === parts.length - 1;
      // openat(2) through /proc: the name is looked up in the folder already opened, never anew.
      let next: Handle;
      try {
        next = await open(`/proc/self/fd/${current.fd}/${name}`, flags | (last ? 0 : constants.O_DIRECTORY));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return null;
        if (code === 'ELOOP' || code === 'ENOTDIR') throw new GatehouseError('forbidden', `${parts.slice(0, i + 1).join('/')} in the job's folder is a link or not a folder; it is not read`);
        throw err;
      }
      await current.close();
      current = next;
      const st = await current.stat();
      const mine = st.uid === uid || st.uid === (process.getuid?.() ?? 0);
      if (last ? !st.isFile() || st.nlink !== 1 || st.uid !== uid : !st.isDirectory() || !mine) {
        throw new GatehouseError('forbidden', `${parts.slice(0, i + 1).join('/')} in the job's folder is not ${last ? "a plain file of the job's account" : 'a folder of the job'}; it is not read`);
      }
    }
    const result = current;
    current = undefined as unknown as Handle;
    return result;
  } finally {
    if (current !== undefined) await current.close();
  }
}
