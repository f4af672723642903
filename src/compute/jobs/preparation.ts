// A job made ready to run: its run registered in memory, then its area built (its uid taken or
// restored, its folders made and its source written, then its inputs linked). Workers may start
// once the source is written (loading it overlaps the linking of the inputs) but are handed no
// partition before the area is complete. Apart because a new job and one resumed after a restart
// go through it alike, and a cancel must wait for it.
import { join } from 'node:path';
import { exists, partitionFile } from '../../catalog/index.js';
import { prepareJobArea, writeJobSource } from '../sandbox/index.js';
import type { EngineContext } from './engine-context.js';
import { commitRun } from './job-commit.js';
import type { JobRow, PartitionRow } from './job-db.js';
import { finishRun } from './job-end.js';
import { JobLog } from './job-log.js';
import { type InputShape, JobRun } from './job-run.js';
import { SOURCE_FILE } from './task-workers.js';
import { scrub } from './user-messages.js';

/** Holds a job in memory from now until it ends: what status, scheduling and the workers read. */
export function activate(ctx: EngineContext, row: JobRow, parts: PartitionRow[], input: InputShape): JobRun {
  const run = new JobRun(row, row.seq, parts, input, JobLog.forJob(join(ctx.o.stateDir, 'logs'), row.id, ctx.o.logMaxBytes));
  ctx.runs.set(row.id, run);
  return run;
}

/** Builds the job's area; finishRun waits for this, so a cancel never races the linking of inputs. */
export function startPreparing(ctx: EngineContext, run: JobRun): void {
  run.preparation = prepare(ctx, run);
  void run.preparation.then(async (problem) => {
    if (problem !== null) await finishRun(ctx, run, 'failed', `the job could not be prepared: ${problem}`);
    else if (!run.stopped && run.finished && run.workers.size === 0) await commitRun(ctx, run);
    else ctx.reschedule();
  });
}

/** Null when the area is ready, else why not (never throws). */
async function prepare(ctx: EngineContext, run: JobRun): Promise<string | null> {
  const { row } = run;
  try {
    let uid: number | null = null;
    // A new job may take a spare sandbox (spares.ts): its area and uid become the job's, its workers the job's first.
    const spare = row.uid === null ? (ctx.spares?.take(run) ?? null) : null;
    if (spare !== null) {
      uid = spare.area.uid;
      if (uid !== null) ctx.db.setUid(row.id, uid);
      run.spareRunners = spare.runners;
    } else if (ctx.uids !== null) {
      if (row.uid !== null) {
        // Whatever a killed engine's workers left running as this uid was killed as the engine opened (recovery.ts).
        ctx.uids.restore(row.id, row.uid);
        uid = row.uid;
      } else {
        // A spare never keeps a job from its uid: discarded (its uid released) when the pool is empty.
        if (ctx.uids.free === 0) await ctx.spares?.discard();
        uid = ctx.uids.take(row.id);
        ctx.db.setUid(row.id, uid);
      }
    }
    // The area is made with synchronous calls (then the workers spawned, a few ms each), so after
    // this turn: a new job's submission is answered first.
    await new Promise((resolve) => setImmediate(resolve));
    if (run.stopped) return null;
    run.area = await prepareJobArea(ctx.o.isolation, {
      stagingRoot: ctx.stagingRoot,
      jobId: row.id,
      uid,
      inputs: run.parts.map((p) => run.input.files[p.input_idx]!),
      foldersMade: async (area) => {
        if (run.stopped) return;
        if (row.spec.source !== undefined) await writeJobSource(area, SOURCE_FILE[row.spec.runtime], row.spec.source);
        run.area = area;
        run.startable = true;
        run.phases.mark('folders');
        ctx.reschedule(); // its workers start loading the source while the inputs are linked
      },
    });
    if (run.stopped) return null;
    // A partition recorded done whose file is gone (a hand-cleaned staging) is simply redone.
    for (const p of run.parts) {
      if (p.state === 'done' && !(await exists(join(run.area.output, partitionFile(p.idx, run.outputFormat))))) {
        ctx.db.partitionTodo(row.id, p.idx);
        run.bytesOut -= p.bytes_out; // counted at its first keep; counted again when it is kept anew
        p.state = 'todo';
        run.todo.push(p.idx);
      }
    }
    run.ready = true;
    run.phases.mark('area');
    return null;
  } catch (err) {
    return scrub(ctx.o.dataRoot, (err as Error).message);
  }
}
