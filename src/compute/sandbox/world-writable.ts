// The world-writable folders where two jobs without bubblewrap could hand each other files: the
// shared temporary folders, and the others found at start-up. Apart because both the start-up probe
// and each task's namespace set-up list them.
import { lstatSync, readdirSync } from 'node:fs';

/** The shared temporary folders a task without bubblewrap could leave things in: always made private. */
export const PRIVATE_TMP = ['/tmp', '/var/tmp', '/dev/shm', '/run/lock'];

/**
 * Where other world-writable folders are likely (Ubuntu's /var/crash and /var/metrics, a /srv/share
 * someone opened up): each folder named here and each folder one level inside it is looked at with
 * lstat at start-up, links never followed. A fixed set rather than the whole disk: start-up stays
 * fast, and no mount of a network file system is walked.
 */
export const WORLD_WRITABLE_PLACES = ['/var', '/run', '/srv', '/opt', '/home', '/mnt', '/media'];

export interface WorldWritable {
  path: string;
  /** Sticky (1777, a temporary folder): made private per task. Not sticky (0777): made read-only. */
  sticky: boolean;
}

/**
 * The world-writable folders (other-writable) in `places` and one level inside them, besides
 * PRIVATE_TMP: where two jobs could still hand each other files, and where what a task leaves would
 * outlive it. A folder inside one already found is not listed (the outer one covers it). Links are
 * not followed: a link to such a folder elsewhere is not one.
 */
export function findWorldWritable(places: readonly string[] = WORLD_WRITABLE_PLACES): WorldWritable[] {
  const found: WorldWritable[] = [];
  const open = (path: string): WorldWritable | null => {
    try {
      const st = lstatSync(path);
      return st.isDirectory() && (st.mode & 0o002) !== 0 ? { path, sticky: (st.mode & 0o1000) !== 0 } : null;
    } catch {
      return null;
    }
  };
  const covered = (path: string): boolean => PRIVATE_TMP.includes(path) || found.some((f) => path.startsWith(`${f.path}/`));
  for (const place of places) {
    if (covered(place)) continue;
    const self = open(place);
    if (self) {
      found.push(self);
      continue;
    }
    let names: string[];
    try {
      if (!lstatSync(place).isDirectory()) continue;
      names = readdirSync(place).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const path = `${place}/${name}`;
      const child = covered(path) ? null : open(path);
      if (child) found.push(child);
    }
  }
  return found;
}
