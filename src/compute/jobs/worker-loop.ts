// One worker's life: it pulls partitions while its job has some and it is within the job's fair
// share, retries or fails the job on a failed attempt, and on leaving gives its slot back (and
// commits the job when it was the last worker of a job whose partitions are all done). Apart because
// it is the engine's inner loop, the part that runs while everything else waits.
import { basename, join } from 'node:path';
import { partitionFile } from '../../catalog/index.js';
import { WorkerStartError } from '../runners/index.js';
import { outOfMemoryMessage, taskPaths } from '../sandbox/index.js';
import type { EngineContext } from './engine-context.js';
import { commitRun } from './job-commit.js';
import { finishRun } from './job-end.js';
import type { JobRun, TaskWorker } from './job-run.js';
import { keepPartition } from './partition-keep.js';
import { tail } from './user-messages.js';

/** One worker's life: pull partitions while the job has some and this worker is within its share. */
export async function workLoop(ctx: EngineContext, run: JobRun, worker: TaskWorker): Promise<void> {
  const { row } = run;
  const paths = taskPaths(ctx.o.isolation, run.area!, ctx.o.runtimeDir);
  let healthy = true;
  try {
    try {
      await worker.ready();
      run.phases.mark('worker_ready');
      // Started while the inputs were being linked: no partition before they all are.
      if ((await run.preparation) !== null || run.stopped) return;
    } catch (err) {
      if (run.stopped) return;
      healthy = false;
      const what = err instanceof WorkerStartError ? `the ${row.spec.runtime} source failed to load` : 'a worker could not start';
      await finishRun(ctx, run, 'failed', `${what}: ${tail(err instanceof Error ? err.message : String(err))}`);
      return;
    }
    const dispatch = (idx: number) => {
      const part = run.parts[idx]!;
      part.state = 'running';
      part.attempts += 1;
      ctx.db.partitionRunning(row.id, idx);
      run.running.set(worker, idx);
      const file = partitionFile(idx, run.outputFormat);
      const attemptFile = `${file}.a${part.attempts}`;
      // Users see the input's partition numbers (ctx.partition, [p7], errors); the output is numbered 0..n-1.
      const shown = part.input_idx;
      const outcome = worker.run({
        partition: shown,
        attempt: part.attempts,
        input: join(paths.input, basename(run.input.files[part.input_idx]!)),
        output: join(paths.output, attemptFile),
        format: run.input.format,
      });
      return { idx, part, file, attemptFile, shown, outcome };
    };
    // A worker over its job's share takes no more: its slot goes back to fair share.
    const next = () => (!run.stopped && run.workers.size <= run.target ? run.todo.shift() : undefined);
    // Handed to the worker, in order: the running partition, and (depth 2) the next one waiting in
    // its pipe, so it starts that without waiting for the engine to hear of the last. A second one
    // is queued only while enough is left for every other worker of the job: at the end of a job a
    // partition queued here must not wait while another worker has nothing to do.
    const handed: ReturnType<typeof dispatch>[] = [];
    const fill = () => {
      while (handed.length < worker.depth && (handed.length === 0 || run.todo.length >= run.workers.size)) {
        const idx = next();
        if (idx === undefined) return;
        const d = dispatch(idx);
        d.outcome.catch(() => undefined);
        handed.push(d);
      }
    };
    fill();
    if (handed.length > 0) run.phases.mark('first_handed');
    while (handed.length > 0) {
      const { idx, part, file, attemptFile, shown, outcome: pending } = handed[0]!;
      const outcome = await pending;
      handed.shift();
      if (handed.length === 0) run.running.delete(worker);
      if (run.stopped) return;
      if (outcome.ok) {
        // The worker gets its next partition before this one's bookkeeping, so it never waits for the engine.
        fill();
        const error = await keepPartition(ctx, run, part, attemptFile, file, outcome);
        if (error !== null) {
          await finishRun(ctx, run, 'failed', error);
          return;
        }
        if (run.finished) run.phases.mark('last_done');
        continue;
      }
      // A partition queued behind the failed one did not run to its end here (the worker is
      // replaced): back to the front of the list, its attempt not counted.
      for (const q of handed.splice(0).reverse()) {
        q.part.state = 'todo';
        q.part.attempts -= 1;
        ctx.db.partitionInterrupted(row.id, q.idx);
        run.todo.unshift(q.idx);
      }
      run.running.delete(worker);
      healthy = false; // a retry gets a fresh worker: this one's state is suspect
      const message = outcome.oom ? `${outOfMemoryMessage(shown, row.granted.memory_mb)}\n${tail(outcome.error)}` : tail(outcome.error);
      if (part.attempts < run.maxAttempts) {
        part.state = 'todo';
        part.error = message;
        ctx.db.partitionFailed(row.id, idx, 'todo', message);
        run.todo.push(idx);
        run.log.engine(`partition ${shown} attempt ${part.attempts} failed; retrying (its worker is replaced by a fresh one):\n${message}`);
        ctx.events.emit('partition', { job: row.id, seconds: 0, outcome: 'retried' });
        break;
      }
      part.state = 'failed';
      ctx.db.partitionFailed(row.id, idx, 'failed', message);
      ctx.events.emit('partition', { job: row.id, seconds: 0, outcome: 'failed' });
      await finishRun(ctx, run, 'failed', `partition ${shown} failed after ${part.attempts} attempt${part.attempts === 1 ? '' : 's'}: ${message}`);
      return;
    }
  } finally {
    run.running.delete(worker);
    if (healthy && !run.stopped) await worker.stop();
    else worker.kill();
    run.workers.delete(worker);
    if (!ctx.closed) ctx.db.addCoreSeconds(row.id, (Date.now() - worker.startedAt) / 1000);
    if (!run.stopped && run.finished && run.workers.size === 0) await commitRun(ctx, run);
    ctx.reschedule();
  }
}
