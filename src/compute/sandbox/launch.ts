// The command line a task runs under. Read outside in:
//
//   setpriv [--reuid U --regid U --clear-groups] --no-new-privs --pdeathsig KILL --
//     prlimit --as --fsize --core=0 --nofile [--nproc] --
//       [bwrap --unshare-all --die-with-parent --new-session <binds> --]
//         <argv>
//
// A spare's workers (jobs/spares.ts) start under `nice -n 19` before all of it, put back to 0 by
// the engine when a job takes them (idle.ts).
//
// setpriv drops root first (so bwrap and the task never hold it), forbids setuid programs from
// giving it back, and asks the kernel to SIGKILL the task when the engine dies. prlimit caps what
// one process may take. bwrap, when usable, leaves the task alone with its job's folders.
//
// As root without bubblewrap (engine.sandbox: none) the same command runs inside namespaces made
// first, while still root:
//
//   setpriv --pdeathsig KILL --
//     unshare --net --ipc --uts --pid --fork --kill-child --mount-proc --
//       sh -c <one private tmpfs, bound over /tmp, /var/tmp, /dev/shm, /run/lock and the other
//               world-writable folders found at start-up> --
//         setpriv --reuid U ... -- prlimit ... -- <argv>
import { type JobArea, taskPaths } from './job-area.js';
import { BWRAP_NAMESPACES, bwrapSystemArgs } from './bwrap.js';
import type { Isolation } from './isolation.js';
import { namespaceArgs } from './namespaces.js';
import { SandboxError } from './sandbox-error.js';

export interface TaskLimits {
  memoryMb: number;
  /**
   * Cap the address space (RLIMIT_AS) at memoryMb. False for node: V8 reserves far more virtual
   * space than it uses, so the caller limits the heap with --max-old-space-size instead.
   */
  addressSpace: boolean;
  /** Largest file a task may write (RLIMIT_FSIZE): past it, writes fail with EFBIG. */
  maxFileBytes: number;
  /**
   * Processes and threads of the whole job together (RLIMIT_NPROC counts per uid, so it is
   * only set where the job has a uid of its own). Default 1024: a fork bomb stops there, while a
   * few workers with a BLAS thread per core still fit.
   */
  maxProcesses?: number;
  /**
   * A spare's workers, started before their job (jobs/spares.ts): at the lowest CPU priority (nice
   * 19), so their start takes only what no one else uses. The engine (root) puts the job uid's
   * processes back to 0 when a job takes them (renice -u: only root may lower a nice value), so only
   * with a job uid and util-linux's renice.
   */
  idle?: boolean;
}

/** How to start a task: `spawn(file, args, { env, cwd, detached: true })`. */
export interface WorkerLaunch {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Left unset: the identity switch happens inside the command (setpriv), not in spawn. */
  uid?: number;
  gid?: number;
  /**
   * The job uid the command switches to, where it has one: every process of it is the job's, so the
   * engine's launcher kills them all by it when the engine dies (runners/launcher.mjs).
   */
  taskUid?: number;
  /** The nice value it starts at, when not the usual 0 (TaskLimits.idle: `nice -n 19` leads the command). */
  nice?: number;
}

export const DEFAULT_MAX_PROCESSES = 1024;
/** A spare's nice value while it waits (see TaskLimits.idle). */
export const IDLE_NICE = 19;
const MIB = 1024 * 1024;
const NOFILE = 1024;

/** Where a task's commands are looked up (engine.python's default `python3` among them). */
export const TASK_PATH = '/usr/local/bin:/usr/bin:/bin';

/** The environment a task starts with: nothing of the engine's (its secrets, its PATH) leaks in. */
const FIXED_ENV = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE'];

function positiveInt(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new SandboxError('invalid_config', `task limit ${name} must be a positive whole number, got ${n}`);
  return n;
}

