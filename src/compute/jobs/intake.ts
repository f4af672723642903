// A submission admitted: the spec and the gateway's ticket checked, the job id and output claimed
// against every job in flight, the input and output checked on disk, the ticket spent, and the job
// recorded and handed to preparation. Apart because it is the engine's only door for new work.
// In two halves for the held handover: prepare (every check, nothing written) and commit (spent,
// stored, activated); submit is both at once.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatasetError, existsSync, MANIFEST_FILE, openRoot } from '../../catalog/index.js';
import { type AdmissionClaims, GatehouseError, type JobSpec, jobSpecProblem, type JobStatus, ticketExpired } from '../../wire/index.js';
import { readExisting, replaceRefusal } from '../catalog/index.js';
import { type EngineContext, statusOf } from './engine-context.js';
import { type InputDataset, openInput, shape } from './job-input.js';
import { PhaseClock } from './phase-clock.js';
import { activate, startPreparing } from './preparation.js';

/** Job ids are folder and file names here: the gateway's ids fit this. */
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** A submission checked and its claims reserved, not yet stored: nothing of it runs until commit. */
export interface PreparedJob {
  readonly spec: JobSpec;
  readonly claims: AdmissionClaims;
  readonly input: InputDataset;
  readonly wanted: number[];
  readonly receivedAt: number;
}

export class JobIntake {
  /** Job ids, output names and tickets of submissions in flight or held (prepared, not yet committed). */
  private readonly reserved = new Set<string>();
  /** Inputs of the submissions in flight or held, with how many read each: a held job reads as a running one does. */
  private readonly reading = new Map<string, number>();

  constructor(private readonly ctx: EngineContext) {}

  async submit(spec: JobSpec, claims: AdmissionClaims): Promise<JobStatus> {
    return this.commit(await this.prepare(spec, claims));
  }

  /**
   * Everything that can refuse a submission before it is stored: the spec, the ticket not spent
   * (nor held by another prepare), the job id and output free, the input opened, the output
   * checked. Its claims stay reserved until commit or drop, so two submissions racing for an id, an
   * output or a ticket cannot both pass. Nothing is written.
   */
  async prepare(spec: JobSpec, claims: AdmissionClaims): Promise<PreparedJob> {
    const { ctx } = this;
    const receivedAt = performance.now();
    if (ctx.o.unusable) throw new GatehouseError('not_ready', `the engine cannot run jobs: ${ctx.o.unusable}`);
    const problem = jobSpecProblem(spec);
    if (problem !== null) throw new GatehouseError('invalid_request', problem, { field: `body.${problem.slice(0, problem.indexOf(':'))}` });
    if (!JOB_ID.test(claims.job)) throw new GatehouseError('invalid_request', 'the ticket names a job id that is not 1-64 letters, digits, _ and -');
    if (ctx.db.ticketSpent(claims.jti) || this.reserved.has(`ticket:${claims.jti}`)) throw new GatehouseError('forbidden', 'this admission ticket was used before; each ticket admits one job', { ticket: 'replayed' });
    // Claimed before the first await, so two submissions racing for an id or an output cannot both pass.
    this.checkFree(claims.job, spec);
    this.reserved.add(claims.job).add(`output:${spec.output}`).add(`ticket:${claims.jti}`);
    this.reading.set(spec.input, (this.reading.get(spec.input) ?? 0) + 1);
    try {
      const input = await openInput(ctx.o.dataRoot, spec.input);
      const count = input.manifest.partitions.length;
      const wanted = spec.partitions ?? input.manifest.partitions.map((_, i) => i);
      const outside = wanted.find((i) => i >= count);
      if (outside !== undefined) throw new GatehouseError('invalid_request', `partitions: ${spec.input} has ${count} partitions (0-${count - 1}); there is no ${outside}`, { field: 'body.partitions' });
      await this.checkOutput(spec, claims);
      return { spec, claims, input, wanted, receivedAt };
    } catch (err) {
      this.unreserve(spec, claims);
      throw err;
    }
  }

  /** Admits a prepared job: the ticket spent, the job stored, its run activated and prepared. Synchronous: nothing can come between. */
  commit(p: PreparedJob): JobStatus {
    const { ctx } = this;
    const { spec, claims, input, wanted } = p;
    try {
      if (ctx.o.unusable) throw new GatehouseError('not_ready', `the engine cannot run jobs: ${ctx.o.unusable}`);
      // A prepare held past its ticket's lifetime is not admitted by it (held jobs are dropped long before).
      if (ticketExpired(claims)) throw new GatehouseError('forbidden', 'the admission ticket expired while its job was held', { ticket: 'expired' });
      // Spent only now: a refused submission leaves the gateway free to retry with the same ticket.
      if (!ctx.db.spendTicket(claims.jti, claims.exp)) throw new GatehouseError('forbidden', 'this admission ticket was used before; each ticket admits one job', { ticket: 'replayed' });
      const parts = ctx.db.insertJob(
        { id: claims.job, user: claims.user, spec, granted: claims.granted, created_at: new Date().toISOString(), replaces: claims.replaces },
        wanted.map((i) => ({ input_idx: i, rows: input.manifest.partitions[i]!.rows, bytes: input.manifest.partitions[i]!.bytes })),
      );
      const row = ctx.db.job(claims.job)!;
      const run = activate(ctx, row, parts, shape(input));
      run.phases = new PhaseClock(p.receivedAt);
      run.log.engine(`submitted by ${row.user}: ${spec.runtime} over ${wanted.length} partitions of ${spec.input} → ${spec.output}, ${claims.granted.cores} cores × ${claims.granted.memory_mb} MB, ${claims.granted.time_limit_s} s`);
      ctx.o.log.info({ job: row.id, user: row.user, input: spec.input, output: spec.output, partitions: wanted.length }, 'job queued');
      startPreparing(ctx, run);
      return statusOf(ctx, row.id)!;
    } finally {
      this.unreserve(spec, claims);
    }
  }

