// The engine's side of its task launcher (launcher.mjs, the process): workers are started there and
// their streams handed back here over the IPC channel, so the engine's thread never forks itself
// (4-5 ms a worker at the engine's size, twice a job; the launcher's own fork is short and blocks
// only it). One launcher per engine process, started on the first task and again after a loss.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { WorkerLaunch } from '../sandbox/index.js';
import { killGroup } from './output.js';
import type { TaskProcess, TaskProcessEvents } from './task-process.js';

/** launcher.mjs, whether the engine runs from src/ or dist/ (tsc copies no .mjs: found back in src/). */
function launcherScript(): string {
  const beside = fileURLToPath(new URL('./launcher.mjs', import.meta.url));
  if (existsSync(beside)) return beside;
  const source = fileURLToPath(new URL('../../../../src/compute/runners/launcher.mjs', import.meta.url));
  if (existsSync(source)) return source;
  throw new Error(`the task launcher launcher.mjs is missing (looked in ${beside} and ${source})`);
}

/** How the launcher process is started: setpriv --pdeathsig TERM (when given) -- node launcher.mjs. */
export function launcherArgv(setpriv: string | null): string[] {
  // A young generation of 1 MB: fewer pages for each of its forks to copy.
  const node = [process.execPath, '--max-semi-space-size=1', launcherScript()];
  // TERM, not KILL: on it the launcher kills its tasks' job uids before it exits (launcher.mjs).
  return setpriv !== null ? [setpriv, '--pdeathsig', 'TERM', '--', ...node] : node;
}

/**
 * Nothing of the engine's environment; its channel the only way to it. Its stderr is a pipe the engine
 * copies to its own, not the engine's stderr itself: whoever waits for the engine's stderr to close
 * (a supervisor, a test) must not wait for the launcher too.
 */
export const LAUNCHER_OPTIONS: SpawnOptions = { env: {}, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' };

type FromLauncher =
  | { op: 'stream'; id: number; fd: 1 | 2 | 3 }
  | { op: 'spawned'; id: number; pid: number }
  | { op: 'failed'; id: number; message: string }
  | { op: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null };

const STREAM_NAMES = ['stdout', 'stderr', 'channel (fd 3)'];

class LaunchedTask extends EventEmitter<TaskProcessEvents> implements TaskProcess {
  pid: number | undefined;
  stdout: Socket | null = null;
  stderr: Socket | null = null;
  channel: Socket | null = null;
  private readonly streams: (Socket | null)[] = [null, null, null];
  private killWanted = false;
  private exited = false;
  private open = 0;

  stream(fd: 1 | 2 | 3, socket: Socket): void {
    this.streams[fd - 1] = socket;
    this.open += 1;
    socket.once('close', () => {
      this.open -= 1;
      this.closeIfDone();
    });
  }

  spawned(pid: number): void {
    this.pid = pid;
    // A stream whose descriptor did not reach the engine (it was out of descriptors: the message came
    // without it): the worker would wait unread, or for a ready never read, to its job's time limit.
    // It is stopped now and fails as a start that failed.
    const missing = this.streams.flatMap((s, i) => (s === null ? [STREAM_NAMES[i]] : []));
    if (missing.length > 0) {
      this.killGroup();
      this.failed(`the engine could not take the worker's ${missing.join(', ')} from its task launcher (out of file descriptors?); the worker was stopped`);
      return;
    }
    const [stdout = null, stderr = null, channel = null] = this.streams;
    this.stdout = stdout;
    this.stderr = stderr;
    this.channel = channel;
    this.emit('spawn');
    if (this.killWanted) this.killGroup();
  }

  failed(message: string): void {
    for (const s of this.streams) s?.destroy();
    this.emit('error', new Error(message));
  }

  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.emit('exit', code, signal);
    this.closeIfDone();
  }

  killGroup(): void {
    if (this.pid === undefined) this.killWanted = true;
    else killGroup(this.pid);
  }

  private closeIfDone(): void {
    if (this.exited && this.open === 0) this.emit('close');
  }
}

export class TaskLauncher {
  private process: ChildProcess | null = null;
  private readonly tasks = new Map<number, LaunchedTask>();
  private nextId = 1;

  /** @param setpriv ends the launcher (and its tasks' uids) with the engine's thread (--pdeathsig), besides its own end when its channel closes. */
  constructor(private readonly setpriv: string | null) {}

  start(launch: WorkerLaunch): TaskProcess {
    if (launch.uid !== undefined || launch.gid !== undefined) throw new Error('the task launcher starts launches that switch their uid themselves (setpriv)');
    const launcher = this.launcher();
    const id = this.nextId++;
    const task = new LaunchedTask();
    this.tasks.set(id, task);
    launcher.channel?.ref(); // an answer is awaited
    launcher.send({ op: 'spawn', id, file: launch.file, args: launch.args, env: launch.env, cwd: launch.cwd, uid: launch.taskUid });
    return task;
  }

  /** Starts the launcher process now, so the first task does not wait for its start. */
  prepare(): void {
    this.launcher();
  }

  /** The launcher process's id, while one runs. */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  private launcher(): ChildProcess {
    if (this.process !== null) return this.process;
    const argv = launcherArgv(this.setpriv);
    const child = spawn(argv[0]!, argv.slice(1), LAUNCHER_OPTIONS);
    this.process = child;
    child.on('message', (message: FromLauncher, handle: unknown) => this.onMessage(message, handle as Socket | undefined));
    const lost = (why: string) => {
      if (this.process !== child) return;
      this.process = null;
      // Its tasks went with it (setpriv --pdeathsig KILL in every launch); one not started yet never will.
      for (const task of this.tasks.values()) {
        if (task.pid === undefined) task.failed(`the task launcher ${why}`);
        else task.exit(null, 'SIGKILL');
      }
      this.tasks.clear();
    };
    child.on('exit', (code, signal) => lost(`exited (${signal ?? `code ${code}`})`));
    child.on('error', (error) => lost(`could not start (${error.message})`));
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    // Neither the process, its stderr nor its channel keeps the engine alive; start() refs the channel while tasks run.
    child.unref();
    (child.stderr as Socket | null)?.unref();
    child.channel?.unref();
    return child;
  }

  private onMessage(message: FromLauncher, handle: Socket | undefined): void {
    const task = this.tasks.get(message.id);
    if (task === undefined) {
      handle?.destroy();
      return;
    }
    switch (message.op) {
      case 'stream':
        if (handle !== undefined) task.stream(message.fd, handle);
        break;
      case 'spawned':
        task.spawned(message.pid);
        break;
      case 'failed':
        this.forget(message.id);
        task.failed(message.message);
        break;
      case 'exit':
        this.forget(message.id);
        task.exit(message.code, message.signal);
        break;
    }
  }

  private forget(id: number): void {
    this.tasks.delete(id);
    if (this.tasks.size === 0) this.process?.channel?.unref();
  }
}

let shared: TaskLauncher | null = null;

/** The engine process's one launcher. */
export function taskLauncher(setpriv: string | null): TaskLauncher {
  shared ??= new TaskLauncher(setpriv);
  return shared;
}
