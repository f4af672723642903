// What `gatehouse jobs` and `gatehouse status` print for people: pure functions of the jobs and
// the clock, so the e2e tests and the unit tests read the same text the user does.
import { ageSeconds, cancelledByText, formatCount, formatDuration, isFinal, type Job, ordinal, runSeconds } from './job-view.js';
import { renderProgress } from './progress.js';
import { visible } from './safe-text.js';
import { formatBytes, table } from './table.js';

/** Long errors stay readable in a table row; `status` shows the whole text. */
const NOTE_MAX = 80;

/** The listing, newest first as the gateway sends it; the user column only when it can differ. */
export function renderJobList(jobs: Job[], now: number, withUser: boolean): string {
  const header = ['id', ...(withUser ? ['user'] : []), 'name', 'state', 'parts', 'input → output', 'cores', 'age', 'elapsed', 'note'];
  const rows = jobs.map((job) => [
    job.id,
    ...(withUser ? [job.user] : []),
    job.name,
    job.state,
    `${job.partitions.done}/${job.partitions.total}`,
    `${job.input} → ${job.output}`,
    String(job.resources.cores),
    formatDuration(ageSeconds(job, now)),
    job.started_at === null ? '-' : formatDuration(runSeconds(job, now)),
    note(job),
  ]);
  return table(header, rows);
}

/** Why a job waits (and its place in the queue), why it failed, who cancelled it: the column people look for first. */
function note(job: Job): string {
  if (job.state === 'failed') return folded(job.error ?? '', NOTE_MAX);
  if (job.state === 'pending' || job.state === 'queued') {
    const place = job.queue_position ? `#${job.queue_position} in queue` : '';
    return folded([place, job.reason ?? ''].filter(Boolean).join(': '), NOTE_MAX);
  }
  if (job.state === 'cancelled' && job.cancelled_by) return folded(`by ${job.cancelled_by}`, NOTE_MAX);
  return '';
}

/**
 * A text on one table row within `max` characters: its lines joined with ⏎ (a traceback stays on its
 * row), escaped before it is cut, so a cut never leaves half an escape sequence; `status` shows it all.
 */
export function folded(text: string, max: number): string {
  const line = visible(
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean)
      .join(' ⏎ '),
  );
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** `status`: one `key  value` line per fact, the ones that matter for the job's state first; each value on its line, escaped. */
export function renderStatus(job: Job, now: number): string {
  const { partitions: p, resources: r } = job;
  const lines: [string, string | null][] = [
    ['job', `${job.id} (${job.name})`],
    ['user', job.user],
    ['state', job.state],
    ['progress', job.state === 'running' ? renderProgress(job, now) : null],
    ['reason', job.state === 'pending' || job.state === 'queued' ? job.reason : null],
    ['queue', job.state === 'pending' && job.queue_position ? `${ordinal(job.queue_position)} in ${job.user}'s queue` : null],
    ['cancelled', job.state === 'cancelled' ? (cancelledByText(job) === null ? null : `by ${cancelledByText(job)}`) : null],
    ['error', job.state === 'failed' ? (job.error ?? 'no error reported') : null],
    ['data', `${job.input} → ${job.output}`],
    ['program', `${job.runtime} on ${job.backend}`],
    ['resources', `${r.cores} cores, ${r.memory_mb} MB per worker, time limit ${formatDuration(r.time_limit_s)}`],
    // An ended job has nothing running, whatever the last count said.
    ['partitions', `${p.done}/${p.total} done, ${isFinal(job.state) ? '' : `${p.running} running, `}${p.failed} failed`],
    ['rows', `${formatCount(job.rows_in)} in → ${formatCount(job.rows_out)} out`],
    ['bytes', `${formatBytes(job.bytes_in)} in → ${formatBytes(job.bytes_out)} out`],
    ['created', `${job.created_at} (${formatDuration(ageSeconds(job, now))} ago)`],
    ['started', job.started_at],
    ['finished', job.finished_at],
    ['elapsed', job.started_at === null ? null : formatDuration(runSeconds(job, now))],
    ['cost', `${job.core_seconds.toFixed(1)} core-seconds, ${job.attempts} partition attempts, ${job.workers} workers now`],
  ];
  return lines
    .filter((line): line is [string, string] => line[1] !== null)
    .map(([key, value]) => `${key.padEnd(11)} ${visible(value)}`)
    .join('\n');
}
