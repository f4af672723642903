// A job's progress on one line (a bar on a terminal, plain text in a log), the summary at its end,
// and the exit code it ends with. Pure functions of a Job and the clock, so tests need no gateway.
import type { JobState } from '../wire/index.js';
import { EXIT as CODES } from './exit-codes.js';
import { visible } from './safe-text.js';
import { ageSeconds, cancelledByText, formatCount, formatDuration, type Job, runSeconds } from './job-view.js';

/** What `submit --wait` exits with: scripts branch on these, so they are part of the contract. */
export const EXIT = { succeeded: CODES.ok, failed: CODES.failure, cancelled: CODES.cancelled, interrupted: CODES.interrupted } as const;

/** The exit code of a job that has ended; undefined while it has not. */
export function exitCodeFor(state: JobState): number | undefined {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled' ? EXIT[state] : undefined;
}

const BAR_WIDTH = 24;

export function progressBar(done: number, total: number, width = BAR_WIDTH): string {
  const filled = total > 0 ? Math.min(width, Math.floor((done / total) * width)) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

export const percent = (done: number, total: number) => `${total > 0 ? Math.floor((done / total) * 100) : 0}%`;

/**
 * Time left at the rate partitions have finished so far; '?' until the first one finishes (the
 * first partitions also pay for worker start-up, so the estimate improves as more finish).
 */
export function eta(job: Job, now: number): string {
  const { done, total } = job.partitions;
  if (done >= total && total > 0) return formatDuration(0);
  if (done === 0) return '?';
  return formatDuration((runSeconds(job, now) / done) * (total - done));
}

/** The progress line without the bar: what a log (stderr not a terminal) gets. */
export function describeProgress(job: Job, now: number): string {
  const { done, total, failed } = job.partitions;
  const counted = `${done}/${total} partitions ${percent(done, total)}${failed > 0 ? ` (${failed} failed)` : ''}`;
  if (job.state === 'pending' || job.state === 'queued') {
    const place = job.queue_position ? ` #${job.queue_position} in queue` : '';
    const waiting = `${job.state}${place}${job.reason ? `: ${visible(job.reason)}` : ''} (waiting ${formatDuration(ageSeconds(job, now))})`;
    // Before the engine has the job it has no partitions to count: 0/0 would say nothing true.
    return total === 0 ? waiting : `${counted}  ${waiting}`;
  }
  const left = job.state === 'running' ? `  ETA ${eta(job, now)}` : '';
  return `${counted}  rows ${formatCount(job.rows_in)}  elapsed ${formatDuration(runSeconds(job, now))}${left}  ${job.state}`;
}

/** The live line on a terminal: a bar, then the same text a log gets. */
export function renderProgress(job: Job, now: number): string {
  return `${progressBar(job.partitions.done, job.partitions.total)} ${describeProgress(job, now)}`;
}

/** One line when a job has ended: what happened, how much it did, what it cost. */
export function summarize(job: Job, now = Date.now()): string {
  const { done, total, failed } = job.partitions;
  const parts = `${done}/${total} partitions${failed > 0 ? ` (${failed} failed)` : ''}`;
  const rows = `rows ${formatCount(job.rows_in)} → ${formatCount(job.rows_out)}`;
  const line = `${job.state}: ${parts}, ${rows}, elapsed ${formatDuration(runSeconds(job, now))}, ${job.core_seconds.toFixed(1)} core-seconds`;
  if (job.state === 'cancelled' && job.cancelled_by) return `${line}; cancelled by ${visible(cancelledByText(job)!)}`;
  return job.state === 'failed' && job.error ? `${line}; error: ${visible(job.error)}` : line;
}
