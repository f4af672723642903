// What `gatehouse` exits with. Scripts branch on these, so they are part of the contract and the
// README lists them (a test keeps the two the same).
import { ApiError, ConnectionError } from './client/api.js';
import { UsageError } from './fail.js';

export const EXIT = {
  ok: 0,
  /** A job failed, a check found a problem, can-i says no, or anything not named below. */
  failure: 1,
  /** The command line was wrong (unknown flag, missing argument, bad value), or not logged in. */
  usage: 2,
  /** The job ended cancelled (submit --wait). */
  cancelled: 3,
  /** The gateway refused: forbidden by policy, or over a quota. */
  refused: 4,
  /** The gateway could not be reached: connection refused, no such host, an untrusted certificate, no answer. */
  unreachable: 5,
  /** Ctrl-C while watching a job (the job goes on). */
  interrupted: 130,
} as const;

/** The README's table of exit codes, in this order. */
export const EXIT_MEANINGS: readonly [number, string][] = [
  [EXIT.ok, 'done; can-i: allowed; submit --wait: the job succeeded'],
  [EXIT.failure, 'failed: the job failed (submit --wait), a check found a problem (audit verify, policy lint, test, status), denied (can-i), any other error'],
  [EXIT.usage, 'usage: an unknown command or flag, a missing or bad argument, not logged in'],
  [EXIT.cancelled, 'the job was cancelled (submit --wait)'],
  [EXIT.refused, 'refused by the gateway: forbidden by policy (403) or over a quota (quota_exceeded)'],
  [EXIT.unreachable, 'the gateway cannot be reached: connection refused, unknown host, untrusted certificate, no answer'],
  [EXIT.interrupted, 'Ctrl-C while following a job (submit --wait); the job goes on'],
];

export function exitCodeOf(err: unknown): number {
  if (err instanceof ConnectionError) return EXIT.unreachable;
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof ApiError && (err.status === 403 || err.code === 'forbidden' || err.code === 'quota_exceeded')) return EXIT.refused;
  return EXIT.failure;
}
