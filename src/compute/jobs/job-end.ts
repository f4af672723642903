// Ending a run, whatever ends it (its commit, a failure, a cancel, its time limit): the one way a job
// leaves memory. Apart because every other part of the engine ends jobs through it.
import { join } from 'node:path';
import type { JobState, JobStatus } from '../../wire/index.js';
import { removeJobArea, removeTree } from '../sandbox/index.js';
import type { EngineContext } from './engine-context.js';
import { type JobRun, jobStatus } from './job-run.js';

/**
 * Ends a run. The database learns the outcome first (it is the truth a restart reads). A failed or
 * cancelled job is shown only once its processes are gone and its staging removed, so "failed" or
 * "cancelled" always means nothing of the job is left. A succeeded job that ran in bubblewrap is
 * shown as soon as its end is recorded: its commit already needed every process of the job gone
 * (its pid namespace with them) and its output out of the tasks' reach (job-commit.ts), and its
 * /tmp was private, so what is left is its area (root's now, the inputs' links and work/), removed
 * just after; the job's uid is given to no other job until then. The person waiting (and a next job
 * that reads the output) need not wait for that removal. Without bubblewrap the job's uid may have
 * left files in the host's /tmp or a SysV segment: those are swept before "succeeded" is shown.
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
  for (const spare of run.spareRunners.splice(0)) spare.worker.kill();
  const at = new Date().toISOString();
  ctx.db.finish(run.row.id, state, error, at);
  run.phases.mark('recorded');
  const committed = state === 'succeeded' && committing && ctx.o.isolation.bwrap;
  if (committed) tell(ctx, run, state, error, at);
  await run.preparation; // never remove an area while it is being made
  if (run.area !== null) await removeJobArea(run.area, { namespaced: ctx.o.isolation.bwrap }).catch((err: Error) => ctx.o.log.error({ job: run.row.id, err: err.message }, 'could not remove the job area'));
  else await removeTree(join(ctx.stagingRoot, run.row.id)).catch(() => undefined);
  run.phases.mark('cleaned');
  ctx.uids?.release(run.row.id);
  if (!committed) tell(ctx, run, state, error, at);
  ctx.o.log[state === 'failed' ? 'warn' : 'info']({ job: run.row.id, state, error, phases: run.phases.toJSON() }, 'job finished');
  run.markEnded();
  ctx.reschedule();
}

/** The job's end in its log, the job out of memory (status from the database), and the end published. */
function tell(ctx: EngineContext, run: JobRun, state: JobState, error: string | null, at: string): void {
  // Until here a status of the run (from memory) still says running: the end is shown from now on.
  run.row = { ...run.row, state, error, finished_at: at };
  run.log.engine(state === 'succeeded' ? `succeeded: ${summary(run)}` : `${state}${error === null ? '' : `: ${error}`}`);
  run.log.end();
  ctx.runs.delete(run.row.id);
  ctx.events.emit('finished', endStatus(ctx, run));
  run.phases.mark('told');
  ctx.reschedule();
}

/**
 * The ended job's status as the database now has it: its row read back (core seconds are added up
 * there), its partitions from memory, which every partition write went through in the same order
 * (flushed first, as statusOf does), rather than all of them read back from the database again.
 */
function endStatus(ctx: EngineContext, run: JobRun): JobStatus {
  ctx.db.flush();
  const row = ctx.db.job(run.row.id);
  return row === undefined ? jobStatus(run.row, run.parts) : jobStatus(row, run.parts);
}

function summary(run: JobRun): string {
  const s = jobStatus(run.row, run.parts);
  return `${s.partitions.done} partitions, ${s.rows_in} rows in, ${s.rows_out} rows out, ${s.bytes_out} bytes`;
}
