// A finished partition attempt kept: the task's file checked, counted and (a retry's) renamed into
// the job's output, then recorded, so a restart redoes only what was running. Apart because it is the
// one place the engine reads what a task wrote before the job is sealed. A first attempt wrote the
// partition's own name (worker-loop.ts): its keep is one lstat, no rename. The calls are synchronous:
// a few microseconds each, against tens of microseconds of the engine's CPU through libuv's thread
// pool, taken from the cores the job's workers compute on, for every partition.
import { lstatSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { countRows } from '../runners/index.js';
import type { EngineContext } from './engine-context.js';
import type { PartitionRow } from './job-db.js';
import type { JobRun, TaskOutcome } from './job-run.js';
import { scrub } from './user-messages.js';

/** Keeps a finished attempt in the output (a retry's renamed to its name); null, or why the job must fail. */
export async function keepPartition(
  ctx: EngineContext,
  run: JobRun,
  part: PartitionRow,
  attemptFile: string,
  file: string,
  outcome: Extract<TaskOutcome, { ok: true }>,
): Promise<string | null> {
  const area = run.area!;
  const from = join(area.output, attemptFile);
  const shown = part.input_idx;
  const { maxOutputBytes } = ctx.o;
  let rows: number;
  let bytes: number;
  try {
    // Written by the task: a plain file of its own, or nothing is kept (no links to elsewhere, no FIFOs).
    const info = lstatSync(from);
    if (!info.isFile() || info.nlink !== 1) return `partition ${shown}: the task's output is not a plain file`;
    bytes = info.size;
    if (bytes > maxOutputBytes) return `partition ${shown}: the output is over the engine's limit of ${Math.round(maxOutputBytes / 1048576)} MiB (engine.max_output_mb)`;
    // The runners count their own output (in the worker, in parallel); a count that is not a count is refused.
    if (outcome.rows_out !== null) {
      if (!Number.isSafeInteger(outcome.rows_out) || outcome.rows_out < 0) return `partition ${shown}: the worker's reply was malformed (did the job write to file descriptor 3?)`;
      rows = outcome.rows_out;
    } else {
      rows = (await countRows(from, run.outputFormat, maxOutputBytes)).rows;
    }
    if (attemptFile !== file) renameSync(from, join(area.output, file));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? `partition ${shown}: the task wrote nothing to its output`
      : `partition ${shown}: its output could not be kept: ${scrub(ctx.o.dataRoot, (err as Error).message)}`;
  }
  part.state = 'done';
  part.rows_out = rows;
  part.bytes_out = bytes;
  part.seconds = Number.isFinite(outcome.seconds) ? outcome.seconds : 0;
  part.error = null;
  ctx.db.partitionDone(run.row.id, part.idx, { rows_out: rows, bytes_out: bytes, seconds: part.seconds });
  ctx.events.emit('partition', { job: run.row.id, seconds: part.seconds, outcome: 'done' });
  run.bytesOut += bytes;
  if (run.bytesOut > maxOutputBytes) return `the output is over the engine's limit of ${Math.round(maxOutputBytes / 1048576)} MiB (engine.max_output_mb)`;
  return null;
}
