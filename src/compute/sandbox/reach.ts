// Tasks run as unprivileged uids, which must be able to walk down to the data root (their job
// areas live in it). A data root under a 0700 home folder cannot work; say so plainly instead of
// letting every job fail with "permission denied".
import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Null when every folder from / to the data root lets others through, else why not. */
export async function taskReachProblem(dataRoot: string): Promise<string | null> {
  const real = await realpath(dataRoot);
  const folders: string[] = [];
  for (let dir = real; ; dir = dirname(dir)) {
    folders.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const folder of folders.slice(0, -1)) {
    const { mode } = await stat(folder);
    if ((mode & 0o001) === 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, '0');
      return `tasks run as unprivileged uids and cannot reach the data root ${real}: ${folder} is mode ${octal}; allow others through it (chmod o+x ${folder}) or set data.root to a folder outside it`;
    }
  }
  return null;
}
