// The job path for one request: authorize the datasets (stage 2, in job-datasets.ts), admit within
// quota (stage 3), hand over to the job's backend (stage 4), each decision audited before it is
// answered (stage 5). The live jobs themselves are the JobBook's.
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { actorOf, type AuditInput, type AuditRecorder, recordDecision, recordOrFail } from '../audit/index.js';
import type { Authorizer, Decision, Identity, Subject } from '../identity/index.js';
import type { PolicySnapshot } from '../policy/index.js';
import { BACKEND_SLOTS, heldMemoryMb, limitsFor } from '../quota/index.js';
import { GatehouseError, type JobSpec, jobSpecHash, jobSpecProblem } from '../wire/index.js';
import { HeldEvents } from './held-events.js';
import type { Handover, JobBook } from './job-book.js';
import type { JobDatasets } from './job-datasets.js';
import { newJobId } from './job-id.js';
import { type Preview, previewJob } from './job-preview.js';
import { ENDED_STATES, type JobRecord } from './job-records.js';
import { type JobSeenView, type JobView, type QuotaView, viewOf } from './job-view.js';
import { JobWaits, seenOf } from './job-wait.js';
import { WaitingFollows } from './log-follow.js';
import { unrecordedEnd } from './unrecorded-end.js';

export interface JobServiceOptions {
  book: JobBook;
  /** A job's dataset decisions (the same at submission and as it leaves the queue). */
  datasets: JobDatasets;
  authorizer: Authorizer;
  audit: AuditRecorder;
  /** The serving policy: quotas, and the version a decision was made on. */
  policy: () => PolicySnapshot;
  /** Held waits on jobs (GET /v1/jobs/:id?wait_s=); by default bounded as job-wait.ts says. */
  waits?: JobWaits;
}

/** With other gateways over the store, how often a held wait re-reads the job (a change applied elsewhere touches nothing here). */
const SHARED_REREAD_MS = 1000;

export interface Created {
  id: string;
  state: 'pending' | 'queued' | 'running';
  reason: string | null;
}

/** An admitted job on its way: go() hands it over (then `after` with the outcome, before it counts as settled). */
interface Started {
  go: (after?: (h: Handover) => Promise<void>) => Promise<Handover>;
  abort: () => void;
  held: Promise<boolean>;
}

/** A job whose record is no longer there: what anyone asking for it now is answered. */
function gone(id: string): never {
  throw new GatehouseError('not_found', `no job ${id}`);
}

export class JobService {
  readonly waits: JobWaits;

  /** Followed logs of jobs not handed to their backend yet (log-follow.ts). */
  private readonly follows: WaitingFollows;

  constructor(private readonly o: JobServiceOptions) {
    const rereadMs = o.book.shared ? SHARED_REREAD_MS : null;
    this.waits = o.waits ?? new JobWaits(o.book.changes, { rereadMs });
    this.follows = new WaitingFollows({
      changes: o.book.changes,
      find: (id) => o.book.find(id),
      follow: async (r) => (r.backend_id === null ? null : o.book.backend(r.backend).logs(r.backend_id, true)),
      rereadMs,
    });
    // Stopping answers held waits; a followed log still waiting for its job's handover is cut then too.
    void this.waits.closed.then(() => this.follows.stop());
  }

  private get book(): JobBook {
    return this.o.book;
  }

  /** A dry run: what the job would take and what would be decided, recorded once as job.preview (job-preview.ts). */
  preview(identity: Identity, spec: JobSpec, req: FastifyRequest): Promise<Preview> {
    return previewJob({ book: this.book, datasets: this.o.datasets, audit: this.o.audit, policy: this.o.policy }, identity, spec, req);
  }

