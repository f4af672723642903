// The gateway's live jobs and the steps of their lives: hand over to a backend, learn what the
// backend says, end them (releasing their quota exactly once) and admit the next pending ones.
// The routes and the reconciler both act through here, so whichever sees an end first ends it.
// Its state is its own: callers use its methods, never its maps.
import { actorOf, type AuditInput, type AuditOutbox, type AuditRecorder, recordOrFail } from '../audit/index.js';
import type { Admission, AdmissionControl, AdmissionRequest, PendingJob, Usage } from '../quota/index.js';
import { FINAL_STATES, GatehouseError, type JobStatus, jobSpecHash } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import type { JobDatasets } from './job-datasets.js';
import { ENDED_STATES, type JobRecord, type JobRecords, type RecordState } from './job-records.js';

export interface Logger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

export interface JobBookOptions {
  records: JobRecords;
  admission: AdmissionControl;
  /** The configured backends; a job names one of them. */
  backends: readonly ComputeBackend[];
  /** Where decisions about jobs are recorded before they are acted on. */
  audit: AuditRecorder;
  /** Where events of what already happened (a start, an end) wait while the trail is down. */
  outbox: AuditOutbox;
  /** A pending job's datasets, decided again as it leaves the queue. */
  datasets: JobDatasets;
  log: Logger;
  /** How long a backend status is reused before it is asked again. */
  statusCacheMs: number;
}

export type Handover = { outcome: 'sent' } | { outcome: 'refused'; error: GatehouseError } | { outcome: 'unavailable'; error: Error };

const DAY_MS = 24 * 3600 * 1000;

/** An event about a job (its object is `job:<id>` unless it names another, such as the dataset it read). */
type JobEvent = Pick<AuditInput, 'action' | 'decision' | 'reason'> & Partial<Pick<AuditInput, 'details' | 'policy_version' | 'object'>>;

export class JobBook {
  /** Every job not ended, by id: pending, being handed over, queued or running. */
  private readonly live = new Map<string, JobRecord>();
  /** Handovers in progress: the reconciler leaves these jobs alone until they settle. */
  private readonly inFlight = new Map<string, Promise<Handover>>();
  /** Jobs admitted from the queue and not yet re-checked and saved: their job.admit event, and whether it is on record. */
  private readonly fromQueue = new Map<string, { recorded: boolean; event: JobEvent }>();
  private readonly cache = new Map<string, { at: number; status: JobStatus }>();
  private readonly ending = new Set<string>();
  /**
   * Overwrites of another person's dataset that were authorized (admin on it): the owner it had,
   * carried in the admission ticket so the engine replaces only that. Kept until the job ends; a
   * restart forgets them, and the engine then refuses such an overwrite (fail closed).
   */
  private readonly replaces = new Map<string, { owner: string | null }>();
  private readonly backends: ReadonlyMap<string, ComputeBackend>;

  constructor(private readonly o: JobBookOptions) {
    this.backends = new Map(o.backends.map((b) => [b.name, b]));
  }

  /** The configured backends' names, the default (first) first. */
  backendNames(): string[] {
    return [...this.backends.keys()];
  }

  hasBackend(name: string): boolean {
    return this.backends.has(name);
  }

  backend(name: string): ComputeBackend {
    const b = this.backends.get(name);
    if (b === undefined) throw new GatehouseError('not_ready', `backend ${name} is not configured`);
    return b;
  }

  /** Every backend, by name: what the reconciler compares the ledger with. */
  eachBackend(): IterableIterator<[string, ComputeBackend]> {
    return this.backends.entries();
  }

  /** The next submission number (the pending queues' order). */
  nextSeq(): number {
    return this.o.records.nextSeq();
  }

  /** Check-and-hold for a new job, against what its backend can ever run. */
  async admit(request: AdmissionRequest, backend: string): Promise<Admission> {
    const { slots } = await this.backend(backend).capacity();
    return this.o.admission.admit(request, { name: backend, slots });
  }

