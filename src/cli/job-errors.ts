// The gateway's job errors in the words of the verb that met them: "no job X" rather than
// "not found", and a quota refusal that says what was asked and what is allowed, on one line.
import { ApiError } from './client/api.js';
import { formatDuration } from './job-view.js';

/** What the verb was doing: the job it named, if any. */
export interface JobContext {
  id?: string | undefined;
  verb: 'submit' | 'status' | 'logs' | 'cancel' | 'jobs' | 'quota';
}

/** The same error, reworded when its code has better words here; anything else unchanged. */
export function jobError(err: unknown, context: JobContext): unknown {
  if (!(err instanceof ApiError)) return err;
  const reworded = (message: string) => new ApiError(err.status, err.code, message, err.body);
  if (err.code === 'not_found' && context.id !== undefined) return reworded(`no job ${context.id}`);
  if (err.code === 'quota_exceeded') return reworded(quotaLine(err.body) ?? `quota: ${err.message}`);
  // The gateway's words already name the job ("job X has already been cancelled"): said once.
  if (err.code === 'conflict' && context.verb === 'cancel') return reworded(err.message.startsWith(`job ${context.id} `) ? err.message : `job ${context.id} has already ended: ${err.message}`);
  // The API's field is the job file's; on the command line it is a flag.
  if (err.code === 'conflict' && context.verb === 'submit' && err.message.includes('submit with "mode": "overwrite"')) return reworded(err.message.replace('submit with "mode": "overwrite" to replace it', 'add --overwrite (mode: overwrite in a job file) to replace it'));
  if (err.code === 'invalid_request' && typeof err.body.field === 'string' && !err.message.includes(err.body.field)) return reworded(`${err.body.field}: ${err.message}`);
  return err;
}

interface QuotaRefusal {
  limit: string;
  used: number;
  requested: number;
  max: number;
}

/** How each limit reads in a sentence: the amount asked for, and the limit's own value. */
const QUOTA_WORDS: Record<string, { asked: (n: number) => string; max: (n: number) => string }> = {
  max_cores: { asked: (n) => `${n} cores`, max: String },
  max_memory_mb: { asked: (n) => `${n} MB of memory`, max: (n) => `${n} MB` },
  max_job_runtime_s: { asked: (n) => `a time limit of ${formatDuration(n)}`, max: formatDuration },
  max_concurrent_jobs: { asked: (n) => `${n} more running job${n === 1 ? '' : 's'}`, max: (n) => `${n} at once` },
  core_hours_per_day: { asked: (n) => `${round(n)} core-hours`, max: (n) => `${round(n)} a day` },
  max_storage_mb: { asked: (n) => `${round(n)} MB more storage`, max: (n) => `${n} MB` },
};

const round = (n: number) => String(Number(n.toFixed(2)));

/** `quota: 16 cores requested, the limit is 8 (quota_exceeded: max_cores, used 0, requested 16, max 8)`. */
export function quotaLine(body: Record<string, unknown>): string | undefined {
  const { limit, used, requested, max } = body as Partial<QuotaRefusal>;
  if (typeof limit !== 'string' || typeof requested !== 'number' || typeof max !== 'number') return undefined;
  const words = QUOTA_WORDS[limit] ?? { asked: (n: number) => `${limit} ${round(n)}`, max: round };
  // Usage matters to a pooled limit (cores across running jobs); a zero says nothing worth a clause.
  const inUse = typeof used === 'number' && used > 0 ? ` with ${round(used)} in use` : '';
  return `quota: ${words.asked(requested)} requested${inUse}, the limit is ${words.max(max)} (quota_exceeded: ${limit}, used ${used ?? '?'}, requested ${requested}, max ${max})`;
}