  async submit(identity: Identity, spec: JobSpec, req: FastifyRequest): Promise<Created> {
    const problem = jobSpecProblem(spec);
    if (problem !== null) throw new GatehouseError('invalid_request', problem, { field: `body.${problem.slice(0, problem.indexOf(':'))}` });
    const backendName = spec.backend ?? this.book.backendNames()[0]!;
    if (!this.book.hasBackend(backendName)) {
      throw new GatehouseError('invalid_request', `backend: "${backendName}" is not configured here (configured: ${this.book.backendNames().join(', ')})`, { field: 'body.backend' });
    }
    const id = newJobId();

    // Stage 2: the job's datasets, on its own backend's catalog (job-datasets.ts): each decision
    // recorded as `dataset.authorize`; 403 naming the rule, 404 for an input that is not there.
    // They are held (held-events.ts) to be committed with the submission's own event: one fsync, not three.
    const asker = { identity, origin: { ip: req.ip, id: req.id, log: req.log } };
    const held = new HeldEvents();
    const { spec: effective, replaces } = await this.o.datasets.forSubmit(asker, { id, spec, backend: backendName }, held);

    // Stage 3: admission under the user's lock (across every gateway over the store), against what
    // the backend can ever run; the decision is on record and the job's record written before the
    // lock is let go, so the next decision for this user sees this one.
    const summary = { input: spec.input, output: spec.output, backend: backendName, requested: spec.resources, name: spec.name, ...(identity.posix_user !== undefined ? { posix_user: identity.posix_user } : {}) };
    let made: { record: JobRecord; abort: () => void } | undefined;
    let admitted: Awaited<ReturnType<JobService['admit']>>;
    try {
      admitted = await this.book.forUser(identity.user, () => this.admit(identity, req, { id, backendName, spec, effective, replaces, summary, held }, (m) => (made = m)));
    } catch (err) {
      // Failed before its own event was recorded (the store out of reach): the decisions made are still
      // put on record; when even that fails, the answer says the trail is the problem (fail closed).
      let unrecorded: unknown;
      await held.flush().catch((e: unknown) => {
        unrecorded = e;
      });
      // The section did not commit (its lock session died): the record was not written and nothing
      // was sent; this gateway forgets the job too, or it would hold quota the records do not.
      if (made !== undefined && this.book.isLive(made.record.id)) {
        made.abort();
        await this.book.untrack(made.record);
      }
      throw unrecorded ?? err;
    }
    if (admitted.outcome === 'pending') return admitted.created;
    // On a shared store sent only now, once the record is committed (the leader's sweep cancels a
    // backend job it finds no record of); on the embedded store already on its way.
    return this.handOver(identity, req, admitted.record, summary, admitted);
  }

  /** Decides and records one submission (under the user's lock); an admitted one is already on its way to the backend. */
  private async admit(
    identity: Identity,
    req: FastifyRequest,
    s: { id: string; backendName: string; spec: JobSpec; effective: JobSpec; replaces: { owner: string | null } | null; summary: Record<string, unknown>; held: HeldEvents },
    made: (m: { record: JobRecord; abort: () => void }) => void,
  ): Promise<{ outcome: 'pending'; created: Created } | ({ outcome: 'admitted'; record: JobRecord } & Started)> {
    const { id, backendName, spec, effective, summary } = s;
    const resources = spec.resources;
    const admission = await this.book.admit({ job: id, subject: identity, resources }, backendName);
    if (admission.outcome === 'rejected') {
      const { limit, used, requested, max, reason } = admission;
      await this.audit(identity, req, { action: 'quota.reject', object: `job:${id}`, decision: 'deny', reason, policy_version: admission.policyVersion, details: { ...summary, limit, used, requested, max } }, s.held);
      // More cores than the backend has is a request that can never run here, whatever the quota.
      if (limit === BACKEND_SLOTS) throw new GatehouseError('invalid_request', reason, { field: 'body.resources.cores', limit, requested, max });
      throw new GatehouseError('quota_exceeded', reason, { limit, used, requested, max });
    }

    const now = new Date().toISOString();
    let record: JobRecord | undefined;
    try {
      record = {
        id,
        seq: await this.book.nextSeq(),
        user: identity.user,
        groups: [...identity.groups],
        auth_method: identity.auth_method,
        posix_user: identity.posix_user ?? null,
        name: spec.name,
        input: spec.input,
        output: spec.output,
        backend: backendName,
        backend_id: null,
        spec: effective,
        spec_hash: jobSpecHash(effective),
        ...resources,
        state: admission.outcome === 'admitted' ? 'dispatching' : 'pending',
        held: admission.outcome === 'admitted',
        reason: admission.outcome === 'pending' ? admission.reason : null,
        error: null,
        status: null,
        core_seconds: 0,
        policy_version: admission.policyVersion,
        created_at: now,
        admitted_at: admission.outcome === 'admitted' ? now : null,
        finished_at: null,
        cancelled_by: null,
        login_id: identity.session_id ?? null,
      };
      this.book.track(record, s.replaces);
      const tracked = record;
      if (admission.outcome === 'pending') {
        made({ record, abort: () => {} });
        return { outcome: 'pending', created: await this.park(identity, req, record, admission, summary, s.held) };
      }
      const started = await this.start(identity, req, record, summary, s.held);
      made({ record: tracked, abort: started.abort });
      return { outcome: 'admitted', record, ...started };
    } catch (err) {
      // Nothing of a refused submission stays: no hold, no queue entry, no record.
      if (record !== undefined) await this.book.untrack(record);
      else this.book.unadmit(id);
      throw err;
    }
  }

