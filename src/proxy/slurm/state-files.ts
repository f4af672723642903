// Reading what an older gateway left in state.dir/slurm (imported into the store once, job-records.ts)
// without trusting the path: the gateway is often root, and a less privileged process that could write
// near state.dir must not make it read another file (a link, at any step), block on a FIFO, or load an
// unbounded file. The folder and each file must be the gateway's own: not a link, owned by its uid,
// not writable by group or others; a file is a plain file of one link, read up to a bound. Every name
// is looked up in the folder already opened (openat through /proc/self/fd), never by path again.
import { constants } from 'node:fs';
import { type FileHandle, open, opendir } from 'node:fs/promises';

const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function me(): number {
  return process.getuid?.() ?? 0;
}

/** Opens `name` in `parent` (a path, or an open folder) as the gateway's own folder; null when absent. */
export async function openOwnFolder(parent: string | FileHandle, name?: string): Promise<FileHandle | null> {
  const path = typeof parent === 'string' ? parent : `/proc/self/fd/${parent.fd}/${name}`;
  const shown = typeof parent === 'string' ? parent : name;
  let fh: FileHandle;
  try {
    fh = await open(path, FLAGS | constants.O_DIRECTORY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw new Error(`${shown} is a link or not a folder; it is not read`);
    throw err;
  }
  const st = await fh.stat();
  if (st.uid !== me() || (st.mode & 0o022) !== 0) {
    await fh.close();
    throw new Error(`${shown} is not the gateway's own folder (uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}); it is not read`);
  }
  return fh;
}

/** The names in an open folder. */
export async function namesIn(folder: FileHandle): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of await opendir(`/proc/self/fd/${folder.fd}`)) names.push(entry.name);
  return names;
}

/**
 * Reads `name` in `folder`, a plain file of one link of the gateway's own: its first maxBytes, or,
 * with `whole`, all of it and refused when larger. Null when absent.
 */
export async function readOwnFile(folder: FileHandle, name: string, maxBytes: number, whole: boolean): Promise<Buffer | null> {
  let fh: FileHandle;
  try {
    fh = await open(`/proc/self/fd/${folder.fd}/${name}`, FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new Error(`${name} is a link; it is not read`);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.nlink !== 1 || st.uid !== me() || (st.mode & 0o022) !== 0) throw new Error(`${name} is not a plain file of the gateway's own (uid ${st.uid}, ${st.nlink} links); it is not read`);
    if (whole && st.size > maxBytes) throw new Error(`${name} is larger than ${maxBytes} bytes; it is not read`);
    const buffer = Buffer.alloc(Math.min(st.size, maxBytes));
    let at = 0;
    while (at < buffer.length) {
      const { bytesRead } = await fh.read(buffer, at, buffer.length - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return buffer.subarray(0, at);
  } finally {
    await fh.close();
  }
}
