// Ending a run, whatever ends it (its commit, a failure, a cancel, its time limit): the one way a job
// leaves memory. Apart because every other part of the engine ends jobs through it.
import { join } from 'node:path';
import type { JobState } from '../../wire/index.js';
import { removeJobArea, removeTree } from '../sandbox/index.js';
import { type EngineContext, statusOf } from './engine-context.js';
import { type JobRun, jobStatus } from './job-run.js';

/**
 * Ends a run. The database learns the outcome first (it is the truth a restart reads); status
 * shows it only once the job's processes are gone and its staging removed, so "failed" or
 * "cancelled" always means nothing of the job is left.
 */
export async function finishRun(ctx: EngineContext, run: JobRun, state: JobState, error: string | null, committing = false): Promise<void> {
  if (run.finishing || ctx.closed) return;
  // Once the output is being moved into place the job's fate is the commit's: a cancel or a
  // time limit arriving then must not report "cancelled" for a dataset that appears anyway.
  if (run.committing && !committing) return;
  run.finishing = true;
  run.stopped = true;
  if (run.deadline !== null) clearTimeout(run.deadline);
  for (const worker of run.workers) worker.kill();
  const at = new Date().toISOString();
  ctx.db.finish(run.row.id, state, error, at);
  await run.preparation; // never remove an area while it is being made
  if (run.area !== null) await removeJobArea(run.area, { namespaced: ctx.o.isolation.bwrap }).catch((err: Error) => ctx.o.log.error({ job: run.row.id, err: err.message }, 'could not remove the job area'));
  else await removeTree(join(ctx.stagingRoot, run.row.id)).catch(() => undefined);
  run.row = { ...run.row, state, error, finished_at: at };
  run.log.engine(state === 'succeeded' ? `succeeded: ${summary(run)}` : `${state}${error === null ? '' : `: ${error}`}`);
  run.log.end();
  ctx.runs.delete(run.row.id);
  ctx.uids?.release(run.row.id);
  ctx.o.log[state === 'failed' ? 'warn' : 'info']({ job: run.row.id, state, error }, 'job finished');
  ctx.events.emit('finished', statusOf(ctx, run.row.id)!);
  run.markEnded();
  ctx.reschedule();
}

function summary(run: JobRun): string {
  const s = jobStatus(run.row, run.parts);
  return `${s.partitions.done} partitions, ${s.rows_in} rows in, ${s.rows_out} rows out, ${s.bytes_out} bytes`;
}
