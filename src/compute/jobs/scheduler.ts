// Slot accounting: the engine's slots shared out by fair share among the runs that are ready, and a
// worker started in each slot a run is given. Apart because it is the one place that decides who runs.
import type { EngineContext } from './engine-context.js';
import { fairShare } from './fair-share.js';
import { finishRun } from './job-end.js';
import type { JobRun, TaskWorker } from './job-run.js';
import { newWorker } from './task-workers.js';
import { armDeadline } from './time-limit.js';
import { scrub } from './user-messages.js';
import { workLoop } from './worker-loop.js';

export function reschedule(ctx: EngineContext): void {
  if (ctx.closed) return;
  const runs = [...ctx.runs.values()];
  const targets = fairShare(
    ctx.o.slots,
    runs.map((r) => ({ id: r.row.id, user: r.row.user, seq: r.seq, wants: r.wants })),
  );
  for (const r of runs) r.target = targets.get(r.row.id) ?? 0;
  let busy = runs.reduce((n, r) => n + r.workers.size, 0);
  // The furthest below its share first, so a freed slot goes where fairness says.
  runs.sort((a, b) => b.target - b.workers.size - (a.target - a.workers.size) || a.seq - b.seq);
  for (const run of runs) {
    while (!run.stopped && run.startable && run.workers.size < run.target && busy < ctx.o.slots) {
      spawn(ctx, run);
      busy++;
    }
  }
}

function spawn(ctx: EngineContext, run: JobRun): void {
  if (run.row.state === 'queued') {
    const at = new Date().toISOString();
    ctx.db.started(run.row.id, at);
    run.row = { ...run.row, state: 'running', started_at: run.row.started_at ?? at };
    run.log.engine(`started (${ctx.o.isolation.describe()})`);
    armDeadline(ctx, run);
    ctx.events.emit('started', run.row.id);
  }
  let worker: TaskWorker;
  try {
    worker = newWorker(ctx.o, run);
  } catch (err) {
    void finishRun(ctx, run, 'failed', `a worker could not be started: ${(err as Error).message}`);
    return;
  }
  run.workers.add(worker);
  run.phases.mark('worker_spawned');
  // Nothing a job does may take the engine down: whatever escapes fails that job alone.
  const loop: Promise<void> = workLoop(ctx, run, worker)
    .catch((err: Error) => {
      ctx.o.log.error({ job: run.row.id, err: err.message }, 'worker loop failed');
      return finishRun(ctx, run, 'failed', `the engine failed running this job: ${scrub(ctx.o.dataRoot, err.message)}`);
    })
    .finally(() => ctx.loops.delete(loop));
  ctx.loops.add(loop);
}
