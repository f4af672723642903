// `submit --wait`: follow a job until it ends. Progress goes to stderr (a bar redrawn in place on a
// terminal, a line per change in a log) so stdout keeps only the result; Ctrl-C stops watching,
// never the job. Each request is a held wait (GET /v1/jobs/:id?wait_s=&seen=): the gateway answers
// the moment the job differs from the last answer, so the end is seen when the gateway knows it,
// not a poll interval later. An older gateway refuses wait_s (400): then it is polled as before; a
// gateway holding all the waits it may (429) is looked at plainly each interval until it holds one again.
import { structured } from './output.js';
import { ApiError, call, ConnectionError, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { jobError } from './job-errors.js';
import { isFinal, type Job } from './job-view.js';
import { describeProgress, EXIT, exitCodeFor, renderProgress, summarize } from './progress.js';

export interface WatchOptions {
  json: boolean;
  /** Between polls of a gateway without held waits, and between retries after a failed request. */
  intervalMs?: number;
  /** Whether stderr is a terminal: decides between a redrawn bar and plain lines. */
  tty?: boolean;
}

/** Consecutive failed polls tolerated (a gateway restart, a blip) before giving up: about 10 s. */
const MAX_FAILED_POLLS = 20;

/** How long one request may be held (the gateway's cap is 25 s; under the client's 30 s silence timeout). */
const WAIT_S = 25;

const INTERRUPTED = Symbol('interrupted');

export async function watchJob(target: Target, id: string, options: WatchOptions): Promise<number> {
  const interval = options.intervalMs ?? 500;
  const display = (options.tty ?? Boolean(process.stderr.isTTY)) ? liveLine() : changeLines();
  const interrupt = onInterrupt();
  try {
    let failures = 0;
    let held = true;
    // The gateway holds as many waits as it may (this person's 16, or all 1024): the next look is a plain one.
    let plainOnce = false;
    let seen: string | undefined;
    for (;;) {
      const holding = held && !plainOnce;
      plainOnce = false;
      const polled = await Promise.race([poll(target, id, holding ? { seen } : null), interrupt.happened]);
      if (polled === INTERRUPTED) return stopWatching(id, display);
      if ('error' in polled) {
        // A gateway from before held waits refuses the query it does not know: poll it instead.
        if (holding && polled.error instanceof ApiError && polled.error.status === 400) {
          held = false;
          continue;
        }
        // Too many waits held (the person's other watches, or other people's): look without holding
        // after the interval, then try holding again; a refused wait never ends the watch.
        if (holding && polled.error instanceof ApiError && polled.error.status === 429) plainOnce = true;
        else if (!mayPass(polled.error) || ++failures > MAX_FAILED_POLLS) throw jobError(polled.error, { id, verb: 'status' });
      } else {
        failures = 0;
        display.show(polled.job, Date.now());
        if (isFinal(polled.job.state)) return finish(polled.job, display, options.json);
        seen = polled.job.seen;
        // Held: the answer came because the job changed (or the wait ran out); ask again at once.
        if (holding && seen !== undefined) continue;
      }
      if ((await Promise.race([sleep(interval), interrupt.happened])) === INTERRUPTED) return stopWatching(id, display);
    }
  } finally {
    interrupt.dispose();
  }
}

/**
 * A poll's outcome as a value, so that one failing after Ctrl-C is never an unhandled rejection.
 * `wait`: held until the job differs from `seen` (answered at once without one); null: a plain look.
 */
async function poll(target: Target, id: string, wait: { seen: string | undefined } | null): Promise<{ job: Job } | { error: unknown }> {
  const query = wait === null ? '' : `?wait_s=${WAIT_S}${wait.seen === undefined ? '' : `&seen=${encodeURIComponent(wait.seen)}`}`;
  try {
    return { job: await call<Job>(target, 'GET', `/v1/jobs/${encodeURIComponent(id)}${query}`, { token: await accessToken(target) }) };
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

/**
 * One line redrawn in place, cut to the terminal's width so that \r can return to its start; redrawn
 * every second too, so the elapsed time moves while a wait is held and nothing changes.
 */
function liveLine(): Display {
  let last: Job | undefined;
  let ticker: NodeJS.Timeout | undefined;
  const draw = (job: Job, now: number) => {
    const width = process.stderr.columns || 100;
    process.stderr.write(`\r${renderProgress(job, now).slice(0, width - 1)}\u001b[K`);
  };
  return {
    show(job, now) {
      last = job;
      draw(job, now);
      ticker ??= setInterval(() => last !== undefined && draw(last, Date.now()), 1000).unref();
    },
    end() {
      clearInterval(ticker);
      if (last !== undefined) process.stderr.write('\r\u001b[K');
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
