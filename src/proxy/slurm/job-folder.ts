// A Slurm job's folder on the file system the gateway host and the nodes share (slurm.jobs_dir):
//
//   <jobs_dir>/<job id>/            made by the gateway, then given to the person's account (0700)
//     spec.json                     {id, spec, granted, data_root: in/}: what bin/gatehouse-task.js reads
//     in/<input>/                   the granted input, copied from data.root by the gateway: the tasks
//                                   never need to read data.root, which stays closed to people's accounts
//     out/ done/ work/              made by the tasks, as the person
//     log-<partition>.txt           each task's output, written by slurmd as the person
//
// Once the folder is the person's, everything in it is theirs to replace with a link. The gateway,
// which may be root, reads from it only through openOwned: every step without following a link, the
// file a plain file of one link owned by the account, read up to a bound. Nothing it commits is
// renamed out of the folder: it is copied (see output-commit.ts), so the person keeps no hold on it.
import { constants } from 'node:fs';
import { chmod, copyFile, lchown, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
  // The jobs folder lets people's accounts reach their own folder, and list nothing.
  await mkdir(jobsDir, { recursive: true, mode: 0o711 });
  await chmod(jobsDir, 0o711);
  const dir = jobFolderOf(jobsDir, job.id);
  await rm(dir, { recursive: true, force: true }); // rm never follows a link inside
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

/** Removes the folder: the staged input, the outputs, the logs. */
export async function removeJobFolder(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
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
