// A started task process as the engine's runners see it: its pid, its output streams and channel,
// and the events a ChildProcess gives ('spawn', 'error', 'exit', 'close'), whether it was spawned
// here (spawnTask) or by the launcher process (launcher.ts). Apart so a warm worker is the same
// code either way.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import type { WorkerLaunch } from '../sandbox/index.js';
import { killGroup } from './output.js';

export interface TaskProcessEvents {
  /** Started: pid, stdout, stderr and channel are set from here on. */
  spawn: [];
  /** Could not be started (nothing runs). */
  error: [Error];
  exit: [code: number | null, signal: NodeJS.Signals | null];
  /** Exited, and its streams are closed. */
  close: [];
}

export interface TaskProcess extends EventEmitter<TaskProcessEvents> {
  readonly pid: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** fd 3, the runner's channel. */
  readonly channel: Duplex | null;
  /** SIGKILLs its process group (once it is known, for one still starting). */
  killGroup(): void;
}

/** Starts a task launch from this process (a fork of it: what the launcher spares the engine). */
export function spawnTask(launch: WorkerLaunch): TaskProcess {
  return new SpawnedTask(launch);
}

class SpawnedTask extends EventEmitter<TaskProcessEvents> implements TaskProcess {
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly channel: Duplex | null;
  private readonly child;

  constructor(launch: WorkerLaunch) {
    super();
    this.child = spawn(launch.file, launch.args, {
      env: launch.env,
      cwd: launch.cwd,
      ...(launch.uid === undefined ? {} : { uid: launch.uid }),
      ...(launch.gid === undefined ? {} : { gid: launch.gid }),
      // Its own process group, so killGroup() reaches whatever the task started too.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    this.stdout = this.child.stdout;
    this.stderr = this.child.stderr;
    this.channel = (this.child.stdio[3] as Duplex | null | undefined) ?? null;
    this.child.on('spawn', () => this.emit('spawn'));
    this.child.on('error', (error) => this.emit('error', error));
    this.child.on('exit', (code, signal) => this.emit('exit', code, signal));
    this.child.on('close', () => this.emit('close'));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  killGroup(): void {
    killGroup(this.child.pid);
  }
}
