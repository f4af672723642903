// What isolation this engine can give its tasks, found once at start-up: whether it runs as root
// (so each job gets its own uid), whether bubblewrap works here (probed by running it, because an
// installed bwrap still fails where user namespaces are off), and where the helper tools live.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { access, readFile, rm, writeFile } from 'node:fs/promises';

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
  /** unshare, mount, mkdir and sh: set when tasks run in namespaces of their own (root, no bubblewrap). */
  unshare: NamespaceTools | null;
}

export interface NamespaceTools {
  unshare: string;
  mount: string;
  mkdir: string;
  sh: string;
}

export interface Isolation {
  /** The engine runs as uid 0: jobs run as their own uid from `taskUids`. */
  root: boolean;
  /** Tasks run inside bubblewrap. */
  bwrap: boolean;
  /**
   * Root without bubblewrap (not installed or not working under `auto`, or `none`): each task runs in its own
   * network (loopback only, down), IPC, UTS, pid and mount namespaces, with private /tmp, /var/tmp,
   * /dev/shm, /run/lock and `privateFolders`, all on one size-limited tmpfs (see namespaceArgs).
   */
  namespaces: boolean;
  /**
   * With `namespaces`: the other world-writable folders with the sticky bit found at start-up
   * (findWorldWritable: temporary folders such as /var/crash), each made private to every task like
   * /tmp. Empty otherwise (bubblewrap shows a task none of them).
   */
  privateFolders: string[];
  /**
   * With `namespaces`: the world-writable folders WITHOUT the sticky bit found at start-up (a shared
   * /opt/tools or /srv/share opened with 0777): their content may be what tasks run, so they stay
   * visible, but read-only to every task. Empty otherwise.
   */
  readOnlyFolders: string[];
  /** The per-job uid range; null when the engine is not root (no uid switch is possible). */
  taskUids: UidRange | null;
  tools: SandboxTools;
  /** One line for /healthz and the gateway's /readyz. */
  summary: string;
  /** Said loudly (a warning) at start-up when tasks run without bubblewrap; null when they do not. */
  warning: string | null;
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

// Runs as root inside the task's fresh namespaces, before the task's own uid is taken. First each
// read-only folder is bound over itself and made read-only. Then ONE tmpfs,
// size-limited, is mounted over the first of the folders to cover; each folder gets a 1777
// subfolder of it bound over it (the first one's own last, hiding the tmpfs root), so everything a
// task writes into /tmp, /var/tmp, /dev/shm, /run/lock and the other world-writable folders
// together is bounded once by that size. When the job's area or the runners lay under a covered
// or read-only folder (a data root in /tmp), they are bound back from descriptors opened before
// the mounts (from the host's mount, so writable as before).
// The text is fixed; paths and sizes come as arguments, never as code. Links are never mounted over.
const NAMESPACE_SETUP = `set -eu
mnt=$1 mk=$2 size=$3 area=$4 runtime=$5 m=$6
shift 6
exec 3<"$area" 4<"$runtime"
rearea= reruntime= j=0
while [ "$j" -lt "$m" ]; do
  d=$1
  shift
  if [ -d "$d" ] && [ ! -h "$d" ]; then
    "$mnt" -c --bind "$d" "$d"
    "$mnt" -c -o remount,bind,ro "$d"
    case "$area/" in "$d"/*) rearea=1 ;; esac
    case "$runtime/" in "$d"/*) reruntime=1 ;; esac
  fi
  j=$((j + 1))
done
n=$1
shift
stage= own= i=0
while [ "$i" -lt "$n" ]; do
  d=$1
  shift
  if [ -d "$d" ] && [ ! -h "$d" ]; then
    if [ -z "$stage" ]; then
      "$mnt" -t tmpfs -o "nosuid,nodev,mode=0700,size=$size" gatehouse-private "$d"
      stage=$d own=$i
    fi
    "$mk" -m 1777 "$stage/$i"
    if [ "$d" != "$stage" ]; then "$mnt" -c --bind "$stage/$i" "$d"; fi
  fi
  i=$((i + 1))
done
if [ -n "$stage" ]; then "$mnt" -c --bind "$stage/$own" "$stage"; fi
if [ -d /dev/mqueue ] && [ ! -h /dev/mqueue ]; then "$mnt" -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue; fi
mask=$(umask)
umask 066
if [ -n "$rearea" ] || [ ! -d "$area" ]; then "$mk" -p "$area"; "$mnt" -c --bind /proc/self/fd/3 "$area"; fi
if [ -n "$reruntime" ] || [ ! -d "$runtime" ]; then "$mk" -p "$runtime"; "$mnt" -c --bind /proc/self/fd/4 "$runtime"; fi
umask "$mask"
exec 3<&- 4<&-
exec "$@"`;

/**
 * The command prefix that puts a task in namespaces of its own (run as root; the task's command,
 * starting with the setpriv that drops root, follows it). `--kill-child` and the pid namespace end
 * every process of the task when it or unshare dies; the mount namespace holds the one private
 * tmpfs (`tmpfsBytes` for all the covered folders together) and a /proc that lists the task's own
 * processes only. `folders` are made private besides PRIVATE_TMP (Isolation.privateFolders),
 * `readOnly` read-only (Isolation.readOnlyFolders).
 */
export function namespaceArgs(
  tools: NamespaceTools,
  o: { tmpfsBytes: number; area: string; runtime: string; folders: readonly string[]; readOnly: readonly string[] },
): string[] {
  const folders = [...PRIVATE_TMP, ...o.folders.filter((f) => !PRIVATE_TMP.includes(f))];
  return [
    tools.unshare, '--net', '--ipc', '--uts', '--pid', '--fork', '--kill-child', '--mount-proc', '--',
    tools.sh, '-c', NAMESPACE_SETUP, 'gatehouse-task', tools.mount, tools.mkdir, String(o.tmpfsBytes), o.area, o.runtime,
    String(o.readOnly.length), ...o.readOnly, String(folders.length), ...folders,
  ];
}

/** Runs a check inside the namespaces a task would get, as a task uid: null when they all work, else why not. */
async function namespaceProblem(tools: NamespaceTools, setpriv: string, uid: number, folders: readonly string[], readOnly: readonly string[]): Promise<string | null> {
  // Pid 1 of its own pid namespace, no network interface but its loopback, a /tmp that is not the host's.
  // Unguessable names, the host's created exclusively (never through a link someone put in /tmp).
  const name = `/tmp/.gatehouse-probe-${randomBytes(12).toString('hex')}`;
  const hostMark = `${name}-host`;
  const taskMark = `${name}-task`;
  const check = `test "$$" = 1 && test "$(grep -c : /proc/net/dev)" = 1 && test ! -e ${hostMark} && : > ${taskMark}`;
  await writeFile(hostMark, '', { mode: 0o600, flag: 'wx' });
  try {
    const ran = await run(setpriv, [
      '--pdeathsig', 'KILL', '--',
      ...namespaceArgs(tools, { tmpfsBytes: 1024 * 1024, area: '/', runtime: '/', folders, readOnly }),
      setpriv, '--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--no-new-privs', '--', '/bin/sh', '-c', check,
    ]);
    if (await access(taskMark).then(() => true, () => false)) return 'a task wrote into the host /tmp: its private tmpfs was not mounted';
    if (ran.code !== 0) return ran.output || `exit ${ran.code}: not pid 1 of its own pid namespace, a network interface besides lo, or the host /tmp`;
    return null;
  } finally {
    await rm(hostMark, { force: true });
    await rm(taskMark, { force: true });
  }
}

export interface DetectOptions {
  mode: SandboxMode;
  /** `engine.task_uids`, e.g. "200000-265535"; required when the engine runs as root. */
  taskUids: string;
  /** The bubblewrap program; by default the first `bwrap` in the system folders. */
  bwrapPath?: string;
  /** util-linux's unshare; by default the first in the system folders. */
  unsharePath?: string;
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
  let bwrapNote = 'engine.sandbox: none';
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

