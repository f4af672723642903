// What isolation this engine can give its tasks, found once at start-up: whether it runs as root
// (so each job gets its own uid), whether bubblewrap works here (probed by running it, because an
// installed bwrap still fails where user namespaces are off), and where the helper tools live.
// The parts it probes live beside it: uid-range.ts, system-tools.ts, bwrap.ts, namespaces.ts,
// world-writable.ts; sandbox-error.ts is the room's error.
import { probeBwrap } from './bwrap.js';
import { type NamespaceTools, namespaceProblem, namespaceTools } from './namespaces.js';
import { SandboxError } from './sandbox-error.js';
import { executable, findTool, run, SYSTEM_BIN } from './system-tools.js';
import { parseUidRange, refuseUsedIds, type UidRange } from './uid-range.js';
import { findWorldWritable, PRIVATE_TMP } from './world-writable.js';

export type SandboxMode = 'auto' | 'bwrap' | 'none';

/** Absolute paths of the programs every task launch goes through. */
export interface SandboxTools {
  bwrap: string | null;
  prlimit: string;
  setpriv: string;
  /** coreutils' nice and util-linux's renice, if found: a spare starts at nice 19 and its job's uid goes back to 0 (launch.ts idle). */
  nice: string | null;
  renice: string | null;
  /** unshare, mount, mkdir and sh: set when tasks run in namespaces of their own (root, no bubblewrap). */
  unshare: NamespaceTools | null;
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
    tools: { bwrap, prlimit, setpriv, nice: await findTool('nice'), renice: await findTool('renice'), unshare: namespaces },
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
