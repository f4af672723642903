// A followed log of a job not yet on its backend is held by the gateway as a wait on the job is, and
// a person holds at most 16 (their other `--wait`s, followed logs, console tabs): a 17th is refused
// 429 with `waits` and Retry-After. A place frees when one of those ends, so `logs -f` asks again
// after the time the gateway gives, says once on stderr that it waits, and gives up after a while
// naming the cause. Only that 429 is waited out: any other refusal (a rate limit elsewhere) fails at
// once. Each ask is a new request the gateway counts: waiting never holds a 17th place.
import { ApiError } from './client/api.js';

/** How long a follow waits for a place before failing: a queued job's handover may take minutes. */
export const PLACE_WAIT_MS = 5 * 60_000;
/** Bounds on the gateway's Retry-After: never a busy loop, never a silent half-minute. */
const MIN_RETRY_MS = 200;
const MAX_RETRY_MS = 30_000;

export interface PlaceWaitOptions {
  /** What is being asked, for the lines: `following job X's log`. */
  what: string;
  /** One line for the person (stderr): said once, when the first refusal comes. */
  note(line: string): void;
  capMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** A 429 from the held-read bounds (the body names which), not any other kind of 429. */
export function isPlaceRefusal(err: unknown): err is ApiError {
  return err instanceof ApiError && err.status === 429 && err.code === 'too_many_requests' && (err.body.waits === 'user' || err.body.waits === 'gateway');
}

/** `ask()` until the gateway gives it a place among the held reads, or the cap passes. */
export async function withPlace<T>(ask: () => Promise<T>, o: PlaceWaitOptions): Promise<T> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const cap = o.capMs ?? PLACE_WAIT_MS;
  const started = now();
  let said = false;
  for (;;) {
    try {
      return await ask();
    } catch (err) {
      if (!isPlaceRefusal(err)) throw err;
      const afterMs = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, 1000 * (err.retryAfterS ?? (typeof err.body.retry_after === 'number' ? err.body.retry_after : 1))));
      if (now() - started + afterMs > cap) {
        throw new ApiError(err.status, err.code, `${o.what}: gave up after waiting ${seconds(now() - started)} for a place: ${err.message}`, err.body);
      }
      if (!said) o.note(`${o.what}: ${err.message}; waiting for a place (asking again every ${seconds(afterMs)}, for up to ${seconds(cap)}; Ctrl-C stops)`);
      said = true;
      await sleep(afterMs);
    }
  }
}

const seconds = (ms: number) => (ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 100) / 10} s`);