  let namespaces: NamespaceTools | null = null;
  let privateFolders: string[] = [];
  let readOnlyFolders: string[] = [];
  if (root && bwrap === null) {
    // As root without bubblewrap (not installed, or `none`), tasks still get a uid per job and their own
    // network, IPC, pid and mount namespaces from unshare. Refusing here would only make the admin write
    // `engine.sandbox: none`, which gives exactly this: so `auto` takes it and says so loudly, and
    // `engine.sandbox: bwrap` is how a site requires the full sandbox.
    const tools = await namespaceTools(o.unsharePath);
    const open = findWorldWritable();
    privateFolders = open.filter((f) => f.sticky).map((f) => f.path);
    readOnlyFolders = open.filter((f) => !f.sticky).map((f) => f.path);
    const problem = typeof tools === 'string' ? tools : await namespaceProblem(tools, setpriv, taskUids!.first, privateFolders, readOnlyFolders);
    if (problem !== null || typeof tools === 'string') {
      throw new SandboxError(
        'unavailable',
        `the engine runs as root without bubblewrap (${bwrapNote}), and tasks cannot be given network, IPC, pid and mount namespaces of their own here either (${problem}); ` +
          "refusing to start rather than let jobs share the host's network, IPC and /tmp. Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or run the engine where unshare works (a container needs CAP_SYS_ADMIN)",
      );
    }
    namespaces = tools;
  }
  const privateList = [...PRIVATE_TMP, ...privateFolders].join(', ');
  const readOnlyNote = readOnlyFolders.length ? `, ${readOnlyFolders.join(', ')} read-only (world-writable, not sticky)` : '';

