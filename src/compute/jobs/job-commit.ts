// A job whose every partition is done becomes its output dataset: out/ is sealed away from the tasks
// and committed in one rename. Apart because it is the one step that writes into the data root.
import { join } from 'node:path';
import { commitOutput } from '../catalog/index.js';
import { partitionFile } from '../../catalog/index.js';
import { sealJobOutput } from '../sandbox/index.js';
import type { EngineContext } from './engine-context.js';
import { finishRun } from './job-end.js';
import type { JobRun } from './job-run.js';

export async function commitRun(ctx: EngineContext, run: JobRun): Promise<void> {
  if (run.stopped) return;
  run.stopped = true;
  run.committing = true;
  const { row } = run;
  const area = run.area!;
  run.phases.mark('workers_gone');
  // Every partition recorded done before the output leaves the staging (job-db.ts batches them).
  ctx.db.flush();
  try {
    // out/ leaves the tasks' reach and becomes root's before anything in it is read: no link or
    // folder smuggled into it, and none planted later by any job, is ever followed.
    const sealed = await sealJobOutput(area, { namespaced: ctx.o.isolation.bwrap });
    run.phases.mark('sealed');
    // A kept partition stayed in out/, the task's own file, until the seal: a later task of the job
    // could append to it. Its rows and the job's engine.max_output_mb were counted at keep time
    // (partition-keep.ts), so a partition is committed only at the size it was counted with.
    for (const p of run.parts) {
      const file = partitionFile(p.idx, run.outputFormat);
      const size = sealed.identities.get(file)?.size;
      if (size !== undefined && size !== p.bytes_out) throw new Error(`${file} changed after it was kept (${p.bytes_out} bytes counted, ${size} sealed)`);
    }
    await commitOutput(ctx.o.dataRoot, row.spec.output, {
      folder: sealed.folder,
      format: run.outputFormat,
      rows: run.parts.map((p) => p.rows_out),
      fallbackColumns: run.input.columns,
      owner: row.user,
      labels: [...run.input.labels, ...(row.spec.labels ?? [])],
      producedBy: row.id,
      overwrite: row.spec.mode === 'overwrite',
      ...(row.replaces !== null ? { replaces: row.replaces } : {}),
      trash: join(area.dir, 'replaced'),
      sealed: true,
      sealedFiles: sealed.identities,
    });
    run.phases.mark('committed');
  } catch (err) {
    await finishRun(ctx, run, 'failed', `the output could not be committed: ${(err as Error).message}`, true);
    return;
  }
  await finishRun(ctx, run, 'succeeded', null, true);
}