export function taskLaunch(
  iso: Isolation,
  area: JobArea,
  runtimeDir: string,
  argv: string[],
  limits: TaskLimits,
  extraEnv: Record<string, string> = {},
): WorkerLaunch {
  if (argv.length === 0) throw new SandboxError('invalid_config', 'a task needs a command');
  const ownUid = area.uid !== null;
  if (iso.root && !ownUid) throw new SandboxError('invalid_config', `job ${area.jobId}: refusing to run a task as root; the job needs its own uid`);
  if (!iso.root && ownUid) throw new SandboxError('invalid_config', `job ${area.jobId}: the engine is not root and cannot switch to uid ${area.uid}`);

  const paths = taskPaths(iso, area, runtimeDir);
  const env: Record<string, string> = {
    PATH: TASK_PATH,
    HOME: paths.work,
    TMPDIR: paths.work,
    LANG: 'C.UTF-8',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
  };
  for (const [key, value] of Object.entries(extraEnv)) {
    if (FIXED_ENV.includes(key)) throw new SandboxError('invalid_config', `task environment: ${key} is set by the sandbox and cannot be replaced`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || value.includes('\0')) throw new SandboxError('invalid_config', `task environment: ${JSON.stringify(key)} is not a valid variable`);
    env[key] = value;
  }

  const memory = positiveInt('memoryMb', limits.memoryMb) * MIB;
  const rlimits = [`--fsize=${positiveInt('maxFileBytes', limits.maxFileBytes)}`, '--core=0', `--nofile=${NOFILE}`];
  if (limits.addressSpace) rlimits.unshift(`--as=${memory}`);
  // RLIMIT_NPROC counts every process of the uid: with the engine's own uid it would count the
  // engine and every other job too, so it is only meaningful (and only set) with a job uid.
  if (ownUid) rlimits.push(`--nproc=${positiveInt('maxProcesses', limits.maxProcesses ?? DEFAULT_MAX_PROCESSES)}`);
  const idle = limits.idle === true && ownUid && iso.tools.nice !== null && iso.tools.renice !== null;

  const taskUid = { ...(area.uid !== null ? { taskUid: area.uid } : {}), ...(idle ? { nice: IDLE_NICE } : {}) };
  const drop = ownUid ? ['--reuid', String(area.uid), '--regid', String(area.gid ?? area.uid), '--clear-groups'] : [];
  const sandbox = iso.bwrap ? [iso.tools.bwrap ?? 'bwrap', ...bwrapArgs(area, runtimeDir, memory), '--'] : [];
  const task = [...drop, '--no-new-privs', '--pdeathsig', 'KILL', '--', iso.tools.prlimit, ...rlimits, '--', ...sandbox, ...argv];
  if (iso.namespaces) {
    if (!iso.tools.unshare || !ownUid) throw new SandboxError('invalid_config', `job ${area.jobId}: namespaces need the engine's unshare tools and a job uid`);
    return {
      file: iso.tools.setpriv,
      args: ['--pdeathsig', 'KILL', '--', ...namespaceArgs(iso.tools.unshare, { tmpfsBytes: privateTmpBytes(memory, limits.maxFileBytes), area: area.dir, runtime: runtimeDir, folders: iso.privateFolders, readOnly: iso.readOnlyFolders }), iso.tools.setpriv, ...task],
      env,
      cwd: area.work,
      ...taskUid,
    };
  }
  // nice first, in the same process: everything the chain starts inherits 19 from the start.
  if (idle) return { file: iso.tools.nice!, args: ['-n', String(IDLE_NICE), iso.tools.setpriv, ...task], env, cwd: area.work, ...taskUid };
  return { file: iso.tools.setpriv, args: task, env, cwd: area.work, ...taskUid };
}

/**
 * The size of the ONE tmpfs behind a namespaced task's /tmp, /var/tmp, /dev/shm, /run/lock and the
 * other private folders, all together. tmpfs pages are memory the address-space limit does not
 * see, so it is the task's own memory share (what the quota counted for it), capped by the largest
 * file it may write (RLIMIT_FSIZE, engine.max_output_mb) where that is smaller. At worst a task
 * holds twice its share (address space + tmpfs): bounded and counted once, never once per folder.
 */
export function privateTmpBytes(memoryBytes: number, maxFileBytes: number): number {
  return Math.min(memoryBytes, maxFileBytes);
}

function bwrapArgs(area: JobArea, runtimeDir: string, tmpfsBytes: number): string[] {
  return [
    ...BWRAP_NAMESPACES,
    ...bwrapSystemArgs(),
    '--proc', '/proc',
    '--dev', '/dev',
    // Memory-backed scratch is sized: otherwise /tmp and /dev/shm would be memory outside any rlimit.
    '--size', String(tmpfsBytes), '--tmpfs', '/dev/shm',
    '--size', String(tmpfsBytes), '--tmpfs', '/tmp',
    '--ro-bind', area.input, '/job/in',
    '--bind', area.output, '/job/out',
    '--bind', area.work, '/job/work',
    '--ro-bind', runtimeDir, '/job/runtime',
    '--chdir', '/job/work',
    // The sandbox's own root and /dev are tmpfs the task could otherwise fill.
    '--remount-ro', '/dev',
    '--remount-ro', '/',
  ];
}

/** Kills a task started with `detached: true` and everything in its process group. */
export function killTaskGroup(pid: number): void {
  // -0 and -1 would signal the engine's own group or every process on the machine.
  if (!Number.isInteger(pid) || pid <= 1) throw new SandboxError('invalid_config', `refusing to kill process group ${pid}`);
  try {
    process.kill(-pid, 'SIGKILL');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH' && code !== 'EPERM') throw err;
  }
}

export function outOfMemoryMessage(partition: number, memoryMb: number): string {
  return `partition ${partition}: out of memory at ${memoryMb} MB`;
}
