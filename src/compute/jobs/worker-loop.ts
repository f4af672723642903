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

/**
 * About how much work a worker holds queued (the running partition included): enough that it goes
 * on while the engine hears of a few answered together (python_runner.py sends them at most 10 ms
 * apart), little enough that a worker leaving for fair share, or stopped, has little left to run.
 */
const QUEUE_S = 0.05;

/** How many partitions a worker may hold: 2 until the job's partitions are timed, then about QUEUE_S of them. */
export function queueLength(depth: number, partitionSeconds: number | null): number {
  if (depth <= 1) return 1;
  if (partitionSeconds === null) return 2;
  return Math.min(depth, Math.max(2, Math.ceil(QUEUE_S / Math.max(partitionSeconds, 0.0005))));
}

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
      // A first attempt writes the partition's own name, so keeping it renames nothing; a retry
      // writes its attempt's file, renamed over whatever the failed attempt left under that name.
      const attemptFile = part.attempts === 1 ? file : `${file}.a${part.attempts}`;
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
    // Handed to the worker, in order: the running partition, and (a runner with depth > 1) the next
    // ones waiting in its pipe, so it goes on without waiting for the engine to hear of the last
    // (queueLength). A worker holding k takes one more only while k are left for every worker of
    // the job: near the end the queues shrink together, so the workers finish together and no
    // partition queued here waits while another worker has nothing to do.
    const handed: ReturnType<typeof dispatch>[] = [];
    // Once nothing is left to hand, the worker is told to exit after what it holds (finish): its
    // exit overlaps the last partitions' bookkeeping instead of following it. From then on it is
    // handed nothing, even a partition another worker's failure puts back (a fresh worker takes it).
    let leaving = false;
    const fill = () => {
      if (leaving) return;
      const length = queueLength(worker.depth, run.partitionSeconds);
      while (handed.length < length && run.todo.length >= run.workers.size * handed.length) {
        const idx = next();
        if (idx === undefined) break;
        const d = dispatch(idx);
        d.outcome.catch(() => undefined);
        handed.push(d);
      }
      if (run.todo.length === 0 && handed.length > 0 && worker.finish !== undefined) {
        leaving = true;
        worker.finish();
      }
    };
    // Queued here, not begun or begun just now: back to the front of the job's list, the attempt not counted.
    const giveBack = () => {
      for (const q of handed.splice(0).reverse()) {
        q.part.state = 'todo';
        q.part.attempts -= 1;
        ctx.db.partitionInterrupted(row.id, q.idx);
        run.todo.unshift(q.idx);
      }
    };
    // Over the job's share while another job waits for a slot. Such a worker takes no more (next()),
    // but what it holds queued could be up to QUEUE_MAX partitions as long as the job makes them (its
    // past partitions size the queue): the other job must wait for the partition running, not for those.
    const owesSlot = () => run.workers.size > run.target && [...ctx.runs.values()].some((r) => r !== run && !r.stopped && r.startable && r.workers.size < r.target);
    fill();
    if (handed.length > 0) run.phases.mark('first_handed');
    while (handed.length > 0) {
      const { idx, part, file, attemptFile, shown, outcome: pending } = handed[0]!;
      const outcome = await pending;
      handed.shift();
      if (handed.length === 0) run.running.delete(worker);
      if (run.stopped) return;
      if (!outcome.ok && outcome.unanswered === true) {
        // It ran to its end, then its worker died before answering (the one running then is next
        // in line, and fails): not this partition's failure. Run again, the attempt not counted.
        part.state = 'todo';
        part.attempts -= 1;
        ctx.db.partitionInterrupted(row.id, idx);
        run.todo.unshift(idx);
        healthy = false;
        continue;
      }
      if (outcome.ok) {
        if (Number.isFinite(outcome.seconds) && outcome.seconds >= 0) {
          run.partitionSeconds = run.partitionSeconds === null ? outcome.seconds : 0.8 * run.partitionSeconds + 0.2 * outcome.seconds;
        }
        // The worker gets its next partitions before this one's bookkeeping, so it never waits for the engine.
        fill();
        const error = await keepPartition(ctx, run, part, attemptFile, file, outcome);
        if (error !== null) {
          await finishRun(ctx, run, 'failed', error);
          return;
        }
        if (run.finished) run.phases.mark('last_done');
        if (handed.length > 0 && owesSlot()) {
          // The next one may have begun in the worker: it is stopped with the worker (a fresh one runs it later).
          giveBack();
          healthy = false;
          return;
        }
        continue;
      }
      // A partition queued behind the failed one did not run to its end here (the worker is
      // replaced): back to the front of the list, its attempt not counted.
      giveBack();
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