  /** A prepared job let go uncommitted: its id, output and ticket are free again; nothing was stored. */
  drop(p: PreparedJob): void {
    this.unreserve(p.spec, p.claims);
  }

  private unreserve(spec: JobSpec, claims: AdmissionClaims): void {
    this.reserved.delete(claims.job);
    this.reserved.delete(`output:${spec.output}`);
    this.reserved.delete(`ticket:${claims.jti}`);
    const readers = (this.reading.get(spec.input) ?? 0) - 1;
    if (readers > 0) this.reading.set(spec.input, readers);
    else this.reading.delete(spec.input);
  }

  private checkFree(jobId: string, spec: JobSpec): void {
    if (this.reserved.has(jobId) || this.ctx.db.job(jobId) !== undefined) throw new GatehouseError('conflict', `job ${jobId} exists`);
    if (this.reserved.has(`output:${spec.output}`)) throw new GatehouseError('conflict', `another job is being submitted to write ${spec.output}`);
    // A held job (prepared, not yet released) is not among the runs below, but it is admitted on its
    // release without these checks again: it must count as the running job it is about to be.
    if (spec.mode === 'overwrite' && this.reading.has(spec.output)) throw new GatehouseError('conflict', `another job is being submitted to read ${spec.output}; it cannot be overwritten until that job ends`);
    if (this.reserved.has(`output:${spec.input}`)) throw new GatehouseError('conflict', `another job is being submitted to write ${spec.input}; read it once that job has finished`);
    for (const run of this.ctx.runs.values()) {
      if (run.row.spec.output === spec.output) throw new GatehouseError('conflict', `another job is already writing ${spec.output}`); // whose is not this user's business
      if (spec.mode === 'overwrite' && run.row.spec.input === spec.output) throw new GatehouseError('conflict', `another job is reading ${spec.output}; it cannot be overwritten until that job ends`);
      if (run.row.spec.output === spec.input) throw new GatehouseError('conflict', `another job is writing ${spec.input}; read it once that job has finished`);
    }
  }

  /**
   * The output is a new name, or with overwrite an existing dataset the ticket's user owns (or whose
   * owner the ticket's replaces claim names): never a namespace, never inside a dataset. Refusals are
   * conflict, never forbidden (the gateway reads an engine forbidden as a refused ticket). Decided
   * again at commit, where the dataset may have appeared or changed hands meanwhile.
   */
  private async checkOutput(spec: JobSpec, claims: AdmissionClaims): Promise<void> {
    const { dataRoot } = this.ctx.o;
    const target = join(dataRoot, spec.output);
    const slash = spec.output.indexOf('/');
    // Synchronous lstats, as openInput's reads: the engine's own disk, a hop to the thread pool each was most of their cost.
    if (slash > 0 && existsSync(join(dataRoot, spec.output.slice(0, slash), MANIFEST_FILE))) {
      throw new GatehouseError('invalid_request', `output: ${spec.output.slice(0, slash)} is a dataset, not a namespace`, { field: 'body.output' });
    }
    if (!existsSync(target)) return;
    if (!existsSync(join(target, MANIFEST_FILE))) {
      throw new GatehouseError('conflict', `${spec.output} is a namespace (a folder of datasets), not a dataset; choose another output`);
    }
    if (spec.mode !== 'overwrite') throw new GatehouseError('conflict', `dataset ${spec.output} exists; submit with "mode": "overwrite" to replace it`);
    let existing: Awaited<ReturnType<typeof readExisting>>;
    try {
      existing = await readExisting(await openRoot(dataRoot), spec.output);
    } catch (err) {
      if (err instanceof DatasetError) throw new GatehouseError('conflict', `output ${spec.output} cannot be replaced: ${err.message}`);
      throw err;
    }
    if (existing === null || existing.manifest === null) return; // gone meanwhile, or a namespace now: the commit decides
    const refusal = replaceRefusal(spec.output, existing.manifest.owner, { user: claims.user, replaces: claims.replaces });
    if (refusal !== null) throw new GatehouseError('conflict', `the engine will not replace ${spec.output}: ${refusal}`);
  }
}
