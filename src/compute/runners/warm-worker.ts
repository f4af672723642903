// The engine's side of a warm worker: one runner process (python_runner.py or node_runner.mjs)
// that loaded the job's source once and now runs partitions one at a time, asked over fd 3.
//
// A runner that marks the end of each task's prints (python_runner.py: a line with the worker's
// own mark on stdout and stderr, written after the task's last print) may be sent several tasks
// before it answers the first (up to QUEUE_MAX): it runs them in order without waiting for the
// engine, answers them a few at a time, and each stream's lines are still tagged with the partition
// that printed them, because the mark, not the answer's arrival, moves the tag on. If it dies with
// tasks unanswered, the marks also say which one was running: those before it ran to their end and
// are reported `unanswered` (run again, not failed). A runner without marks (node_runner.mjs) gets
// one task at a time and its lines are tagged by the answer, as before.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WorkerLaunch } from '../sandbox/index.js';
import { describeExit, LineSplitter, StderrTail, withTail } from './output.js';
import { holdReads, resumeReads } from './pipe-reads.js';
import { spawnTask, type TaskProcess } from './task-process.js';

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
  /**
   * lost_worker: the process died during the task; error then says how, with the stderr tail.
   * unanswered: it died after this task ran to its end (its marks came) but before it was answered:
   * not this task's failure, its outcome is simply unknown.
   */
  | { ok: false; error: string; oom: boolean; lost_worker: boolean; unanswered?: true };

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
/** How many tasks a runner that marks its tasks' ends may hold at once (the running one included). */
export const QUEUE_MAX = 16;
/**
 * Messages on the channel the engine did not ask for (unreadable, a second ready, an answer for
 * another partition) a worker may send before it is stopped. The runners send none; the job's code
 * runs in the runner's process and can write on fd 3, and each line costs the engine's one thread.
 */
export const UNASKED_MAX = 16;
/**
 * The longest line a worker's channel may be in the middle of. A runner's messages are short; bytes
 * that never end a line are no message to count, and were read and cut for as long as a task wrote
 * them (a core of the engine's one thread).
 */
export const CHANNEL_LINE_MAX_BYTES = 1024 * 1024;
/**
 * Bytes of a worker's prints (stdout and stderr) the engine handles before it lets its loop turn:
 * each line costs its one thread, and libuv reads a pipe up to 32 times a turn, so a task printing
 * short lines as fast as it could held the engine for most of every turn (everyone's requests waited).
 * Past the budget both streams pause until the next turn; the task waits on its own prints meanwhile.
 */
export const OUTPUT_TURN_BYTES = 32 * 1024;
/**
 * How long a runner's held prints (see lookAtPrints) wait at most before they are read anyway: a task
 * that starts printing between answers blocks on its full pipe for at most this long, once (from
 * then on its prints are read as they come).
 */
export const PRINT_POLL_MS = 50;
/**
 * Past this many bytes of prints read since the last look, a worker's prints are read as they come
 * (a task printing much would otherwise wait on its full pipe); below it (the marks, a log line a
 * partition) they are held between answers.
 */
export const PRINT_HOLD_BYTES = 16 * 1024;

interface Running {
  task: PartitionTask;
  resolve: (result: TaskResult) => void;
}

/**
 * One output stream's tagging: the partitions of the tasks sent whose mark this stream has not
 * shown yet (the first is the one printing now). The runner writes "\n<mark>\n", so the mark is a
 * line of its own even after a print without a newline, and the empty line that newline makes
 * after a whole line is never emitted (LineSplitter emits no empty lines).
 */
type StreamTags = number[];

interface Reply {
  partition?: unknown;
  ok?: unknown;
  rows_out?: unknown;
  bytes_out?: unknown;
  seconds?: unknown;
  error?: unknown;
  oom?: unknown;
  ready?: unknown;
  marks?: unknown;
  fatal?: unknown;
}

