// The engine's side of a warm worker: one runner process (python_runner.py or node_runner.mjs)
// that loaded the job's source once and now runs partitions one at a time, asked over fd 3.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { WorkerLaunch } from '../sandbox/index.js';
import { describeExit, killGroup, LineSplitter, StderrTail, withTail } from './output.js';

// The sandbox builds launches (limits, uid, bubblewrap); runners only start them.
export type { WorkerLaunch };

/** One partition to run; paths as the task sees them. */
export interface PartitionTask {
  partition: number;
  attempt: number;
  input: string;
  output: string;
  format: 'csv' | 'jsonl';
}

export type TaskResult =
  | { ok: true; rows_out: number; bytes_out: number; seconds: number }
  /** lost_worker: the process died during the task; error then says how, with the stderr tail. */
  | { ok: false; error: string; oom: boolean; lost_worker: boolean };

/** Receives every line a task process prints, tagged with the partition it was running (null between tasks). */
export type LineSink = (partition: number | null, stream: 'stdout' | 'stderr', line: string) => void;

/** The job's source failed to load (syntax error, failing import, no such entrypoint): the message is the worker's. */
export class WorkerStartError extends Error {
  override readonly name = 'WorkerStartError';
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How long stop() lets a worker finish before its process group is killed. */
const STOP_GRACE_MS = 2_000;
/**
 * After the process exits, how long to wait for its pipes to drain before reporting: a grandchild
 * that inherited them could hold them open for ever.
 */
const DRAIN_MS = 250;

interface Running {
  task: PartitionTask;
  resolve: (result: TaskResult) => void;
}

interface Reply {
  partition?: unknown;
  ok?: unknown;
  rows_out?: unknown;
  bytes_out?: unknown;
  seconds?: unknown;
  error?: unknown;
  oom?: unknown;
  ready?: unknown;
  fatal?: unknown;
}

export class WarmWorker {
  readonly pid: number;
  readonly exited: Promise<WorkerExit>;
  readonly startedAt: number;

  private readonly child: ChildProcess;
  private readonly channel: Duplex | null;
  private readonly tail = new StderrTail();
  private readonly stdout: LineSplitter;
  private readonly stderr: LineSplitter;
  private readonly readyPromise: Promise<void>;
  private settleReady: (error?: Error) => void = () => {};
  private running: Running | null = null;
  private busy = false;
  /** The partition output lines are tagged with: the running task's, kept until its last lines are in. */
  private tagged: number | null = null;
  private exit: WorkerExit | null = null;
  private spawnError: Error | null = null;

  static start(launch: WorkerLaunch, sink: LineSink): WarmWorker {
    return new WarmWorker(launch, sink);
  }

