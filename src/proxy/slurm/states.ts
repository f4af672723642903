// What Slurm says about a job array, mapped onto the gateway's job status; and slurmrestd's
// answers checked. Pure functions on a given clock: the Slurm backend asks, these decide.
//
// One job is one array, one array task per partition. While any task has not ended (or Slurm's
// answer lacks one), the job is queued (nothing started yet) or running; once every task has
// ended it failed (any task ended in a failure state: the worst kind is reported, with the
// partitions), else it was cancelled (a cancelled task and no failure), else it succeeded.
import { GatehouseError, type JobStatus } from '../../wire/index.js';

/** One array task as the mapping needs it, whatever the API version said. Times in epoch seconds (0: not yet). */
export interface SlurmTask {
  task_id: number;
  /** Slurm's base state: PENDING, RUNNING, COMPLETED, ... */
  state: string;
  /** Slurm's state_reason, null when it gives none ("None"). */
  reason: string | null;
  start_time: number;
  end_time: number;
  cpus: number;
  /** A wait status: exit status << 8, or the signal in the low 7 bits. */
  exit_code: number;
  /** How many times Slurm restarted (requeued) it. */
  restarts: number;
  /** Slurm's own elapsed seconds, when the answer carries it (slurmdbd); else from the times. */
  elapsed?: number;
}

/** The part of a JobStatus an array's tasks decide. */
export type SlurmArrayView = Pick<JobStatus, 'state' | 'reason' | 'error' | 'partitions' | 'workers' | 'attempts' | 'started_at' | 'finished_at' | 'core_seconds'>;

/** Ended, and how: the worst first (the one a failed job reports). */
const FAILURES: Record<string, (subject: string, first: SlurmTask) => string> = {
  TIMEOUT: (s) => `time limit reached on Slurm (TIMEOUT) for ${s}; the array was stopped`,
  OUT_OF_MEMORY: (s) => `${s} ran out of memory on Slurm (OUT_OF_MEMORY)`,
  NODE_FAIL: (s) => `a Slurm node failed while running ${s} (NODE_FAIL)`,
  BOOT_FAIL: (s) => `a Slurm node failed to boot for ${s} (BOOT_FAIL)`,
  DEADLINE: (s) => `${s} reached its deadline on Slurm (DEADLINE)`,
  PREEMPTED: (s) => `${s} was preempted on Slurm (PREEMPTED)`,
  FAILED: (s, first) => `${s} failed on Slurm (FAILED, ${exitText(first.exit_code)})`,
  SPECIAL_EXIT: (s, first) => `${s} failed on Slurm (SPECIAL_EXIT, ${exitText(first.exit_code)})`,
  REVOKED: (s) => `${s} was revoked by Slurm (REVOKED)`,
};
const ENDED_OK = 'COMPLETED';
const ENDED_CANCELLED = 'CANCELLED';
/** Not started: waiting for resources, for its nodes, or again after a requeue. */
const WAITING = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD']);
/** Processes alive on a node. */
const RUNNING = new Set(['RUNNING', 'COMPLETING', 'SIGNALING', 'STAGE_OUT', 'RESIZING']);

const PENDING_REASONS: Record<string, string> = {
  Resources: 'for free resources',
  Priority: 'behind jobs of higher priority',
};

function isEnded(state: string): boolean {
  return state === ENDED_OK || state === ENDED_CANCELLED || state in FAILURES;
}