  /** A submission admitted or pending: live from now on (with the owner of a dataset it may replace). */
  track(r: JobRecord, replaces: { owner: string | null } | null): void {
    this.live.set(r.id, r);
    if (replaces !== null) this.replaces.set(r.id, replaces);
  }

  /** A refused submission leaves nothing: no hold, no queue entry, no record. */
  async untrack(r: JobRecord): Promise<void> {
    if (r.state === 'pending') await this.o.records.remove(r.id).catch(() => undefined);
    this.live.delete(r.id);
    this.replaces.delete(r.id);
    if (r.held) this.o.admission.release(r.id, 0);
    else this.o.admission.withdraw(r.id);
  }

  insert(r: JobRecord): Promise<void> {
    return this.o.records.insert(r);
  }

  /** A record written for a handover the backend then refused. */
  removeRecord(id: string): Promise<void> {
    return this.o.records.remove(id);
  }

  /**
   * Marks a handover as in progress before anything else is awaited (see JobService.start): the
   * reconciler leaves it alone and a cancel waits for it. Call settle with its outcome, then done.
   */
  claimHandover(id: string): { settle: (h: Handover) => void; done: () => void } {
    let settle: (h: Handover) => void = () => {};
    this.inFlight.set(id, new Promise<Handover>((resolve) => (settle = resolve)));
    return { settle: (h) => settle(h), done: () => this.inFlight.delete(id) };
  }

  isInFlight(id: string): boolean {
    return this.inFlight.has(id);
  }

  /** Resolves once a handover in progress (if any) has settled. */
  async settled(id: string): Promise<void> {
    await this.inFlight.get(id);
  }

  /** A live job by id, or any recorded one. */
  async find(id: string): Promise<JobRecord | undefined> {
    return this.live.get(id) ?? (await this.o.records.get(id));
  }

  /** Newest first, live jobs as the book knows them now. */
  async list(query: { user?: string; state?: string; limit: number }): Promise<JobRecord[]> {
    return (await this.o.records.list(query)).map((r) => this.live.get(r.id) ?? r);
  }

  liveJob(id: string): JobRecord | undefined {
    return this.live.get(id);
  }

  isLive(id: string): boolean {
    return this.live.has(id);
  }

