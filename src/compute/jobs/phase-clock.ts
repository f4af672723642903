// Where a job's time went inside the engine: the first time each phase of its life was reached, in
// milliseconds since the engine received it, put in the engine's "job finished" log line. Apart
// because every part of the job path marks it and none should depend on another for it; a mark is a
// performance.now() and a map lookup, so it is always on (profiling the fixed cost per job needs it
// on the machine where the job ran, not a rebuilt engine).
import { performance } from 'node:perf_hooks';

export type Phase =
  | 'folders' // the job's folders made and its source written: workers may start
  | 'area' // its inputs linked too: partitions may be handed out
  | 'worker_spawned' // the first worker's start asked of the launcher (runners/launcher.ts)
  | 'worker_ready' // the first worker loaded the job's source
  | 'first_handed' // the first partition sent to a worker
  | 'last_done' // the last partition kept (renamed, recorded)
  | 'workers_gone' // every worker stopped: the output may be sealed
  | 'sealed' // out/ taken from the tasks
  | 'committed' // the dataset in place
  | 'recorded' // the job's end in the job database
  | 'cleaned' // the job's area removed
  | 'told'; // the end published (status, GET /events)

export class PhaseClock {
  private readonly t0: number;
  private readonly marks = new Map<Phase, number>();

  constructor(t0 = performance.now()) {
    this.t0 = t0;
  }

  /** The first time a phase is reached is kept (the first worker, not the last). */
  mark(phase: Phase): void {
    if (!this.marks.has(phase)) this.marks.set(phase, performance.now());
  }

  /** Each phase reached, in ms since the job was received, in the order reached. */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [phase, at] of [...this.marks].sort((a, b) => a[1] - b[1])) out[phase] = Math.round((at - this.t0) * 10) / 10;
    return out;
  }
}
