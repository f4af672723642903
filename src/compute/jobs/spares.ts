// Spare sandboxes (sandbox/ISOLATION.md): python workers started in an area and a uid of their own
// before any job arrives, so a job with the same limits skips their start (~30-40 ms: setpriv,
// prlimit, bubblewrap, a fresh interpreter). A spare is given to one job, whole, and never back;
// one that does not fit (other limits, another interpreter) or holds no live worker is discarded.
// Made only while the engine is idle, so its start never takes a running job's cores.
import { interpreterStamp, spareRuntimeArgv, taskLauncher, WarmWorker } from '../runners/index.js';
import { adoptSpareArea, type JobArea, makeSpareArea, removeJobArea, removeTree, spareId, taskLaunch, taskPaths, unidleUid } from '../sandbox/index.js';
import type { EngineContext, Spares } from './engine-context.js';
import type { JobRun, SpareRunner } from './job-run.js';

interface Spare {
  area: JobArea;
  /** The limits and interpreter it was started with: a job takes it only when they are its own. */
  memoryMb: number;
  python: string;
  compiled: boolean;
  stamp: string | null;
  runners: SpareRunner[];
  /** Started at nice 19 (launch.ts idle): put back to 0 when a job takes it. */
  idle: boolean;
}

/** How long the engine must have been idle after a job's end before it makes a spare (see refillWhenIdle). */
export const IDLE_BEFORE_SPARE_MS = 250;

export class SparePool implements Spares {
  private spare: Spare | null = null;
  /** The last python job's memory limit: the next spare is made with it (null: no python job yet). */
  private memoryMb: number | null = null;
  private closed = false;
  private readonly retiring = new Set<Promise<void>>();

  /** Only under bubblewrap, where a task sees its area at /job/... whatever the folder's name. */
  static for(ctx: EngineContext): SparePool | null {
    return ctx.o.spares === false || !ctx.o.isolation.bwrap ? null : new SparePool(ctx);
  }

  private constructor(private readonly ctx: EngineContext) {
    ctx.events.on('finished', () => this.refillWhenIdle());
  }

  private idleTimer: NodeJS.Timeout | null = null;

