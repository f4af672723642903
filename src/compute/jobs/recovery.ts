// After a restart: every process a previous engine left running as a task uid is killed, every job
// it left unfinished is picked up again (committed if its dataset proves it, failed if its input
// changed, else resumed with what was running redone), and the areas of jobs that ended while the
// engine died are removed. Apart because it runs once, at open.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openDataset, openRoot } from '../../catalog/index.js';
import { killRangeLeftovers, REMOVING_PREFIX, removeTree, SPARE_PREFIX } from '../sandbox/index.js';
import type { EngineContext } from './engine-context.js';
import type { JobRow } from './job-db.js';
import { openInput, shape } from './job-input.js';
import type { InputShape } from './job-run.js';
import { activate, startPreparing } from './preparation.js';
import { armDeadline } from './time-limit.js';

/**
 * Before any uid is restored or given: kills every process of the task uid range (a previous engine
 * killed with its launcher leaves whatever of its launch chains had not yet set its parent-death
 * signal, spares' and ended jobs' included, which no restore would reach), and withholds a uid that
 * still has one. The range is this engine's alone (engine.task_uids), so nothing here is another's.
 */
export async function clearLeftoverUids(ctx: EngineContext): Promise<void> {
  const range = ctx.o.isolation.taskUids;
  if (ctx.uids === null || range === null) return;
  for (const uid of await killRangeLeftovers(range)) {
    ctx.uids.withhold(uid);
    ctx.o.log.error({ uid }, 'a process of this task uid survived every kill, or the uid is an account the name service knows (the range overlaps a directory\'s uids); no job will be given the uid until the engine restarts');
  }
}

/** Areas of jobs that ended while the engine died before it could remove them. */
export async function removeAbandonedAreas(ctx: EngineContext, keep: Set<string>): Promise<void> {
  const entries = await readdir(ctx.stagingRoot).catch(() => [] as string[]);
  for (const entry of entries) {
    // A tree whose removal was cut short stays in a root-only .removing-* folder: finish it. A spare's
    // area (.spare-*) died with the engine that made it (its workers by their parent-death signal).
    if ((entry.startsWith('.') && !entry.startsWith(REMOVING_PREFIX) && !entry.startsWith(SPARE_PREFIX)) || keep.has(entry)) continue;
    await removeTree(join(ctx.stagingRoot, entry)).catch((err: Error) => ctx.o.log.warn({ area: entry, err: err.message }, 'could not remove an abandoned job area'));
  }
}

/** After a restart: what was running is todo again, and the job waits for slots like a new one. */
export async function resume(ctx: EngineContext, row: JobRow): Promise<void> {
  const at = () => new Date().toISOString();
  // Killed between moving the output into place and recording it: the dataset is the proof.
  const committed = await openDataset(await openRoot(ctx.o.dataRoot), row.spec.output).catch(() => null);
  if (committed !== null && committed.manifest.produced_by === row.id) {
    ctx.db.finish(row.id, 'succeeded', null, at());
    await removeTree(join(ctx.stagingRoot, row.id)).catch(() => undefined);
    return;
  }
  const parts = ctx.db.partitions(row.id);
  for (const p of parts) {
    if (p.state === 'running' || p.state === 'failed') {
      // The engine's death is not the partition's failure: that attempt is not counted.
      ctx.db.partitionInterrupted(row.id, p.idx);
      p.state = 'todo';
      p.attempts = Math.max(0, p.attempts - 1);
    }
  }
  let input: InputShape;
  try {
    input = shape(await openInput(ctx.o.dataRoot, row.spec.input));
    const missing = parts.find((p) => input.files[p.input_idx] === undefined);
    if (missing !== undefined) throw new Error(`${row.spec.input} changed while the engine was down: it has no partition ${missing.input_idx} any more`);
  } catch (err) {
    ctx.db.finish(row.id, 'failed', `after a restart: ${(err as Error).message}`, at());
    await removeTree(join(ctx.stagingRoot, row.id)).catch(() => undefined);
    return;
  }
  const run = activate(ctx, row, parts, input);
  run.log.engine(`engine restarted: ${parts.filter((p) => p.state === 'done').length} of ${parts.length} partitions were committed; the rest run again`);
  ctx.o.log.info({ job: row.id, todo: run.todo.length }, 'job resumed');
  if (row.state === 'running') armDeadline(ctx, run);
  startPreparing(ctx, run);
}