/** The array's status from its tasks; `total` is its partition count; `now` in epoch seconds. */
export function mapSlurmArray(tasks: readonly SlurmTask[], total: number, now: number): SlurmArrayView {
  const seen = new Map<number, SlurmTask>();
  for (const t of tasks) seen.set(t.task_id, t);
  const all = [...seen.values()];
  const done = all.filter((t) => t.state === ENDED_OK).length;
  const failedTasks = all.filter((t) => t.state in FAILURES);
  const running = all.filter((t) => RUNNING.has(t.state)).length;
  const started = all.filter((t) => t.start_time > 0);
  const ended = all.length >= total && all.every((t) => isEnded(t.state));

  const core_seconds = started.reduce((sum, t) => sum + elapsedOf(t, now) * t.cpus, 0);
  const attempts = started.reduce((sum, t) => sum + 1 + t.restarts, 0);
  const startedAt = started.length > 0 ? Math.min(...started.map((t) => t.start_time)) : null;
  const view: SlurmArrayView = {
    state: 'queued',
    reason: null,
    error: null,
    partitions: { total, done, failed: failedTasks.length, running },
    workers: running,
    attempts,
    started_at: startedAt === null ? null : iso(startedAt),
    finished_at: null,
    core_seconds,
  };
  if (ended) {
    view.finished_at = iso(Math.max(0, ...all.map((t) => t.end_time)));
    const kind = Object.keys(FAILURES).find((k) => failedTasks.some((t) => t.state === k));
    if (kind !== undefined) {
      const ofKind = failedTasks.filter((t) => t.state === kind).sort((a, b) => a.task_id - b.task_id);
      view.state = 'failed';
      view.error = (FAILURES[kind] as (s: string, f: SlurmTask) => string)(subjectOf(ofKind.map((t) => t.task_id)), ofKind[0] as SlurmTask);
    } else {
      view.state = all.some((t) => t.state === ENDED_CANCELLED) ? 'cancelled' : 'succeeded';
    }
    return view;
  }
  // Not ended: running once anything has started (or ended, or is in a state we do not know).
  if (all.some((t) => !WAITING.has(t.state))) {
    view.state = 'running';
    return view;
  }
  view.reason = waitingReason(all);
  return view;
}

function waitingReason(tasks: SlurmTask[]): string {
  const pending = tasks.find((t) => t.state === 'PENDING');
  if (pending?.reason) {
    const words = PENDING_REASONS[pending.reason];
    return words ? `waiting in Slurm ${words} (${pending.reason})` : `waiting in Slurm (${pending.reason})`;
  }
  if (pending === undefined && tasks.some((t) => t.state === 'CONFIGURING')) return 'waiting in Slurm for its nodes to be ready (CONFIGURING)';
  const other = tasks.find((t) => t.state !== 'PENDING');
  return other ? `waiting in Slurm (${other.state})` : 'waiting in Slurm';
}

function elapsedOf(t: SlurmTask, now: number): number {
  if (t.elapsed !== undefined) return Math.max(0, t.elapsed);
  // A running task's end_time is when its time limit would end it, not an end.
  const until = isEnded(t.state) || t.state === 'COMPLETING' ? (t.end_time > 0 ? t.end_time : now) : now;
  return Math.max(0, until - t.start_time);
}

function subjectOf(ids: number[]): string {
  if (ids.length === 1) return `partition ${ids[0]}`;
  if (ids.length <= 3) return `partitions ${ids.join(', ')}`;
  return `partitions ${ids.slice(0, 3).join(', ')} and ${ids.length - 3} more`;
}