/** Starts a launch: from the engine itself (spawnTask), or through its launcher process (launcher.ts). */
export type TaskStarter = (launch: WorkerLaunch) => TaskProcess;

export class WarmWorker {
  readonly exited: Promise<WorkerExit>;
  readonly startedAt: number;

  private readonly child: TaskProcess;
  private readonly tail = new StderrTail();
  private readonly stdout: LineSplitter;
  private readonly stderr: LineSplitter;
  private readonly readyPromise: Promise<void>;
  private settleReady: (error?: Error) => void = () => {};
  /** Tasks sent and not answered yet, in the order sent (at most `depth`). */
  private readonly running: Running[] = [];
  /** This worker's mark (see the header): random, so a job's prints do not make one by chance. */
  private readonly mark = `gatehouse-end-of-task-${randomBytes(12).toString('hex')}`;
  /** Whether the runner said it marks the end of each task's prints (its ready message). */
  private marks = false;
  private readonly tags: Record<'stdout' | 'stderr', StreamTags> = { stdout: [], stderr: [] };
  private exit: WorkerExit | null = null;
  /** Whether the runner's ready (or fatal) has been read: a second is not the runner's. */
  private started = false;
  /** Channel messages the engine did not ask for (UNASKED_MAX). */
  private unasked = 0;
  /** Why the engine stopped this worker itself (its channel), for the tasks it fails. */
  private stoppedFor: string | null = null;
  /** Bytes of prints handled since the streams last paused (OUTPUT_TURN_BYTES), and whether they are paused. */
  private printed = 0;
  private paused = false;
  private spawnError: Error | null = null;
  /**
   * Task lines not written yet: what is handed before the loop's next check phase goes out in one
   * write (the refills for a few answers read together, each answer handled in its own immediate).
   */
  private outbox: string[] = [];
  /** Told to exit after what it was sent (finish()), and whether that exit was written. */
  private finishing = false;
  private exitSent = false;
  /** run() calls waiting for ready(): their tasks go out before the exit. */
  private entering = 0;
  /** stdout's and stderr's reads stopped at their descriptors (lookAtPrints), and the poll that reads them anyway. */
  private printsHeld = false;
  private printPoll: NodeJS.Timeout | null = null;
  /** Bytes of prints read since the last look (PRINT_HOLD_BYTES). */
  private readSinceLook = 0;
  private lookQueued = false;
  /** The worker is ending: its prints are read to their end, never held again. */
  private ending = false;
  /** A spare's job was sent (assign). */
  private assigned = false;
  /** Its streams and channel are read (wire()): what is sent before waits in the outbox. */
  private wired = false;

  /** Starts the launch (in its own process group, so kill() reaches whatever the user's code started too). */
  static start(launch: WorkerLaunch, sink: LineSink, start: TaskStarter = spawnTask): WarmWorker {
    return new WarmWorker(start(launch), sink);
  }

