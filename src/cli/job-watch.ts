// `submit --wait`: follow a job until it ends. Progress goes to stderr (a bar redrawn in place on a
// terminal, a line per change in a log) so stdout keeps only the result; Ctrl-C stops watching,
// never the job.
import { structured } from './output.js';
import { ApiError, call, ConnectionError, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { jobError } from './job-errors.js';
import { isFinal, type Job } from './job-view.js';
import { describeProgress, EXIT, exitCodeFor, renderProgress, summarize } from './progress.js';

export interface WatchOptions {
  json: boolean;
  intervalMs?: number;
  /** Whether stderr is a terminal: decides between a redrawn bar and plain lines. */
  tty?: boolean;
}

/** Consecutive failed polls tolerated (a gateway restart, a blip) before giving up: about 10 s. */
const MAX_FAILED_POLLS = 20;

const INTERRUPTED = Symbol('interrupted');

export async function watchJob(target: Target, id: string, options: WatchOptions): Promise<number> {
  const interval = options.intervalMs ?? 500;
  const display = (options.tty ?? Boolean(process.stderr.isTTY)) ? liveLine() : changeLines();
  const interrupt = onInterrupt();
  try {
    let failures = 0;
    for (;;) {
      const polled = await Promise.race([poll(target, id), interrupt.happened]);
      if (polled === INTERRUPTED) return stopWatching(id, display);
      if ('error' in polled) {
        if (!mayPass(polled.error) || ++failures > MAX_FAILED_POLLS) throw jobError(polled.error, { id, verb: 'status' });
      } else {
        failures = 0;
        display.show(polled.job, Date.now());
        if (isFinal(polled.job.state)) return finish(polled.job, display, options.json);
      }
      if ((await Promise.race([sleep(interval), interrupt.happened])) === INTERRUPTED) return stopWatching(id, display);
    }
  } finally {
    interrupt.dispose();
  }
}

/** A poll's outcome as a value, so that one failing after Ctrl-C is never an unhandled rejection. */
async function poll(target: Target, id: string): Promise<{ job: Job } | { error: unknown }> {
  try {
    return { job: await call<Job>(target, 'GET', `/v1/jobs/${encodeURIComponent(id)}`, { token: await accessToken(target) }) };
  } catch (error) {
    return { error };
  }
}

/** A gateway restarting or briefly unreachable: poll again rather than abandon the watch. */
const mayPass = (err: unknown) => err instanceof ConnectionError || (err instanceof ApiError && err.status >= 500);

function finish(job: Job, display: Display, json: boolean): number {
  display.end();
  process.stdout.write(`${json ? structured(job) : summarize(job)}\n`);
  return exitCodeFor(job.state)!;
}

function stopWatching(id: string, display: Display): number {
  display.end();
  process.stderr.write(`stopped watching; job ${id} keeps running (gatehouse status ${id} to look again, gatehouse cancel ${id} to stop it)\n`);
  return EXIT.interrupted;
}

interface Display {
  show(job: Job, now: number): void;
  end(): void;
}

/** One line redrawn in place, cut to the terminal's width so that \r can return to its start. */
function liveLine(): Display {
  let drawn = false;
  return {
    show(job, now) {
      const width = process.stderr.columns || 100;
      process.stderr.write(`\r${renderProgress(job, now).slice(0, width - 1)}\u001b[K`);
      drawn = true;
    },
    end() {
      if (drawn) process.stderr.write('\r\u001b[K');
    },
  };
}

/** A line whenever the state or the partitions done change: a log that reads well afterwards. */
function changeLines(): Display {
  let last = '';
  return {
    show(job, now) {
      const key = `${job.state} ${job.partitions.done}`;
      // The end gets the summary instead.
      if (key !== last && !isFinal(job.state)) process.stderr.write(`${describeProgress(job, now)}\n`);
      last = key;
    },
    end() {},
  };
}

/** Ctrl-C while watching: caught (the job is the gateway's, not ours), and turned into a value. */
function onInterrupt(): { happened: Promise<typeof INTERRUPTED>; dispose(): void } {
  let handler = () => {};
  const happened = new Promise<typeof INTERRUPTED>((resolve) => {
    handler = () => resolve(INTERRUPTED);
  });
  process.once('SIGINT', handler);
  return { happened, dispose: () => process.off('SIGINT', handler) };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