function exitText(status: number): string {
  const signal = status & 0x7f;
  return signal !== 0 ? `killed by signal ${signal}` : `exit status ${(status >> 8) & 0xff}`;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

// ---- reading slurmrestd's job records ----

/** Slurm's "no value" and "infinite" for 32-bit fields (v0.0.38 prints them as numbers). */
const NO_VAL = 0xfffffffe;
const INFINITE = 0xffffffff;
const MAX_TASK_IDS = 10_000;

/** A number from v0.0.38 (plain) or later versions ({set, infinite, number}); undefined when unset. */
function num(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value !== NO_VAL && value !== INFINITE ? value : undefined;
  if (value !== null && typeof value === 'object') {
    const v = value as { set?: unknown; infinite?: unknown; number?: unknown };
    if (v.set === false || v.infinite === true) return undefined;
    return num(v.number);
  }
  return undefined;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  return undefined;
}

function exitCodeOf(value: unknown): number {
  if (typeof value === 'number') return num(value) ?? 0;
  if (value !== null && typeof value === 'object') {
    const v = value as { status?: unknown; return_code?: unknown; signal?: { id?: unknown } };
    const status = Array.isArray(v.status) ? v.status : [];
    if (status.includes('SIGNALED')) return (num(v.signal?.id) ?? 0) & 0x7f;
    return ((num(v.return_code) ?? 0) & 0xff) << 8;
  }
  return 0;
}

/**
 * The tasks of one array (its array_job_id) from a `GET .../jobs` answer's `jobs`: a record per
 * task that Slurm has split off, and the pending rest as one record whose array_task_string names
 * them ("2-9%4"). Sorted by task; a task's own record wins over the pending rest.
 */
export function slurmTasksOf(jobs: readonly unknown[], arrayJobId: number): SlurmTask[] {
  const out = new Map<number, SlurmTask>();
  const rest: SlurmTask[] = [];
  for (const raw of jobs) {
    if (raw === null || typeof raw !== 'object') continue;
    const job = raw as Record<string, unknown>;
    if (num(job.array_job_id) !== arrayJobId) continue;
    const reason = text(job.state_reason);
    const base: Omit<SlurmTask, 'task_id'> = {
      state: (text(job.job_state) ?? 'UNKNOWN').toUpperCase(),
      reason: reason === undefined || reason === '' || reason === 'None' ? null : reason,
      start_time: num(job.start_time) ?? 0,
      end_time: num(job.end_time) ?? 0,
      cpus: num(job.cpus) ?? 1,
      exit_code: exitCodeOf(job.exit_code),
      restarts: num(job.restart_cnt) ?? 0,
    };
    const id = num(job.array_task_id);
    if (id !== undefined) out.set(id, { task_id: id, ...base });
    else for (const t of arrayTaskIds(text(job.array_task_string) ?? '')) rest.push({ task_id: t, ...base });
  }
  for (const t of rest) if (!out.has(t.task_id)) out.set(t.task_id, t);
  return [...out.values()].sort((a, b) => a.task_id - b.task_id);
}

/** "0-3%2", "1,5,7-8", "0-10:5" → the task ids; [] for anything malformed or too large. */
export function arrayTaskIds(spec: string): number[] {
  const body = spec.replace(/%\d+$/, '');
  if (body === '') return [];
  const ids: number[] = [];
  for (const part of body.split(',')) {
    const m = /^(\d{1,7})(?:-(\d{1,8})(?::(\d{1,7}))?)?$/.exec(part);
    if (!m) return [];
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    if (to < from || step < 1 || (to - from) / step + ids.length >= MAX_TASK_IDS) return [];
    for (let i = from; i <= to; i += step) ids.push(i);
  }
  return ids;
}

// ---- slurmrestd's answers ----

export interface SlurmErrorEntry {
  error: string;
  error_number?: number;
}

/** What Slurm says when it does not accept the person: their token or their account. */
const IDENTITY_REFUSED = /authenticat|invalid user|user id|access denied|permission denied|unauthori[sz]ed|invalid token|expired/i;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function clean(value: unknown): string {
  return typeof value === 'string' ? value.replace(CONTROLS, ' ').replace(/ {2,}/g, ' ').trim().slice(0, 500) : '';
}

/**
 * slurmrestd's answer, or a GatehouseError: Slurm reports failures in `errors[]`, sometimes with
 * HTTP 200, so a non-empty list fails whatever the status. A refused identity is 403 forbidden;
 * anything else is not_ready (the gateway could not get Slurm to do it).
 */
export function checkSlurmResponse(httpStatus: number, body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatehouseError('not_ready', 'slurmrestd answered something that is not a JSON object', { http_status: httpStatus });
  }
  const answer = body as Record<string, unknown>;
  const errors = answer.errors;
  if (errors !== undefined && !Array.isArray(errors)) throw new GatehouseError('not_ready', 'slurmrestd answered an errors field that is not a list', { http_status: httpStatus });
  if (Array.isArray(errors) && errors.length > 0) {
    const entries: SlurmErrorEntry[] = errors.map((e) => {
      const item: Record<string, unknown> = e !== null && typeof e === 'object' ? (e as Record<string, unknown>) : { error: e };
      const parts = [clean(item.description), clean(item.error)].filter((p, i, all) => p !== '' && all.indexOf(p) === i);
      const number = num(item.error_number) ?? num(item.error_code) ?? num(item.errno);
      return { error: parts.join(': ') || 'an error without a description', ...(number !== undefined ? { error_number: number } : {}) };
    });
    const said = entries.map((e) => (e.error_number !== undefined ? `${e.error} (error ${e.error_number})` : e.error)).join('; ');
    if (entries.some((e) => IDENTITY_REFUSED.test(e.error))) {
      throw new GatehouseError('forbidden', `Slurm did not accept you as your POSIX account: ${said}`, { slurm_errors: entries });
    }
    throw new GatehouseError('not_ready', `Slurm refused the request: ${said}`, { slurm_errors: entries });
  }
  if (httpStatus < 200 || httpStatus > 299) throw new GatehouseError('not_ready', `slurmrestd answered HTTP ${httpStatus}`, { http_status: httpStatus });
  return answer;
}