  private constructor(launch: WorkerLaunch, private readonly sink: LineSink) {
    this.startedAt = Date.now();
    this.child = spawn(launch.file, launch.args, {
      env: launch.env,
      cwd: launch.cwd,
      ...(launch.uid === undefined ? {} : { uid: launch.uid }),
      ...(launch.gid === undefined ? {} : { gid: launch.gid }),
      // Its own process group, so kill() reaches whatever the user's code started too.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    this.channel = (this.child.stdio[3] as Duplex | null | undefined) ?? null;

    this.stdout = new LineSplitter((line) => this.sink(this.tagged, 'stdout', line));
    this.stderr = new LineSplitter((line) => {
      this.tail.add(line);
      this.sink(this.tagged, 'stderr', line);
    });
    this.child.stdout?.on('data', (chunk: Buffer) => this.stdout.push(chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => this.stderr.push(chunk));

    this.readyPromise = new Promise<void>((resolve, reject) => {
      let settled = false;
      this.settleReady = (error) => {
        if (settled) return;
        settled = true;
        if (error === undefined) resolve();
        else reject(error);
      };
    });
    // Nobody may ever ask whether a worker that failed was ready; that is not an unhandled error.
    this.readyPromise.catch(() => {});

    if (this.channel !== null) {
      const messages = new LineSplitter((line) => this.onMessage(line));
      this.channel.on('data', (chunk: Buffer) => messages.push(chunk));
      this.channel.on('error', () => {}); // EPIPE once the worker is gone; 'exit' tells the story
    }

    this.exited = new Promise<WorkerExit>((resolve) => {
      let exitedAt: WorkerExit | null = null;
      let open = 0;
      const finish = () => {
        if (exitedAt === null || this.exit !== null) return;
        this.exit = exitedAt;
        this.onExit(exitedAt);
        resolve(exitedAt);
      };
      this.child.on('spawn', () => {
        open = 1;
      });
      this.child.on('error', (error) => {
        // Only a failed spawn ends the worker here; a failed kill() is reported where it is called.
        if (open === 1) return;
        this.spawnError = error;
        exitedAt = { code: null, signal: null };
        finish();
      });
      this.child.on('exit', (code, signal) => {
        exitedAt = { code, signal };
        setTimeout(finish, DRAIN_MS);
      });
      // 'close': every pipe drained, so the stderr tail is complete.
      this.child.on('close', finish);
    });
  }

  /** Resolves once the job's source is loaded; rejects WorkerStartError when it could not be. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Runs one partition; a worker runs one at a time. */
  async run(task: PartitionTask): Promise<TaskResult> {
    if (this.busy) throw new Error(`worker ${this.pid} is already running a partition`);
    this.busy = true;
    try {
      await this.readyPromise;
      if (this.exit !== null) return this.lost(this.exit, `before partition ${task.partition} started`);
      this.tail.resetOom();
      this.tagged = task.partition;
      return await new Promise<TaskResult>((resolve) => {
        this.running = { task, resolve };
        const { partition, attempt, input, output, format } = task;
        this.channel?.write(`${JSON.stringify({ op: 'run', partition, attempt, input, output, format })}\n`);
      });
    } finally {
      this.busy = false;
    }
  }

  /** Asks the worker to exit; kills its process group if it has not within 2 s. */
  async stop(): Promise<void> {
    if (this.exit !== null) return;
    if (this.channel !== null && !this.channel.destroyed) {
      this.channel.write(`${JSON.stringify({ op: 'exit' })}\n`);
    }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), STOP_GRACE_MS);
    });
    const outcome = await Promise.race([this.exited, grace]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.kill();
      await this.exited;
    }
  }

  /** SIGKILLs the worker's whole process group. */
  kill(): void {
    killGroup(this.child.pid);
  }

  private onMessage(line: string): void {
    let message: Reply;
    try {
      message = JSON.parse(line) as Reply;
    } catch {
      this.sink(this.tagged, 'stderr', `gatehouse: unreadable message from the worker: ${line.slice(0, 200)}`);
      return;
    }
    if (message === null || typeof message !== 'object') return;
    if (message.ready === true) {
      this.settleReady();
      return;
    }
    if (typeof message.fatal === 'string') {
      this.settleReady(new WorkerStartError(message.fatal));
      return;
    }
    const running = this.running;
    if (running === null || message.partition !== running.task.partition) return;
    const result: TaskResult =
      message.ok === true
        ? { ok: true, rows_out: Number(message.rows_out ?? 0), bytes_out: Number(message.bytes_out ?? 0), seconds: Number(message.seconds ?? 0) }
        : { ok: false, error: String(message.error ?? 'the task failed without saying why'), oom: message.oom === true, lost_worker: false };
    this.running = null;
    // The worker flushed its prints before replying, but the reply's pipe may be read first:
    // the lines already on their way are read in this same turn of the loop, so tag them before moving on.
    setImmediate(() => {
      this.endTaskOutput();
      running.resolve(result);
    });
  }

  private onExit(exit: WorkerExit): void {
    const running = this.running;
    this.running = null;
    if (this.spawnError !== null) {
      this.settleReady(new Error(`could not start the worker (${this.spawnError.message})`));
    } else {
      this.settleReady(new Error(withTail(`worker exited with ${describeExit(exit.code, exit.signal)} before it was ready`, this.tail.text())));
    }
    // What the user's code started lives on in the group unless we end it: nobody else will.
    try {
      killGroup(this.child.pid);
    } catch {
      // EPERM: a group we may not signal is not ours to clean up.
    }
    this.endTaskOutput();
    if (running !== null) running.resolve(this.lost(exit, `while running partition ${running.task.partition}`));
  }

  private endTaskOutput(): void {
    this.stdout.flush();
    this.stderr.flush();
    this.tagged = null;
  }

  private lost(exit: WorkerExit, when: string): TaskResult {
    const how = this.spawnError !== null ? `could not start (${this.spawnError.message})` : `exited with ${describeExit(exit.code, exit.signal)}`;
    return { ok: false, error: withTail(`worker ${how} ${when}`, this.tail.text()), oom: this.tail.sawOom, lost_worker: true };
  }
}
