// What a task uid leaves behind outside its job's area once its processes are gone: files at the
// top of the shared temporary folders and SysV IPC objects. Apart from the job area because it is
// about the uid, not the folders: removing a job's area calls it, so the next job given the uid
// inherits nothing.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxError } from './sandbox-error.js';
import { amRoot, removeTaskTree } from './safe-tree.js';

// World-writable places a task without bubblewrap can leave files in (with namespaces they are
// private tmpfs mounts, gone with the task; the sweep is for whatever got past that).
const SHARED_TMP = ['/tmp', '/var/tmp', '/dev/shm', '/run/lock'];

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
