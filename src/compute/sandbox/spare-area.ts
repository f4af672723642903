// A spare sandbox's area (ISOLATION.md, spare sandboxes): made as a job's is, before any job, then
// renamed to the job that takes it. The workers bound to it follow the folder (a bind mount holds the
// folder, not its name), so under bubblewrap they see the job's area at /job/... from then on.
//
//   <data root>/.staging/.spare-<random>/   0711 root
//       in/     0700 root (empty: no task can list it until the job's inputs are linked and it is closed)
//       out/    0770 root:<spare gid>  empty
//       work/   0770 root:<spare gid>  empty
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { JobArea } from './job-area.js';
import { SandboxError } from './sandbox-error.js';
import { ensureDirSync } from './safe-tree.js';

/** The name every spare's area starts with: never a job id (JOB_ID has no dot), removed at each start. */
export const SPARE_PREFIX = '.spare-';

/** A new spare's name (its area's folder, and what holds its uid in the pool until a job takes it). */
export function spareId(): string {
  return `${SPARE_PREFIX}${randomBytes(8).toString('hex')}`;
}

export function makeSpareArea(iso: { root: boolean }, stagingRoot: string, id: string, uid: number | null): JobArea {
  if (!id.startsWith(SPARE_PREFIX)) throw new SandboxError('invalid_config', `${id} is not a spare's name`);
  const dir = join(resolve(stagingRoot), id);
  const area: JobArea = { jobId: id, dir, input: join(dir, 'in'), output: join(dir, 'out'), work: join(dir, 'work'), uid, gid: uid };
  const rootOwner = iso.root ? { uid: 0, gid: 0 } : null;
  const job = uid === null ? null : { uid: 0, gid: uid };
  ensureDirSync(dir, 0o711, rootOwner);
  ensureDirSync(area.input, 0o700, rootOwner);
  ensureDirSync(area.output, job ? 0o770 : 0o700, job);
  ensureDirSync(area.work, job ? 0o770 : 0o700, job);
  return area;
}

/**
 * Renames a spare's area to `jobId`'s. Refused (SandboxError) when the job already has an area, or
 * when anything is in the spare's folders: a spare hands over an empty area or none.
 */
export function adoptSpareArea(spare: JobArea, jobId: string): JobArea {
  const dir = join(resolve(spare.dir, '..'), jobId);
  // rename(2) replaces an empty folder: never the job's own.
  if (lstatSync(dir, { throwIfNoEntry: false }) !== undefined) throw new SandboxError('unsafe_path', `job ${jobId} already has an area`);
  for (const folder of [spare.dir, spare.input, spare.output, spare.work]) {
    const st = lstatSync(folder);
    if (!st.isDirectory()) throw new SandboxError('unsafe_path', `${folder} is not a folder`);
    const held = readdirSync(folder).filter((name) => folder !== spare.dir || !['in', 'out', 'work'].includes(name));
    if (held.length > 0) throw new SandboxError('unsafe_path', `the spare's ${folder === spare.dir ? 'area' : folder.slice(spare.dir.length + 1)} is not empty`);
  }
  renameSync(spare.dir, dir);
  return { ...spare, jobId, dir, input: join(dir, 'in'), output: join(dir, 'out'), work: join(dir, 'work') };
}
