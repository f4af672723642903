// The `command` runtime: one process per partition, started from the job's argv with its
// placeholders filled in. Exit code 0 means the partition is done.
import { spawn } from 'node:child_process';
import { describeExit, killGroup, LineSplitter, StderrTail, turnMeter, withTail } from './output.js';
import { type LineSink, OUTPUT_TURN_BYTES, type WorkerLaunch } from './warm-worker.js';

export type CommandResult = { ok: true; seconds: number } | { ok: false; error: string; oom: boolean };

export interface PlaceholderValues {
  input: string;
  output: string;
  partition: number | string;
  source: string;
}

const PLACEHOLDER = /\{(input|output|partition|source)\}/g;

/** Fills `{input}`, `{output}`, `{partition}` and `{source}` inside each argument; any other `{word}` stays as written. */
export function expandArgv(argv: string[], values: PlaceholderValues): string[] {
  return argv.map((arg) => arg.replace(PLACEHOLDER, (_, name: keyof PlaceholderValues) => String(values[name])));
}

/** Runs one partition's command to its end; an abort kills its process group. */
export function runCommand(launch: WorkerLaunch, partition: number, sink: LineSink, signal?: AbortSignal): Promise<CommandResult> {
  return new Promise<CommandResult>((resolve) => {
    const started = performance.now();
    if (signal?.aborted) {
      resolve({ ok: false, error: stopped(signal), oom: false });
      return;
    }
    const child = spawn(launch.file, launch.args, {
      env: launch.env,
      cwd: launch.cwd,
      ...(launch.uid === undefined ? {} : { uid: launch.uid }),
      ...(launch.gid === undefined ? {} : { gid: launch.gid }),
      detached: true, // its own process group: an abort or the end reaches everything it started
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail = new StderrTail();
    const stdout = new LineSplitter((line) => sink(partition, 'stdout', line));
    const stderr = new LineSplitter((line) => {
      tail.add(line);
      sink(partition, 'stderr', line);
    });
    // As a warm worker's: at most OUTPUT_TURN_BYTES of prints before the engine's loop turns.
    const metered = turnMeter([child.stdout, child.stderr], OUTPUT_TURN_BYTES);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      metered(chunk.length);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      metered(chunk.length);
    });

    let done = false;
    let spawned = false;
    let drain: NodeJS.Timeout | undefined;
    const onAbort = () => {
      try {
        killGroup(child.pid);
      } catch {
        // EPERM: nothing more we can do; its exit is still awaited
      }
    };
    const finish = (result: CommandResult) => {
      if (done) return;
      done = true;
      clearTimeout(drain);
      signal?.removeEventListener('abort', onAbort);
      stdout.flush();
      stderr.flush();
      resolve(result);
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    child.on('spawn', () => {
      spawned = true;
    });
    child.on('error', (error) => {
      if (!spawned) finish({ ok: false, error: `could not start ${launch.file}: ${error.message}`, oom: false });
    });
    let exit: { code: number | null; signal: NodeJS.Signals | null; seconds: number } | null = null;
    const report = () => {
      if (exit === null) return;
      const { seconds } = exit;
      if (signal?.aborted) return finish({ ok: false, error: withTail(stopped(signal), tail.text()), oom: false });
      if (exit.code === 0) return finish({ ok: true, seconds });
      const error = withTail(`command exited with ${describeExit(exit.code, exit.signal)}`, tail.text());
      finish({ ok: false, error, oom: tail.sawOom });
    };
    child.on('exit', (code, sig) => {
      exit = { code, signal: sig, seconds: (performance.now() - started) / 1000 };
      // A partition's processes end with it: whatever it left running in its group goes too.
      onAbort();
      // Wait for the pipes to drain, but not for ever: a grandchild may have held them.
      drain = setTimeout(report, 250);
    });
    child.on('close', report);
  });
}

function stopped(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.message !== '' ? `stopped: ${reason.message}` : 'stopped';
}