  /** Fits the limits, not the current usage: recorded as pending, answered 201 with the reason. */
  private async park(identity: Identity, req: FastifyRequest, record: JobRecord, waiting: { reason: string; limit: string }, summary: Record<string, unknown>, held: HeldEvents): Promise<Created> {
    const reason = waiting.reason;
    await this.audit(identity, req, { action: 'job.submit', object: `job:${record.id}`, decision: 'allow', reason: `pending: ${reason}`, policy_version: record.policy_version, details: { ...summary, state: 'pending' } }, held);
    try {
      await this.book.insert(record);
    } catch (err) {
      // job.submit is on the trail already: its end goes there too, as an admitted job's does (start).
      const end = unrecordedEnd((err as Error).message, false, undefined);
      await this.audit(identity, req, { action: 'job.finish', object: `job:${record.id}`, decision: 'error', reason: end.reason, policy_version: record.policy_version, details: { ...summary, ...end.details } }).catch((e: Error) =>
        req.log.error({ job: record.id, err: e.message }, 'the end of a job whose record could not be written is not on the trail'),
      );
      throw new GatehouseError('not_ready', end.answer);
    }
    // The limit it waits on (a quota line's, or `queue`: behind the user's earlier jobs), for the trail and /metrics.
    await this.audit(identity, req, { action: 'quota.pending', object: `job:${record.id}`, decision: 'allow', reason, policy_version: record.policy_version, details: { ...summary, limit: waiting.limit } });
    return { id: record.id, state: 'pending', reason };
  }