  liveJobs(): JobRecord[] {
    return [...this.live.values()];
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Takes a pending job out of its queue; false when it was not pending (admitted meanwhile). */
  withdraw(id: string): boolean {
    return this.o.admission.withdraw(id);
  }

  pending(user: string): PendingJob[] {
    return this.o.admission.pending(user);
  }

  usage(user: string): Usage {
    return this.o.admission.ledger.usage(user);
  }

  /** Start-up: the ledger's holds, the pending queues and the day's charges, from the records. */
  async restore(): Promise<void> {
    const { admission } = this.o;
    for (const r of await this.o.records.live()) {
      this.live.set(r.id, r);
      const subject = { user: r.user, groups: r.groups };
      const resources = { cores: r.cores, memory_mb: r.memory_mb, time_limit_s: r.time_limit_s };
      if (r.held) admission.ledger.hold(r.id, r.user, resources, r.core_seconds);
      else if (r.state === 'pending') admission.restorePending({ job: r.id, subject, resources }, r.reason);
    }
    for (const c of await this.o.records.chargesSince(new Date(Date.now() - DAY_MS).toISOString())) {
      admission.ledger.charge(c.user, c.core_seconds, Date.parse(c.finished_at));
    }
  }

  /** Hands a job to its backend once, and records what came of it (not its end: the caller decides). */
  async handOver(r: JobRecord): Promise<Handover> {
    const backend = this.backend(r.backend);
    try {
      const replaces = this.replaces.get(r.id);
      const { backendId } = await backend.submit({
        id: r.id,
        user: r.user,
        ...(r.posix_user !== null ? { posix_user: r.posix_user } : {}),
        spec: r.spec,
        granted: { cores: r.cores, memory_mb: r.memory_mb, time_limit_s: r.time_limit_s },
        ...(replaces ? { replaces } : {}),
      });
      r.backend_id = backendId;
      if (r.state === 'dispatching') r.state = 'queued';
      r.reason = null;
      return { outcome: 'sent' };
    } catch (err) {
      if (err instanceof GatehouseError && err.status < 500) {
        // Sent before (a restart between the engine's answer and our record): adopt it.
        if (err.code === 'conflict' && (await backend.status(r.id).catch(() => null)) !== null) {
          r.backend_id = r.id;
          if (r.state === 'dispatching') r.state = 'queued';
          return { outcome: 'sent' };
        }
        return { outcome: 'refused', error: err };
      }
      r.reason = `waiting for backend ${r.backend}: ${(err as Error).message}`;
      return { outcome: 'unavailable', error: err as Error };
    }
  }

  /**
   * A background handover: a pending job just admitted (`fromQueue`: its datasets are decided
   * again and its hold saved before the backend hears of it, so a restart never finds it pending
   * while it runs), or one a restart left half-sent.
   */
  dispatch(r: JobRecord, fromQueue = false): void {
    if (this.inFlight.has(r.id)) return;
    // Admitted from the queue and not yet handed over: whoever retries it (the reconciler, after a
    // failed step) goes the whole way again, admission event and re-check included.
    const admission = this.fromQueue.get(r.id);
    const queued = fromQueue || admission !== undefined;
    if (queued && this.o.audit.available?.() === false) return; // the reconciler tries again once the trail is back
    const run = (async (): Promise<Handover> => {
      if (queued) {
        if (admission && !admission.recorded) {
          await this.record(r, admission.event); // no handover before the admission is on record
          admission.recorded = true;
        }
        const refusal = await this.recheckDatasets(r);
        if (refusal !== null) {
          await this.end(r, 'failed', refusal, null);
          return { outcome: 'refused', error: new GatehouseError('forbidden', refusal) };
        }
        await this.o.records.save(r);
        this.fromQueue.delete(r.id);
      }
      const result = await this.handOver(r);
      if (result.outcome === 'refused') await this.end(r, 'failed', `${r.backend} refused the job: ${result.error.message}`, null);
      else await this.persist(r);
      return result;
    })();
    this.inFlight.set(r.id, run);
    void run
      .catch((err: Error) => this.o.log.error({ job: r.id, err: err.message }, 'job handover failed'))
      .finally(() => this.inFlight.delete(r.id));
  }

  /** The backend's status, reused for statusCacheMs; null when the backend does not know the job. */
  async statusOf(r: JobRecord): Promise<JobStatus | null> {
    if (r.backend_id === null) return null;
    const hit = this.cache.get(r.id);
    if (hit !== undefined && Date.now() - hit.at < this.o.statusCacheMs) return hit.status;
    const status = await this.backend(r.backend).status(r.backend_id);
    if (status !== null) await this.observe(r, status);
    return status;
  }

  cached(id: string): JobStatus | null {
    return this.cache.get(id)?.status ?? null;
  }

  /** What the backend says of a live job: progress, its start, its end. */
  async observe(r: JobRecord, status: JobStatus): Promise<void> {
    this.cache.set(r.id, { at: Date.now(), status });
    if (!this.live.has(r.id)) return;
    if (r.backend_id === null) {
      // A handover a restart interrupted, found on the backend: adopt it.
      r.backend_id = status.id;
      if (r.state === 'dispatching') r.state = 'queued';
      await this.persist(r);
    }
    if ((FINAL_STATES as readonly string[]).includes(status.state)) {
      await this.end(r, status.state as RecordState, status.error, status);
      return;
    }
    this.o.admission.ledger.progress(r.id, status.core_seconds);
    r.core_seconds = status.core_seconds;
    if (status.started_at !== null && (r.state === 'queued' || r.state === 'dispatching')) {
      r.state = 'running';
      await this.persist(r);
      await this.started(r, status);
    }
  }

  /**
   * Ends a job once: the record first (the durable release), then the ledger, the audit event,
   * and the user's next pending jobs. Concurrent reports of the same end are ignored.
   */
  async end(r: JobRecord, state: RecordState, error: string | null, status: JobStatus | null): Promise<void> {
    if (this.ending.has(r.id) || (ENDED_STATES as readonly string[]).includes(r.state)) return;
    this.ending.add(r.id);
    try {
      const wasHeld = r.held;
      const wasRunning = r.state === 'running';
      const finishedAt = status?.finished_at ?? new Date().toISOString();
      const next: JobRecord = { ...r, state, error, status: status ?? r.status, core_seconds: status?.core_seconds ?? r.core_seconds, finished_at: finishedAt, held: false, reason: null };
      await this.o.records.save(next);
      Object.assign(r, next);
      this.live.delete(r.id);
      this.fromQueue.delete(r.id);
      this.cache.delete(r.id);
      if (wasHeld) this.o.admission.release(r.id, r.core_seconds, Date.parse(finishedAt));
      else this.o.admission.withdraw(r.id);
      this.replaces.delete(r.id);
      if (!wasRunning && status?.started_at) await this.started(r, status);
      // The error stays in the record: it may quote the job's own output or data, which the trail must not hold.
      const finish = this.event(r, {
        action: 'job.finish',
        decision: state === 'succeeded' ? 'allow' : 'error',
        reason: state === 'succeeded' ? `succeeded; wrote ${r.output}` : state,
        details: {
          state,
          core_seconds: r.core_seconds,
          rows_in: status?.rows_in ?? 0,
          rows_out: status?.rows_out ?? 0,
          partitions: status?.partitions ?? null,
          ...backendDetails(status),
        },
      });
      // The write itself, as the dataset's own event: who made (or replaced) it, through which job, with which labels.
      // Recorded together with job.finish (one commit), so the next pending job is not kept waiting.
      const written =
        state === 'succeeded'
          ? this.event(r, {
              action: 'dataset.write',
              object: `dataset:${r.output}`,
              decision: 'allow',
              reason: `${r.spec.mode === 'overwrite' ? 'replaced' : 'written'} by job ${r.id}`,
              details: { job: r.id, mode: r.spec.mode ?? 'create', labels: r.spec.labels ?? [], rows_out: status?.rows_out ?? 0 },
            })
          : undefined;
      await Promise.all([finish, written]);
      this.drain([r.user]);
    } finally {
      this.ending.delete(r.id);
    }
  }

  /**
   * A job seen started: `job.start`, and `dataset.read` on its input (the read itself, as opposed
   * to the permission decided at submission, `dataset.authorize`).
   */
  private async started(r: JobRecord, status: JobStatus): Promise<void> {
    await Promise.all([
      this.event(r, { action: 'job.start', decision: 'allow', reason: `started on ${r.backend}`, details: { started_at: status.started_at, partitions: status.partitions.total, ...backendDetails(status) } }),
      this.event(r, { action: 'dataset.read', object: `dataset:${r.input}`, decision: 'allow', reason: `read by job ${r.id}, started on ${r.backend}`, details: { job: r.id, started_at: status.started_at, partitions: status.partitions.total } }),
    ]);
  }

  /** Admits what now fits from the pending queues and hands it over; refuses what never will. */
  drain(users?: string[]): void {
    // Admitting from the queue is a decision: none is made while the trail cannot record it. The
    // reconciler drains again on its next round, after the trail is back.
    if (this.o.audit.available?.() === false) return;
    const { admitted, refused } = this.o.admission.drain(users);
    const now = new Date().toISOString();
    for (const a of admitted) {
      const r = this.live.get(a.job);
      if (r === undefined) continue;
      Object.assign(r, { state: 'dispatching', held: true, admitted_at: now, reason: null, policy_version: a.policyVersion });
      const waited = Math.round((Date.parse(now) - Date.parse(r.created_at)) / 1000);
      // dispatch() records this before anything else; a failed step leaves the job to the reconciler's next pass.
      this.fromQueue.set(r.id, { recorded: false, event: { action: 'job.admit', decision: 'allow', reason: `admitted after ${waited} s pending`, policy_version: a.policyVersion, details: { granted: a.granted, waited_s: waited } } });
      this.dispatch(r, true);
    }
    for (const x of refused) {
      const r = this.live.get(x.job);
      if (r === undefined) continue;
      void this.event(r, { action: 'quota.reject', decision: 'deny', reason: x.reason, policy_version: x.policyVersion, details: { limit: x.limit, used: x.used, requested: x.requested, max: x.max, pending: true } });
      void this.end(r, 'failed', `${x.reason} (the quota was lowered while the job was pending)`, null).catch((err: Error) => this.o.log.error({ job: r.id, err: err.message }, 'could not end a job refused from the queue'));
    }
  }

  async persist(r: JobRecord): Promise<void> {
    try {
      await this.o.records.save(r);
    } catch (err) {
      this.o.log.error({ job: r.id, err: (err as Error).message }, 'job record not saved');
    }
  }

  /**
   * An event the gateway itself causes (a start seen by polling, an end, an admission from the
   * queue), on behalf of the job's owner. No request waits on it; when the trail is down it waits
   * in the outbox (a start or an end already happened: kept, with the time it was seen, not lost).
   */
  private event(r: JobRecord, e: JobEvent): Promise<void> {
    return this.o.outbox.record(this.inputOf(r, e));
  }

  /** A job event that must be recorded before the gateway acts on it; rejects when it cannot be. */
  private record(r: JobRecord, e: JobEvent): Promise<void> {
    return recordOrFail(this.o.audit, this.inputOf(r, e), this.o.log);
  }

  /**
   * A pending job's datasets decided again as it leaves the queue, with the groups it was
   * submitted with, on its backend's catalog. Null: still allowed (its spec then carries every
   * label its output will, and an overwrite of another's dataset its owner); else why not.
   */
  private async recheckDatasets(r: JobRecord): Promise<string | null> {
    const asker = { identity: { user: r.user, groups: r.groups, auth_method: r.auth_method }, origin: null };
    const verdict = await this.o.datasets.forQueueExit(asker, { id: r.id, spec: r.spec, backend: r.backend });
    switch (verdict.outcome) {
      case 'denied':
        return `no longer allowed when admitted from the queue: ${verdict.decision.reason}`;
      case 'missing':
        return `dataset ${r.input} no longer exists`;
      case 'unlabelable':
        return verdict.error.message;
      case 'allowed': {
        // Labels may have come (a policy line, the input replaced) while it waited: the output carries them too.
        const hash = jobSpecHash(verdict.spec);
        if (hash !== r.spec_hash) Object.assign(r, { spec: verdict.spec, spec_hash: hash });
        if (verdict.replaces !== null) this.replaces.set(r.id, verdict.replaces);
        else this.replaces.delete(r.id);
        return null;
      }
    }
  }

  private inputOf(r: JobRecord, e: JobEvent): AuditInput {
    return {
      actor: actorOf({ user: r.user, groups: r.groups, auth_method: r.auth_method }, null),
      object: `job:${r.id}`,
      policy_version: e.policy_version ?? r.policy_version,
      ...e,
      details: { input: r.input, output: r.output, backend: r.backend, ...e.details },
    };
  }
}

/** What the job is on its backend, where that says more than the gateway's id: Slurm's job id and the account it ran as. */
function backendDetails(status: JobStatus | null): Record<string, string> {
  return {
    ...(status?.backend_job_id !== undefined ? { backend_job_id: status.backend_job_id } : {}),
    ...(status?.posix_user !== undefined ? { posix_user: status.posix_user } : {}),
  };
}