  const uid = process.getuid?.() ?? -1;
  const inNamespaces = namespaces !== null;
  const summary = bwrap
    ? `bubblewrap${root ? ', a uid per job' : ", tasks as the engine's uid"}`
    : inNamespaces
      ? `NO BUBBLEWRAP (${bwrapNote}, as root): a uid per job, each task in its own network, IPC, pid and mount namespaces (unshare); tasks see the host's world-readable files`
      : `NO SANDBOX (${bwrapNote}): tasks run as the engine's own uid ${uid} and see and change what it can`;
  const warning = bwrap
    ? null
    : inNamespaces
      ? `the engine runs as root and tasks run without bubblewrap (${bwrapNote}): each job has its own uid and each task its own network, IPC, pid and mount namespaces with private ${privateList}${readOnlyNote}, but they read the host's world-readable files; install bubblewrap and set engine.sandbox to auto for the full sandbox`
      : `tasks run without bubblewrap and without a uid of their own (${bwrapNote}): they can read and change everything the engine can, and reach the network; fit for one trusted user only`;
  return {
    root,
    bwrap: bwrap !== null,
    namespaces: inNamespaces,
    privateFolders,
    readOnlyFolders,
    taskUids,
    tools: { bwrap, prlimit, setpriv, unshare: namespaces },
    summary,
    warning,
    describe(): string {
      const who = taskUids
        ? `each job runs as its own uid from ${taskUids.first}-${taskUids.last}`
        : `tasks run as the engine's own uid ${uid} (the engine is not root, so there is no per-job uid: tasks can read whatever the engine can, unless bubblewrap hides it)`;
      const box = bwrap
        ? `inside bubblewrap (${bwrap}): only /usr, the job's in/out/work and the runners are visible, no network, own pid namespace`
        : inNamespaces
          ? `without bubblewrap (${bwrapNote}): each task in its own network (loopback only, down), IPC, pid and mount namespaces (unshare), with ${privateList} private (one tmpfs per task, at most its memory share in all)${readOnlyNote} and a /proc of its own processes; it still reads the host's world-readable files`
          : `without bubblewrap (${bwrapNote}): tasks see the host's world-readable files, its processes and its network`;
      return `${who}; ${box}; clean environment, rlimits and parent-death kill on every task`;
    },
  };
}

async function namespaceTools(unsharePath: string | undefined): Promise<NamespaceTools | string> {
  const unshare = unsharePath ?? (await findTool('unshare'));
  if (!unshare || !(await executable(unshare))) return `util-linux's unshare not found (${unsharePath ?? SYSTEM_BIN.map((d) => `${d}/unshare`).join(', ')})`;
  const mount = await findTool('mount');
  const mkdir = await findTool('mkdir');
  const sh = await findTool('sh');
  if (!mount || !mkdir || !sh) return `${!mount ? 'mount' : !mkdir ? 'mkdir' : 'sh'} not found in ${SYSTEM_BIN.join(', ')}`;
  return { unshare, mount, mkdir, sh };
}