  private constructor(child: TaskProcess, private readonly sink: LineSink) {
    this.startedAt = Date.now();
    this.child = child;
    this.stdout = new LineSplitter((line) => this.onLine('stdout', line));
    this.stderr = new LineSplitter((line) => this.onLine('stderr', line));

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

    // Streams spawned here exist at once; the launcher's arrive with 'spawn'.
    if (this.child.stdout !== null) this.wire();
    else this.child.once('spawn', () => this.wire());

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

  /** The process id (-1 until it is known, or when it could not start). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  private get channel(): Duplex | null {
    return this.child.channel;
  }

  /** Reads the task's prints and its channel. */
  private wire(): void {
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.stdout.push(chunk);
      this.metered(chunk.length);
      this.readSinceLook += chunk.length;
      this.lookSoon();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk);
      this.metered(chunk.length);
      this.readSinceLook += chunk.length;
      this.lookSoon();
    });
    this.child.once('exit', () => this.readPrintsToTheEnd());
    const channel = this.channel;
    if (channel !== null) {
      const messages = new LineSplitter((line) => this.onMessage(line));
      channel.on('data', (chunk: Buffer) => {
        if (this.stoppedFor !== null) return;
        messages.push(chunk);
        if (messages.lineBytes > CHANNEL_LINE_MAX_BYTES) this.stopFor(`was stopped: it wrote a line of more than ${CHANNEL_LINE_MAX_BYTES} bytes on its channel, no message the engine asked for (did the job write to file descriptor 3?)`);
      });
      channel.on('error', () => {}); // EPIPE once the worker is gone; 'exit' tells the story
    }
    this.wired = true;
    if (this.outbox.length > 0) this.send();
  }

  /** Whether its process is still there (not exited, not failed to start). */
  get alive(): boolean {
    return this.exit === null && this.spawnError === null;
  }

  /**
   * Names the job to a spare runner (started with `--spare`, argv.ts): it loads the source from here
   * on, then says ready. Once: a spare is given to one job only.
   */
  assign(job: { source: string; entrypoint: string; jobId: string }): void {
    if (this.assigned) throw new Error(`worker ${this.pid} already has a job`);
    this.assigned = true;
    this.outbox.push(`${JSON.stringify({ op: 'job', source: job.source, entrypoint: job.entrypoint, job: job.jobId })}\n`);
    if (this.outbox.length === 1) setImmediate(() => this.send());
  }

  /** Resolves once the job's source is loaded; rejects WorkerStartError when it could not be. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /**
   * How many tasks may be sent before the first is answered: QUEUE_MAX once a runner that marks
   * its tasks' ends is ready (the next tasks wait in its pipe), else 1. Known after ready().
   */
  get depth(): number {
    return this.marks ? QUEUE_MAX : 1;
  }

  /** Runs one partition; with depth > 1 more may be sent while the first runs (they run after it, in order). */
  async run(task: PartitionTask): Promise<TaskResult> {
    // Decided when called: a task handed just before finish() is sent before the exit (send()).
    if (this.finishing) throw new Error(`worker ${this.pid} was told to finish; it runs nothing more`);
    this.entering += 1;
    try {
      await this.readyPromise;
    } finally {
      this.entering -= 1;
    }
    if (this.running.length >= this.depth) throw new Error(`worker ${this.pid} already has ${this.running.length} partition${this.running.length === 1 ? '' : 's'} to run`);
    if (this.exit !== null) return this.lost(this.exit, `before partition ${task.partition} started`);
    return await new Promise<TaskResult>((resolve) => {
      this.running.push({ task, resolve });
      this.tags.stdout.push(task.partition);
      this.tags.stderr.push(task.partition);
      const { partition, attempt, input, output, format } = task;
      const mark = this.marks ? { mark: this.mark } : {};
      this.outbox.push(`${JSON.stringify({ op: 'run', partition, attempt, input, output, format, ...mark })}\n`);
      if (this.outbox.length === 1) setImmediate(() => this.send());
    });
  }

  /**
   * Tells the runner to exit once it has run and answered every task sent so far (the runners read
   * their channel in order): the last tasks' answers and the exit then cost no round trip through
   * the engine, and the job's end waits less for its workers. Nothing may be run after it.
   */
  finish(): void {
    if (this.exit !== null || this.finishing) return;
    this.finishing = true;
    this.readPrintsToTheEnd();
    if (this.outbox.length === 0) setImmediate(() => this.send());
  }

  /** The tasks handed since the last write, in one write; then the exit, once finish() was called and every task sent. */
  private send(): void {
    // A spare's job assigned before the launcher handed its streams back: wire() sends it.
    if (!this.wired) return;
    if (this.finishing && this.entering === 0 && !this.exitSent) {
      this.exitSent = true;
      this.outbox.push(`${JSON.stringify({ op: 'exit' })}\n`);
    }
    const lines = this.outbox.join('');
    this.outbox = [];
    if (lines !== '' && this.channel !== null && !this.channel.destroyed) this.channel.write(lines);
  }

  /** Asks the worker to exit; kills its process group if it has not within 2 s. */
  async stop(): Promise<void> {
    if (this.exit !== null) return;
    this.readPrintsToTheEnd();
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
    this.child.killGroup();
  }

  private onMessage(line: string): void {
    if (this.stoppedFor !== null) return; // the rest of a flood already read
    let message: Reply;
    try {
      message = JSON.parse(line) as Reply;
    } catch {
      this.sink(this.tags.stderr[0] ?? null, 'stderr', `gatehouse: unreadable message from the worker: ${line.slice(0, 200)}`);
      this.unaskedFor();
      return;
    }
    if (message === null || typeof message !== 'object') {
      this.unaskedFor();
      return;
    }
    if (!this.started && message.ready === true) {
      this.started = true;
      this.marks = message.marks === true;
      this.settleReady();
      return;
    }
    if (!this.started && typeof message.fatal === 'string') {
      this.started = true;
      this.settleReady(new WorkerStartError(message.fatal));
      return;
    }
    const running = this.running[0];
    if (running === undefined || message.partition !== running.task.partition) {
      this.unaskedFor();
      return;
    }
    // Out of memory is per task: read what this task's stderr said before the next one's starts counting.
    const oom = message.oom === true;
    const result: TaskResult =
      message.ok === true
        ? { ok: true, rows_out: Number(message.rows_out ?? 0), bytes_out: Number(message.bytes_out ?? 0), seconds: Number(message.seconds ?? 0) }
        : { ok: false, error: String(message.error ?? 'the task failed without saying why'), oom, lost_worker: false };
    this.running.shift();
    // The worker flushed its prints before replying, but the reply's pipe may be read first:
    // the lines already on their way are read in this same turn of the loop, so tag them before moving on.
    // Held prints (lookAtPrints) are read in the next turn's poll phase: the answer waits for that turn.
    const held = this.printsHeld;
    if (held) this.readPrints();
    const settle = () => {
      if (!this.marks) {
        this.endTaskOutput();
        this.tail.resetOom();
      }
      running.resolve(result);
    };
    setImmediate(held ? () => setImmediate(settle) : settle);
  }

  /**
   * One more message the engine did not ask for. Ignored, as a forged answer always is, up to
   * UNASKED_MAX; past that the worker is stopped (the tasks it holds fail, saying why) and the rest
   * of its channel is not read: a task writing on fd 3 as fast as it can held the engine's thread.
   */
  private unaskedFor(): void {
    if (++this.unasked <= UNASKED_MAX) return;
    this.stopFor(`was stopped: it wrote ${this.unasked} messages on its channel that the engine did not ask for (did the job write to file descriptor 3?)`);
  }

  /** Stops the worker for what it wrote on its channel: the rest of it is not read, its tasks fail saying `why`. */
  private stopFor(why: string): void {
    this.stoppedFor = why;
    this.channel?.destroy();
    this.kill();
  }

  /** Past OUTPUT_TURN_BYTES of prints, both streams wait for the loop's next turn. */
  private metered(bytes: number): void {
    this.printed += bytes;
    if (this.printed < OUTPUT_TURN_BYTES || this.paused) return;
    this.paused = true;
    this.child.stdout?.pause();
    this.child.stderr?.pause();
    setImmediate(() => {
      this.paused = false;
      this.printed = 0;
      this.child.stdout?.resume();
      this.child.stderr?.resume();
    });
  }

  /**
   * Between a runner's answers its stdout and stderr mostly carry the end-of-task marks, two a
   * partition (and maybe a log line), each a wake-up of the engine's loop if read as it comes. So
   * while they carry little, their reads are stopped at the descriptor (what is written waits in the
   * kernel) and they are read when answers come (a few at a time; each answer is settled after that
   * read), every PRINT_POLL_MS, and at the worker's end; the marks still tag every line, whenever it
   * is read. Once a task prints more (PRINT_HOLD_BYTES since the last look), its prints are read as
   * they come again, until a look finds less. A look follows each read, in the loop's check phase.
   */
  private lookSoon(): void {
    if (!this.marks || this.ending || this.lookQueued) return;
    this.lookQueued = true;
    setImmediate(() => {
      this.lookQueued = false;
      this.lookAtPrints();
    });
  }

  private lookAtPrints(): void {
    if (this.ending || this.printsHeld) return;
    if (this.readSinceLook < PRINT_HOLD_BYTES && holdReads(this.child.stdout) && holdReads(this.child.stderr)) {
      this.printsHeld = true;
      this.printPoll = setTimeout(() => {
        this.printPoll = null;
        if (this.printsHeld) this.readPrints();
      }, PRINT_POLL_MS).unref();
    } else {
      this.readPrints();
    }
    this.readSinceLook = 0;
  }

  private readPrints(): void {
    this.printsHeld = false;
    if (this.printPoll !== null) clearTimeout(this.printPoll);
    this.printPoll = null;
    resumeReads(this.child.stdout);
    resumeReads(this.child.stderr);
  }

  /** The worker is ending: its prints are read as they come until its pipes close. */
  private readPrintsToTheEnd(): void {
    this.ending = true;
    this.readPrints();
  }

  /** A line of the task's stdout or stderr: the mark moves that stream's tag on; others go to the sink. */
  private onLine(stream: 'stdout' | 'stderr', line: string): void {
    if (this.marks && line === this.mark) {
      this.tags[stream].shift();
      // Out of memory is per task: what the next task's stderr says starts counting here.
      if (stream === 'stderr') this.tail.resetOom();
      return;
    }
    if (stream === 'stderr') this.tail.add(line);
    this.sink(this.tags[stream][0] ?? null, stream, line);
  }

  private onExit(exit: WorkerExit): void {
    const running = this.running.splice(0);
    // The task running when it died: the first whose mark neither stream has shown (the user may
    // have closed one of them); those before it ran to their end, unanswered.
    const markedUpTo = this.marks ? Math.max(...(['stdout', 'stderr'] as const).map((s) => running.findIndex((r) => r.task.partition === this.tags[s][0]))) : 0;
    const unanswered = running.splice(0, Math.max(0, markedUpTo));
    if (this.spawnError !== null) {
      this.settleReady(new Error(`could not start the worker (${this.spawnError.message})`));
    } else {
      this.settleReady(new Error(withTail(`worker exited with ${describeExit(exit.code, exit.signal)} before it was ready`, this.tail.text())));
    }
    // What the user's code started lives on in the group unless we end it: nobody else will.
    try {
      this.child.killGroup();
    } catch {
      // EPERM: a group we may not signal is not ours to clean up.
    }
    this.endTaskOutput();
    for (const u of unanswered) u.resolve({ ...this.lost(exit, `after partition ${u.task.partition} ended, before it was answered`), oom: false, unanswered: true });
    const [first, ...queued] = running;
    if (first !== undefined) first.resolve(this.lost(exit, `while running partition ${first.task.partition}`));
    for (const q of queued) q.resolve(this.lost(exit, `before partition ${q.task.partition} started`));
  }

  /** The answered task's last partial lines, and its tag dropped (a runner without marks; or the end). */
  private endTaskOutput(): void {
    this.stdout.flush();
    this.stderr.flush();
    this.tags.stdout.shift();
    this.tags.stderr.shift();
  }

  private lost(exit: WorkerExit, when: string): Extract<TaskResult, { ok: false }> {
    const how = this.stoppedFor ?? (this.spawnError !== null ? `could not start (${this.spawnError.message})` : `exited with ${describeExit(exit.code, exit.signal)}`);
    return { ok: false, error: withTail(`worker ${how} ${when}`, this.tail.text()), oom: this.tail.sawOom, lost_worker: true };
  }
}