  /**
   * A spare is made once the engine has been idle for IDLE_BEFORE_SPARE_MS after a job's end: jobs
   * that follow each other (a script's loop, a bench) never meet a spare's start on their way in
   * (even at nice 19 it takes a core's worth of exec and page faults for ~40 ms, and a submission
   * arriving then waited 3-5 ms longer); a person's next job, seconds later, finds one.
   */
  private refillWhenIdle(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.refill();
    }, IDLE_BEFORE_SPARE_MS);
    this.idleTimer.unref();
  }

  /** Makes a spare when there is none and the engine is idle (no job running or being prepared). */
  refill(): void {
    const { ctx } = this;
    if (this.closed || ctx.closed || this.spare !== null || this.memoryMb === null || ctx.runs.size > 0) return;
    const id = spareId();
    // Never the last uids: a job must always find one (and one that does not takes the spare's).
    if (ctx.uids !== null && ctx.uids.free <= ctx.o.slots + 1) return;
    const uid = ctx.uids?.take(id, true) ?? null;
    let area: JobArea;
    try {
      area = makeSpareArea(ctx.o.isolation, ctx.stagingRoot, id, uid);
    } catch (err) {
      ctx.o.log.warn({ err: (err as Error).message }, 'could not make a spare sandbox');
      void removeTree(`${ctx.stagingRoot}/${id}`)
        .catch(() => undefined)
        .then(() => ctx.uids?.release(id));
      return;
    }
    const compiled = ctx.o.pythonCompiled?.() ?? false;
    const paths = taskPaths(ctx.o.isolation, area, ctx.o.runtimeDir);
    const argv = spareRuntimeArgv({ runtimeDir: paths.runtime, python: ctx.o.python, pythonCompiled: compiled });
    const launch = taskLaunch(ctx.o.isolation, area, ctx.o.runtimeDir, argv, { memoryMb: this.memoryMb, addressSpace: true, maxFileBytes: ctx.o.maxOutputBytes, idle: true });
    const launcher = taskLauncher(ctx.o.isolation.tools.setpriv);
    const runners: SpareRunner[] = [];
    for (let i = 0; i < ctx.o.slots; i++) {
      // Its prints go to the job that takes it; before that, to the engine's log (the runner prints nothing itself).
      const runner: SpareRunner = { sink: null, worker: null as unknown as WarmWorker };
      runner.worker = WarmWorker.start(
        launch,
        (partition, stream, line) => (runner.sink !== null ? runner.sink(partition, stream, line) : ctx.o.log.warn({ spare: id, stream, line: line.slice(0, 200) }, 'a spare worker printed')),
        (l) => launcher.start(l),
      );
      runners.push(runner);
    }
    this.spare = { area, memoryMb: this.memoryMb, python: ctx.o.python, compiled, stamp: interpreterStamp(ctx.o.python), runners, idle: launch.nice !== undefined };
  }

  /**
   * The spare for a new job (its area renamed to the job's, its uid the job's, its live runners, at
   * most the job's cores), or null: the job starts its workers as before. Synchronous: nothing
   * else can take it meanwhile.
   */
  take(run: JobRun): { area: JobArea; runners: SpareRunner[] } | null {
    const { row } = run;
    if (row.spec.runtime !== 'python') return null;
    this.memoryMb = row.granted.memory_mb;
    const spare = this.spare;
    if (spare === null) return null;
    this.spare = null;
    const live = spare.runners.filter((r) => r.worker.alive);
    const fits =
      spare.memoryMb === row.granted.memory_mb && spare.python === this.ctx.o.python && spare.compiled === (this.ctx.o.pythonCompiled?.() ?? false) && spare.stamp === interpreterStamp(this.ctx.o.python);
    if (!fits || live.length === 0) {
      this.retire(spare);
      return null;
    }
    let area: JobArea;
    try {
      area = adoptSpareArea(spare.area, row.id);
      if (this.ctx.uids !== null) this.ctx.uids.transfer(spare.area.jobId, row.id);
    } catch (err) {
      this.ctx.o.log.warn({ job: row.id, err: (err as Error).message }, 'a spare sandbox could not be handed over; the job starts its own workers');
      this.retire(spare);
      return null;
    }
    // Its runners waited at nice 19 (launch.ts idle); its job runs at the usual 0. The first moments
    // of the job may still run at 19 while this runs (a millisecond or two, only felt under load).
    if (spare.idle) void this.unidle(spare.area.uid, row.id);
    const used = live.slice(0, Math.max(1, row.granted.cores));
    for (const r of spare.runners) if (!used.includes(r)) r.worker.kill();
    return { area, runners: used };
  }

  /** Every process of the job uid back to nice 0 (sandbox/idle.ts). */
  private async unidle(uid: number | null, job: string): Promise<void> {
    if (uid === null) return;
    const problem = await unidleUid(this.ctx.o.isolation, uid);
    if (problem !== null) this.ctx.o.log.warn({ job, uid, problem }, "could not bring a spare's workers back to nice 0; the job runs at nice 19");
  }

  /** Discards the spare, if any (a job found no free uid: the spare's is given back first). */
  async discard(): Promise<boolean> {
    const spare = this.spare;
    if (spare === null) return false;
    this.spare = null;
    await this.retire(spare);
    return true;
  }

  /** At the engine's close: the spare's workers killed, its area removed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    await this.discard();
    await Promise.allSettled([...this.retiring]);
  }

  /** Killed, its area removed as a job's is, then its uid released (never before: nothing of it may reach the next holder). */
  private retire(spare: Spare): Promise<void> {
    const done = (async () => {
      for (const r of spare.runners) r.worker.kill();
      await Promise.all(spare.runners.map((r) => r.worker.exited));
      await removeJobArea(spare.area, { namespaced: this.ctx.o.isolation.bwrap }).catch((err: Error) => this.ctx.o.log.error({ spare: spare.area.jobId, err: err.message }, 'could not remove a spare sandbox'));
      this.ctx.uids?.release(spare.area.jobId);
    })();
    this.retiring.add(done);
    void done.finally(() => {
      this.retiring.delete(done);
      this.refillWhenIdle();
    });
    return done;
  }
}
