// The job as the gateway shows it to its owner, and the small formatters every job verb shares,
// so that `jobs`, `status`, `submit --wait` and `quota` write durations and counts the same way.
import { FINAL_STATES, type JobState } from '../wire/lean.js';
import type { JobStatus } from '../wire/index.js';

/**
 * The gateway's job view: the engine's status plus the backend the job went to, a pending job's
 * place in its owner's queue, who cancelled a cancelled one and the `seen` token of a single job's
 * answer (each absent from an older gateway).
 */
export type Job = JobStatus & { backend: string; queue_position?: number | null; cancelled_by?: string | null; seen?: string };

/** 1st, 2nd, 3rd, 11th, 22nd: a place in a queue as people say it. */
export function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${n}${suffix}`;
}

/** Who cancelled, for its owner: `erin (its owner)` or `bob (not its owner: an admin)`. */
export const cancelledByText = (job: Job) => (job.cancelled_by ? `${job.cancelled_by}${job.cancelled_by === job.user ? ' (its owner)' : ' (not its owner: an admin)'}` : null);

/** 45s, 1m12s, 2h03m, 1d02h: short enough for a table, exact enough to compare. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** 1,234,567: rows are counted in the millions and read by people. */
export const formatCount = (n: number) => n.toLocaleString('en-US');

/** Seconds the job has run: from its start to its end, or to `now` while it runs; 0 before it starts. */
export function runSeconds(job: Job, now: number): number {
  if (job.started_at === null) return 0;
  const end = job.finished_at === null ? now : Date.parse(job.finished_at);
  return Math.max(0, (end - Date.parse(job.started_at)) / 1000);
}

/** Seconds since the job was submitted (its age in a listing, its wait while pending or queued). */
export const ageSeconds = (job: Job, now: number) => Math.max(0, (now - Date.parse(job.created_at)) / 1000);

export const isFinal = (state: JobState) => FINAL_STATES.includes(state);
