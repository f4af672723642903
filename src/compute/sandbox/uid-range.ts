// The range of uids the engine gives jobs (`engine.task_uids`): parsed, and refused where it could
// reach a real account (system uids, nobody, a local user or group, a subordinate-id range). Apart
// because the uid pool and the start-up probe both depend on it.
import { readFile } from 'node:fs/promises';
import { SandboxError } from './sandbox-error.js';

export interface UidRange {
  first: number;
  last: number;
}

// Below 1000 are system accounts; 65534/65535 are nobody/nogroup (NFS maps squashed root there);
// above 2^31-1 some tools read uids as signed.
const SYSTEM_UIDS = 999;
const NOBODY = [65534, 65535];
const MAX_UID = 2 ** 31 - 1;

/** Parses `engine.task_uids` ("200000-265535"), refusing ranges that could reach a real account. */
export function parseUidRange(text: string): UidRange {
  const m = /^\s*(\d{1,10})\s*-\s*(\d{1,10})\s*$/.exec(text);
  if (!m) throw new SandboxError('invalid_config', `engine.task_uids: expected "first-last" (e.g. "200000-265535"), got ${JSON.stringify(text)}`);
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first > last) throw new SandboxError('invalid_config', `engine.task_uids: first ${first} is above last ${last}`);
  if (first <= SYSTEM_UIDS) throw new SandboxError('invalid_config', `engine.task_uids: ${first}-${last} overlaps the system uids 0-${SYSTEM_UIDS}; start at ${SYSTEM_UIDS + 1} or above`);
  if (last > MAX_UID) throw new SandboxError('invalid_config', `engine.task_uids: ${last} is above ${MAX_UID}`);
  const nobody = NOBODY.find((u) => u >= first && u <= last);
  if (nobody !== undefined) throw new SandboxError('invalid_config', `engine.task_uids: ${first}-${last} holds ${nobody} (nobody/nogroup), which files may already belong to`);
  return { first, last };
}

/**
 * Refuses a range that a local account, group or subordinate-id range already uses: a job running
 * as uid 1000 could read that user's files. Directory (LDAP/SSSD) accounts are not visible here.
 */
export async function refuseUsedIds(range: UidRange): Promise<void> {
  const inRange = (n: number): boolean => n >= range.first && n <= range.last;
  for (const [file, kind] of [['/etc/passwd', 'user'], ['/etc/group', 'group']] as const) {
    for (const line of await lines(file)) {
      const [name, , id] = line.split(':');
      if (id !== undefined && /^\d+$/.test(id) && inRange(Number(id))) {
        throw new SandboxError('invalid_config', `engine.task_uids: ${range.first}-${range.last} holds ${id}, the ${kind} ${name} in ${file}; pick a range no account uses`);
      }
    }
  }
  for (const file of ['/etc/subuid', '/etc/subgid']) {
    for (const line of await lines(file)) {
      const [name, start, count] = line.split(':');
      if (!start || !count || !/^\d+$/.test(start) || !/^\d+$/.test(count)) continue;
      const a = Number(start);
      const b = a + Number(count) - 1;
      if (a <= range.last && b >= range.first) {
        throw new SandboxError('invalid_config', `engine.task_uids: ${range.first}-${range.last} overlaps ${a}-${b}, given to ${name} in ${file} (rootless containers)`);
      }
    }
  }
}

async function lines(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