  /**
   * Admitted: the decision is recorded, then the job is handed over. On the embedded store the record
   * is written beside job.submit's group commit and the handover leaves once job.submit is durable;
   * when other gateways share the records, the record is written once job.submit is durable and the
   * handover waits until the user's section has committed it (go(), called after the section; the
   * leader's sweep cancels a backend job it finds no record of). abort(): the section did not commit,
   * nothing is sent. `held`: whether the backend holds the job checked (the held handover).
   */
  private async start(identity: Identity, req: FastifyRequest, record: JobRecord, summary: Record<string, unknown>, held: HeldEvents): Promise<Started> {
    const granted = { cores: record.cores, memory_mb: record.memory_mb, time_limit_s: record.time_limit_s };
    // In flight from before the first await: the record is already live and 'dispatching', and the
    // reconciler hands over any such job not in flight, so while job.submit is being recorded it
    // would send the same id to the engine as this handover (the soak saw 409 "job exists" answered,
    // and a job marked failed while it ran). A cancel meanwhile waits for this handover to settle.
    const { settle, done } = this.book.claimHandover(record.id);
    let handover: Promise<Handover> | undefined;
    const send = (): Promise<Handover> => {
      if (handover === undefined) {
        handover = this.book.handOver(record).catch((error: Error): Handover => ({ outcome: 'unavailable', error }));
        void handover.then(settle);
      }
      return handover;
    };
    let accepted: Promise<boolean> = Promise.resolve(false);
    try {
      const submitted = this.audit(identity, req, { action: 'job.submit', object: `job:${record.id}`, decision: 'allow', reason: `admitted to ${record.backend}`, policy_version: record.policy_version, details: { ...summary, granted } }, held);
      // On the embedded store the record's insert (its fsync on the thread pool, JobRecords.insert)
      // runs beside job.submit's group commit, not after it: the row alone never makes the job run,
      // since nothing is sent before job.submit is durable, a failed job.submit takes the row back,
      // and a row a crash left without its job.submit is ended unsent at the next start
      // (JobBook.restore). In an immediate, after job.submit's message has gone to the audit writer
      // and before the prepare's (the row's write is the shorter step on the loop, then its fsync runs
      // while the prepare is sent). On a shared store another gateway's reconciler could hand the row
      // over meanwhile: written after, as before.
      const inserted = this.book.shared ? null : new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.book.insert(record));
      // The held handover: the engine checks the job (ticket, input, output) while job.submit is
      // committed, and admits it only on handOver, after; nothing runs before. Dropped if that fails.
      accepted = this.book.prepare(record);
      let unwritten = false;
      inserted?.catch(() => (unwritten = true));
      try {
        await submitted;
      } catch (err) {
        if (inserted !== null) await this.unwrite(record, inserted, req);
        throw err;
      }
      // The handover's request leaves now, while the record's fsync may still run; the answer waits for
      // both (BENCHMARKS.md, session 33). A record that failed already is not sent at all; one that
      // fails after cancels what was sent, below; a crash (or a power loss) before the record is on
      // disk leaves a backend job without a record, which the leader's sweep cancels and records.
      if (!this.book.shared && !unwritten) send();
      try {
        await (inserted ?? this.book.insert(record));
      } catch (err) {
        const sent = handover !== undefined && (await handover).outcome === 'sent';
        const backendState = sent ? await this.book.backend(record.backend).cancel(record.backend_id ?? record.id).then((s) => s?.state ?? null, () => undefined) : undefined;
        // job.submit (allow) is on the trail already: its end goes there too, as a refused handover's
        // does, so an auditor never finds an admitted job that simply stops being mentioned. Whether
        // the backend had it and how our cancel left it (if it did not reach it, the leader's sweep cancels it).
        const end = unrecordedEnd((err as Error).message, sent, backendState);
        await this.audit(identity, req, { action: 'job.finish', object: `job:${record.id}`, decision: 'error', reason: end.reason, policy_version: record.policy_version, details: { ...summary, ...end.details } }).catch((e: Error) =>
          req.log.error({ job: record.id, err: e.message }, 'the end of a job whose record could not be written is not on the trail'),
        );
        throw new GatehouseError('not_ready', end.answer);
      }
    } catch (err) {
      if (handover === undefined) {
        this.book.unprepare(record.id);
        settle({ outcome: 'unavailable', error: err as Error });
      }
      done();
      throw err;
    }
    return {
      held: accepted,
      go: (after) => {
        const sent = send();
        // Not over before what follows its outcome is done: the reconciler and pushed statuses wait for that.
        void sent
          .then(after)
          .catch((err: Error) => req.log.error({ job: record.id, err: err.message }, 'what followed a handover failed'))
          .finally(done);
        return sent;
      },
      abort: () => {
        if (handover === undefined) {
          this.book.unprepare(record.id);
          settle({ outcome: 'unavailable', error: new Error('its admission was not committed') });
        }
        done();
      },
    };
  }

  /** job.submit could not be recorded: the record written beside it goes too (if that fails, the next start ends it unsent). */
  private async unwrite(record: JobRecord, inserted: Promise<void>, req: FastifyRequest): Promise<void> {
    if (!(await inserted.then(() => true, () => false))) return; // never written: a failed insert takes its row back
    await this.book.removeRecord(record.id).catch((e: Error) =>
      req.log.error({ job: record.id, err: e.message }, 'the record of a job whose job.submit was not recorded could not be removed; the next start ends it unsent'),
    );
  }

  /**
   * The backend's answer to an admitted job: 201, or the record removed and the refusal recorded.
   * On the embedded store, once the backend holds the job checked (the held handover: the ticket,
   * the input and the output, everything a person could have got wrong) and job.submit and the
   * record are durable, 201 does not wait for the release: what comes of it is followed as any
   * queued job's life (afterAnswer), and a cancel meanwhile waits for it (JobBook.settled).
   */
  private async handOver(identity: Identity, req: FastifyRequest, record: JobRecord, summary: Record<string, unknown>, started: Started): Promise<Created> {
    let decide: (early: boolean) => void = () => {};
    const decided = new Promise<boolean>((resolve) => (decide = resolve));
    const handover = started.go(async (sent) => {
      if (await decided) await this.afterAnswer(record, sent);
    });
    const early = !this.book.shared && (await Promise.race([started.held, handover.then(() => false)]));
    decide(early);
    if (early) return { id: record.id, state: 'queued', reason: null };
    const sent = await handover;
    if (sent.outcome !== 'sent') {
      const error = sent.outcome === 'refused' ? sent.error : new GatehouseError('not_ready', `backend ${record.backend} is not reachable, nothing was submitted: ${sent.error.message}`);
      const end = () => this.audit(identity, req, { action: 'job.finish', object: `job:${record.id}`, decision: 'error', reason: `not started: ${error.message}`, policy_version: record.policy_version, details: { ...summary, state: 'refused' } });
      // On a shared store the row goes first, as before: while it is there another gateway's
      // reconciler may hand it over, and start-up does not ask the trail about it there.
      if (this.book.shared) {
        await this.book.removeRecord(record.id);
        await this.book.untrack(record);
        await end();
        throw error;
      }
      // On the embedded store its end goes on the trail before its row goes: a row that cannot be
      // removed is then one the trail says ended, which the next start does not send (JobBook.restore);
      // removed first, a failed removal left a row whose admission alone was on the trail, and the next
      // start ran a job its owner had been told was refused. A trail that refuses the end still gets
      // the row removed.
      const unrecorded = await end().then(
        () => null,
        (e: Error) => e,
      );
      await this.book.removeRecord(record.id).catch((e: Error) => {
        if (unrecorded !== null) throw e;
        req.log.error({ job: record.id, err: e.message }, 'the record of a refused handover could not be removed; its end is on the trail, so it is not sent again');
      });
      await this.book.untrack(record);
      throw unrecorded ?? error;
    }
    // Queued, with its backend id; unless another gateway ended it meanwhile (a cancel there), and it was cancelled here too.
    // A job that ran to its end before this save stands (JobBook.keepSent): 201, and its view says how it ended.
    // The embedded store has one gateway: no other can have ended it, and the record is not
    // written again for the answer's sake (one fsync less). Its row says `dispatching` until the
    // next change is saved (shown as queued all the same); after a crash meanwhile, the reconciler's
    // resend meets the backend's 409 and adopts the job (JobBook.handOver).
    if (this.book.shared && !(await this.book.keepSent(record))) throw new GatehouseError('conflict', `job ${record.id} was ${record.state === 'cancelled' ? 'cancelled' : 'ended'} while it was being handed over; it does not run`);
    return { id: record.id, state: 'queued', reason: null };
  }

  /**
   * A handover answered 201 before it settled (handOver). A refusal ends the job failed with the
   * backend's reason (job.finish on the trail, its quota freed), as a queued job that fails before
   * it starts; a backend that could not be reached (it may or may not have the job) leaves it queued
   * with that reason, for the reconciler, which asks the backend and adopts or resends it, as it does
   * a job admitted from the queue.
   */
  private async afterAnswer(record: JobRecord, sent: Handover): Promise<void> {
    if (sent.outcome === 'sent') return;
    if (sent.outcome === 'refused') await this.book.end(record, 'failed', `not started: ${record.backend} refused it after it was queued: ${sent.error.message}`, null);
    else await this.book.persist(record);
  }

  /**
   * The caller's job, or another's when policy grants `read` (to see it) or `admin` (to see or
   * cancel it) on `job:<id>`; anyone else gets 404.
   */
  async record(identity: Identity, id: string, action: 'read' | 'admin', req: FastifyRequest): Promise<JobRecord> {
    const r = await this.book.find(id);
    if (r !== undefined && r.user === identity.user) return r;
    if (r !== undefined) {
      // Someone else's job is a policy decision, recorded either way (a granted cancel records job.cancel itself).
      const { decision, requested } = this.decideAny(identity, `job:${id}`, action === 'read' ? ['read', 'admin'] : ['admin']);
      if (!decision.allowed || action === 'read') {
        await recordDecision(this.o.audit, req, identity, { action: action === 'read' ? 'job.read' : 'job.cancel', object: `job:${id}`, requested, decision, details: { owner: r.user } });
      }
      if (decision.allowed) return r;
    }
    // Another user's job is as absent as one that never existed: its id tells nothing.
    throw new GatehouseError('not_found', `no job ${id}`);
  }

  /**
   * The job with its `seen` token; with `wait`, held while the job still matches the caller's `seen`
   * (job-wait.ts). Whether the caller may see the job is decided first, once: someone else's job is
   * 404 at once, never after a wait.
   */
  async viewSeen(identity: Identity, id: string, req: FastifyRequest, wait?: { seconds: number; seen: string | undefined; gone: Promise<void> }): Promise<JobSeenView> {
    const r = await this.record(identity, id, 'read', req);
    let view = await this.viewOfRecord(r, true);
    if (wait !== undefined && wait.seconds > 0 && wait.seen === seenOf(view)) {
      view = await this.waits.hold({
        user: identity.user,
        id,
        seen: wait.seen,
        waitS: wait.seconds,
        gone: wait.gone,
        // A record removed meanwhile (a submission not accepted after all): the job is gone, as a new look would say.
        read: async (fresh) => this.viewOfRecord((await this.book.find(id)) ?? gone(id), fresh),
      });
      // Someone else's job: a grant the policy withdrew while the answer was held must not still show it.
      if (r.user !== identity.user) {
        const { decision, requested } = this.decideAny(identity, `job:${id}`, ['read', 'admin']);
        if (!decision.allowed) {
          await recordDecision(this.o.audit, req, identity, { action: 'job.read', object: `job:${id}`, requested, decision, details: { owner: r.user } });
          throw new GatehouseError('not_found', `no job ${id}`);
        }
      }
    }
    return { ...view, seen: seenOf(view) };
  }

  async list(identity: Identity, options: { all: boolean; state?: string; limit: number }, req: FastifyRequest): Promise<JobView[]> {
    if (options.all) {
      const { decision, requested } = this.decideAny(identity, 'job:all', ['read', 'admin']);
      await recordDecision(this.o.audit, req, identity, { action: 'job.list', object: 'job:all', requested, decision, details: { state: options.state ?? null } });
      if (!decision.allowed) throw new GatehouseError('forbidden', `listing everyone's jobs: ${decision.reason}`, { rule: decision.rule, policy_version: decision.policyVersion });
    }
    const records = await this.book.list({ user: options.all ? undefined : identity.user, state: options.state, limit: options.limit });
    return Promise.all(records.map((r) => this.viewOfRecord(r, false)));
  }

  async cancel(identity: Identity, id: string, req: FastifyRequest): Promise<JobView> {
    const r = await this.record(identity, id, 'admin', req);
    if ((ENDED_STATES as readonly string[]).includes(r.state)) throw new GatehouseError('conflict', `job ${id} has already ${r.state === 'cancelled' ? 'been cancelled' : r.state}`);
    const reason = r.user === identity.user ? 'cancelled by its owner' : `cancelled by ${identity.user}`;
    await recordDecision(this.o.audit, req, identity, { action: 'job.cancel', object: `job:${id}`, decision: { allowed: true, reason, policyVersion: this.o.policy().version }, details: { owner: r.user, state: r.state } });
    // Who asked, kept before the cancel takes effect (a job that ends on its own meanwhile is not shown as cancelled by anyone).
    await this.book.cancelledBy(r, identity.user);
    if (r.state === 'pending' && (await this.book.cancelPending(r))) return viewOf(r, null);
    await this.book.settled(id); // a handover in progress settles first, so the backend has it to cancel
    const status = r.backend_id === null ? null : await this.book.backend(r.backend).cancel(r.backend_id);
    if (status !== null) await this.book.observe(r, status);
    else await this.book.end(r, 'cancelled', null, null);
    return viewOf(r, status ?? r.status);
  }

  async logs(identity: Identity, id: string, follow: boolean, req: FastifyRequest): Promise<Readable | string> {
    const r = await this.record(identity, id, 'read', req);
    if (r.backend_id !== null) return (await this.book.backend(r.backend).logs(r.backend_id, follow)) ?? '';
    // Pending, or being handed over: nothing written yet. Followed, it is waited for (log-follow.ts),
    // held as a wait on the job is, within the same bounds.
    if (!follow || ENDED_STATES.includes(r.state)) return '';
    return this.follows.follow(r, this.waits.place(identity.user));
  }

  /** A person's limits, usage and pending jobs: the caller's own (GET /v1/quota), or anyone's for an admin's view. */
  async quota(identity: Subject): Promise<QuotaView> {
    // Read from the records as every gateway over the store has them now, without the user's lock:
    // looking must not make that person's submissions wait.
    const { usage, pending: waiting, names } = await this.book.snapshot(identity.user);
    const { detail, policyVersion } = limitsFor(this.o.policy(), identity);
    const limits = Object.fromEntries(Object.entries(detail).map(([k, v]) => [k, { value: v.value, source: v.source, line: v.line }])) as QuotaView['limits'];
    const pending = waiting.map((p) => {
      const r = names.get(p.job);
      return { id: p.job, name: r?.name ?? '', reason: p.reason, resources: { ...p.resources }, memory_mb_total: heldMemoryMb(p.resources), created_at: r?.created_at ?? new Date(0).toISOString() };
    });
    return { user: identity.user, policy_version: policyVersion, limits, usage, pending };
  }

  private async viewOfRecord(r: JobRecord, fetch: boolean): Promise<JobView> {
    if (r.state === 'pending') return viewOf(r, null, this.queuePlace(r));
    if (!this.book.isLive(r.id) || r.backend_id === null) return viewOf(r, r.status);
    const status = fetch ? await this.book.statusOf(r).catch(() => this.book.cached(r.id)) : this.book.cached(r.id);
    return viewOf(r, status ?? r.status);
  }

  /** Why a pending job waits, and its place in its owner's queue (1: the next to be admitted). */
  private queuePlace(r: JobRecord): { reason: string; position: number } | undefined {
    const queue = this.book.pending(r.user);
    const i = queue.findIndex((p) => p.job === r.id);
    return i < 0 ? undefined : { reason: queue[i]!.reason, position: i + 1 };
  }

  /** The first of `actions` policy grants on `object` (and which), or the refusal of the last. */
  private decideAny(identity: Identity, object: string, actions: readonly string[]): { decision: Decision; requested: string } {
    for (const [i, requested] of actions.entries()) {
      const decision = this.o.authorizer.decide(identity, object, requested);
      if (decision.allowed || i === actions.length - 1) return { decision, requested };
    }
    throw new Error('decideAny needs at least one action');
  }

  /** Records e before anything acts on it; with `held`, in one group commit with what it holds. */
  private async audit(identity: Identity, req: FastifyRequest, e: Omit<AuditInput, 'actor' | 'request_id'>, held?: HeldEvents): Promise<void> {
    const write = () => recordOrFail(this.o.audit, { actor: actorOf(identity, req.ip), request_id: req.id, ...e }, req.log);
    await (held === undefined ? write() : held.flush(write));
  }
}
