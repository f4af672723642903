// What isolation this engine can give its tasks, found once at start-up: whether it runs as root
// (so each job gets its own uid), whether bubblewrap works here (probed by running it, because an
// installed bwrap still fails where user namespaces are off), and where the helper tools live.
import { spawn } from 'node:child_process';
import { constants, lstatSync, readlinkSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';

export type SandboxMode = 'auto' | 'bwrap' | 'none';

export interface UidRange {
  first: number;
  last: number;
}

/** Absolute paths of the programs every task launch goes through. */
export interface SandboxTools {
  bwrap: string | null;
  prlimit: string;
  setpriv: string;
}

export interface Isolation {
  /** The engine runs as uid 0: jobs run as their own uid from `taskUids`. */
  root: boolean;
  /** Tasks run inside bubblewrap. */
  bwrap: boolean;
  /** The per-job uid range; null when the engine is not root (no uid switch is possible). */
  taskUids: UidRange | null;
  tools: SandboxTools;
  describe(): string;
}

export type SandboxErrorCode = 'invalid_config' | 'unavailable' | 'uids_exhausted' | 'unsafe_path';

/** Every failure of this room, with a stable code callers branch on. */
export class SandboxError extends Error {
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxError';
  }
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
async function refuseUsedIds(range: UidRange): Promise<void> {
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

// Tools come from the system's own folders, never from PATH: PATH may name folders the task uids
// cannot read (root's home) or that someone else can write.
const SYSTEM_BIN = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'];

async function findTool(name: string): Promise<string | null> {
  for (const dir of SYSTEM_BIN) {
    const file = `${dir}/${name}`;
    if (await executable(file)) return file;
  }
  return null;
}

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface Ran {
  code: number | null;
  output: string;
}

function run(file: string, args: string[], timeoutMs = 10_000): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: null, output: err.message }));
    child.on('close', (code) => resolve({ code, output: output.trim() }));
  });
}

let systemArgs: string[] | undefined;

/**
 * The read-only view of the system every sandbox gets: /usr, the top-level links a merged-/usr
 * system has (/bin -> usr/bin ...) or the real folders an older one has, and the few /etc files
 * programs need to load libraries and check TLS peers. Nothing else of the host is visible.
 */
export function bwrapSystemArgs(): string[] {
  if (!systemArgs) {
    const args = ['--ro-bind', '/usr', '/usr'];
    for (const name of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
      const path = `/${name}`;
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
      else if (st.isDirectory()) args.push('--ro-bind-try', path, path);
    }
    for (const path of ['/etc/ld.so.cache', '/etc/alternatives', '/etc/ssl']) args.push('--ro-bind-try', path, path);
    systemArgs = args;
  }
  return [...systemArgs];
}

/** The namespaces every task gets (and the probe tries): all of them, and no nested user namespace. */
export const BWRAP_NAMESPACES = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];

const probes = new Map<string, Promise<Ran>>();

/** Runs `bwrap ... /usr/bin/true` as the uid tasks will have; cached per (bwrap, uid). */
function probeBwrap(tools: { bwrap: string; setpriv: string }, uid: number | null): Promise<Ran> {
  const key = `${tools.bwrap}\0${uid ?? 'self'}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = (async () => {
      const sandbox = [tools.bwrap, ...BWRAP_NAMESPACES, ...bwrapSystemArgs(), '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--remount-ro', '/', '--', '/usr/bin/true'];
      if (uid === null) return run(sandbox[0]!, sandbox.slice(1));
      return run(tools.setpriv, ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', ...sandbox]);
    })();
    probes.set(key, probe);
  }
  return probe;
}

export interface DetectOptions {
  mode: SandboxMode;
  /** `engine.task_uids`, e.g. "200000-265535"; required when the engine runs as root. */
  taskUids: string;
  /** The bubblewrap program; by default the first `bwrap` in the system folders. */
  bwrapPath?: string;
}

export async function detectIsolation(o: DetectOptions): Promise<Isolation> {
  if (!['auto', 'bwrap', 'none'].includes(o.mode)) {
    throw new SandboxError('invalid_config', `engine.sandbox: expected auto, bwrap or none, got ${JSON.stringify(o.mode)}`);
  }
  const root = process.getuid?.() === 0;
  let taskUids: UidRange | null = null;
  if (root) {
    if (!o.taskUids.trim()) throw new SandboxError('invalid_config', 'engine.task_uids: required when the engine runs as root (tasks never run as root); e.g. "200000-265535"');
    taskUids = parseUidRange(o.taskUids);
    await refuseUsedIds(taskUids);
  } else if (o.taskUids.trim()) {
    parseUidRange(o.taskUids); // a bad value is a bad config even where it goes unused
  }

  const prlimit = await findTool('prlimit');
  const setpriv = await findTool('setpriv');
  if (!prlimit || !setpriv) {
    throw new SandboxError('unavailable', `the engine needs util-linux's ${!prlimit ? 'prlimit' : 'setpriv'} (in ${SYSTEM_BIN.join(', ')}) to limit and contain tasks; install util-linux`);
  }
  const help = await run(setpriv, ['--help']);
  if (!help.output.includes('--pdeathsig')) {
    throw new SandboxError('unavailable', `${setpriv} has no --pdeathsig (util-linux 2.33 or later needed): tasks would outlive a killed engine`);
  }

  let bwrap: string | null = null;
  let bwrapNote = 'sandbox mode none';
  if (o.mode !== 'none') {
    const candidate = o.bwrapPath ?? (await findTool('bwrap'));
    if (!candidate || !(await executable(candidate))) {
      bwrapNote = `bubblewrap not found (${o.bwrapPath ?? SYSTEM_BIN.map((d) => `${d}/bwrap`).join(', ')})`;
      if (o.mode === 'bwrap') throw new SandboxError('unavailable', `engine.sandbox is bwrap but ${bwrapNote}; install the bubblewrap package or set engine.sandbox to auto or none`);
    } else {
      const probe = await probeBwrap({ bwrap: candidate, setpriv }, taskUids?.first ?? null);
      if (probe.code === 0) {
        bwrap = candidate;
      } else {
        const as = taskUids ? `as uid ${taskUids.first}` : 'as the engine user';
        bwrapNote = `bubblewrap at ${candidate} does not work ${as}: ${probe.output || `exit ${probe.code}`}`;
        if (o.mode === 'bwrap') throw new SandboxError('unavailable', `engine.sandbox is bwrap but ${bwrapNote} (are unprivileged user namespaces disabled?)`);
      }
    }
  }

  const uid = process.getuid?.() ?? -1;
  return {
    root,
    bwrap: bwrap !== null,
    taskUids,
    tools: { bwrap, prlimit, setpriv },
    describe(): string {
      const who = taskUids
        ? `each job runs as its own uid from ${taskUids.first}-${taskUids.last}`
        : `tasks run as the engine's own uid ${uid} (the engine is not root, so there is no per-job uid: tasks can read whatever the engine can, unless bubblewrap hides it)`;
      const box = bwrap
        ? `inside bubblewrap (${bwrap}): only /usr, the job's in/out/work and the runners are visible, no network, own pid namespace`
        : `without bubblewrap (${bwrapNote}): tasks see the host's world-readable files, its processes and its network`;
      return `${who}; ${box}; clean environment, rlimits and parent-death kill on every task`;
    },
  };
}
