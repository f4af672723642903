// A job's time limit: a timer from the job's start (as recorded, so it survives a restart) that
// fails the job and kills every process of it. Apart because both a job's start and its resumption
// after a restart arm it.
import type { EngineContext } from './engine-context.js';
import { finishRun } from './job-end.js';
import type { JobRun } from './job-run.js';

export function armDeadline(ctx: EngineContext, run: JobRun): void {
  const limit = run.row.granted.time_limit_s;
  const started = Date.parse(run.row.started_at ?? new Date().toISOString());
  const left = Math.max(0, started + limit * 1000 - Date.now());
  run.deadline = setTimeout(() => void finishRun(ctx, run, 'failed', `time limit of ${limit} s reached; every process of the job was killed`), left);
  run.deadline.unref();
}
