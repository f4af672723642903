// The gateway's live jobs and the steps of their lives: hand over to a backend, learn what the
// backend says, end them (releasing their quota exactly once) and admit the next pending ones.
// The routes and the reconciler both act through here, so whichever sees an end first ends it.
// Its state is its own: callers use its methods, never its maps.
import { actorOf, type AuditInput, type AuditOutbox, type AuditRecorder, recordOrFail, SYSTEM_ACTOR, type TrailAdmission } from '../audit/index.js';
import type { Admission, AdmissionControl, AdmissionRequest, PendingJob, Usage } from '../quota/index.js';
import type { LoginLookup, LoginNow, PersonLookup, PersonNow } from '../identity/index.js';
import type { Exclusive } from '../store/index.js';
import { FINAL_STATES, GatehouseError, type JobStatus, jobSpecHash } from '../wire/index.js';
import type { BackendSubmission, ComputeBackend, PreparedHandover } from './backend.js';
import { JobChanges } from './job-changes.js';
import type { JobDatasets } from './job-datasets.js';
import { ENDED_STATES, LIVE_STATES, type JobRecord, type JobRecords, type RecordState } from './job-records.js';

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
  /** Sections per user, exclusive across every gateway over the store: admission, the queue, a pending cancel. */
  exclusive: Exclusive;
  /**
   * Other gateways share the records (PostgreSQL): before deciding for a user the book reloads
   * that user's part of the records, and it adopts live jobs it did not submit. False for the
   * embedded store, whose one process already knows everything.
   */
  shared: boolean;
  /**
   * Who a job's owner is now (their directory, for an LDAP login), asked as a job leaves the queue:
   * a person deleted meanwhile has it refused, one whose groups changed has it decided on the new ones.
   * Absent: decided on the groups it was submitted with.
   */
  personNow?: PersonLookup;
  /**
   * Whether the login a job was submitted under still stands, asked before the job is handed to its
   * backend from the queue or after a restart: a job of a login that ended meanwhile (logout, a
   * stolen refresh token detected) is not run. Absent: not asked.
   */
  loginNow?: LoginLookup;
  /**
   * What the audit trail says of job `id`'s admission by `user` (audit's admissionOnTrail), asked at
   * start-up of a record made at `since` left `dispatching` and never sent: on the embedded store the
   * record is written beside job.submit's commit, and one whose job.submit never became durable (the
   * gateway stopped between the two), whose end is on the trail already, or whose admission was
   * another user's, is ended unsent (restore). `unknown`: retention archived events from about then.
   * Absent: not asked.
   */
  admittedOnTrail?: (id: string, since: string, user: string) => TrailAdmission;
  /**
   * This gateway's trail, for the ends it owes events to: `chain` its id, written into a record with
   * the record's end and cleared once the end's events are durable; `actions` the actions the trail
   * holds about job `id` (its own events and its datasets'), asked at start-up of each end still owed
   * (recordOwedEnds). Absent: ends are not followed this way.
   */
  endsOwedTo?: { chain: string; actions: (id: string) => string[] };
}

export type Handover = { outcome: 'sent' } | { outcome: 'refused'; error: GatehouseError } | { outcome: 'unavailable'; error: Error };

const DAY_MS = 24 * 3600 * 1000;
/** Ends whose events became durable are cleared in the records in one write per this long (or at stop). */
const ENDS_FLUSH_MS = 2000;
/** Ids per clearing write (bound parameters). */
const ENDS_FLUSH_BATCH = 500;

/** A job refused because the login that submitted it ended: on the trail, and as its owner reads it. */
const loginEndedDenial = (reason: string): JobEvent => ({ action: 'job.admit', decision: 'deny', reason: 'login_ended', details: { login: reason } });
const loginEndedRefusal = (reason: string) => `not run: the login that submitted it ended before it left the queue (${reason})`;

/** How far along a job is: a copy further along than another supersedes it. */
const STAGE: Record<RecordState, number> = { pending: 0, dispatching: 1, queued: 2, running: 3, succeeded: 4, failed: 4, cancelled: 4 };

/** An event about a job (its object is `job:<id>` unless it names another, such as the dataset it read). */
type JobEvent = Pick<AuditInput, 'action' | 'decision' | 'reason'> & Partial<Pick<AuditInput, 'details' | 'policy_version' | 'object'>>;

export class JobBook {
  /** Every job not ended, by id: pending, being handed over, queued or running. */
  private readonly live = new Map<string, JobRecord>();
  /** Handovers in progress: the reconciler leaves these jobs alone until they settle. */
  private readonly inFlight = new Map<string, Promise<Handover>>();
  /** Resolved by a claimed handover's done(): when it is no longer in flight. */
  private readonly handoversOver = new Map<string, Promise<void>>();
  /** Admitted jobs their backend holds prepared (the held handover) until their handOver, or drop; `handover` null until it is asked. */
  private readonly prepared = new Map<string, { handover: PreparedHandover | null; over: boolean }>();
  /** Submissions tracked whose record is not yet written: not dropped for missing from the records. */
  private readonly unsaved = new Set<string>();
  private readonly cache = new Map<string, { at: number; status: JobStatus }>();
  /** Handovers whose record is being saved as sent (keepSent): a pushed end waits for them. */
  private readonly keeping = new Map<string, Promise<boolean>>();
  /** Pushed statuses being applied, per job: each applied after the one before. */
  private readonly pushed = new Map<string, Promise<void>>();
  private readonly ending = new Set<string>();
  /**
   * Overwrites of another person's dataset that were authorized (admin on it): the owner it had,
   * carried in the admission ticket so the engine replaces only that. Kept until the job ends; a
   * restart forgets them, and the engine then refuses such an overwrite (fail closed).
   */
  private readonly replaces = new Map<string, { owner: string | null }>();
  private readonly backends: ReadonlyMap<string, ComputeBackend>;
  /** Touched wherever a job's status is applied here, so that a held wait on it looks again (job-wait.ts). */
  readonly changes = new JobChanges();

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

  /** The next submission number (the pending queues' order); drawn under the user's lock. */
  nextSeq(): Promise<number> {
    return this.o.records.nextSeq();
  }

  /** Other gateways share the records (see JobBookOptions.shared). */
  get shared(): boolean {
    return this.o.shared;
  }

  /**
   * Runs fn alone for this user across every gateway, on the user's holds, queue and charges as the
   * records have them: a decision about a user's quota is made only in here.
   */
  async forUser<T>(user: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.o.exclusive.run(`quota:${user}`, async () => {
        if (this.o.shared) await this.sync(user);
        return fn();
      });
    } catch (err) {
      if (err instanceof GatehouseError) throw err;
      // The lock or the shared records out of reach: no decision is made on what this gateway alone knows.
      this.o.log.error({ user, err: (err as Error).message }, 'quota decision refused: the store cannot be reached');
      throw new GatehouseError('not_ready', 'the gateway cannot reach its store to decide on quota; try again shortly');
    }
  }

  /** Loads one user's live jobs and the day's charges from the shared records (under the user's lock). */
  private async sync(user: string): Promise<void> {
    const { live, charges } = await this.o.records.ofUser(user, new Date(Date.now() - DAY_MS).toISOString());
    const ids = new Set(live.map((r) => r.id));
    for (const [id, local] of this.live) if (local.user === user && !ids.has(id)) this.forget(id);
    const merged = live.map((r) => this.merge(r)); // every live job of the user is known here now
    this.o.admission.ledger.resetUser(
      user,
      merged.filter((r) => r.held).map((r) => ({ job: r.id, cores: r.cores, memory_mb: r.memory_mb, core_seconds: r.core_seconds })),
      charges.map((c) => ({ at: Date.parse(c.finished_at), seconds: c.core_seconds })),
    );
    this.requeue(user);
  }

  /** Every live job of the shared records known here, and those that ended elsewhere dropped (the leader's view before a pass). */
  async adoptLive(): Promise<void> {
    if (!this.o.shared) return;
    const live = await this.o.records.live();
    const ids = new Set(live.map((r) => r.id));
    for (const id of this.live.keys()) if (!ids.has(id)) this.forget(id);
    for (const r of live) this.merge(r);
  }

  /**
   * A live record of the store merged into what this gateway knows: adopted when new here, taken
   * over when the store's copy is further along (another gateway admitted, sent or started it).
   */
  private merge(stored: JobRecord): JobRecord {
    const local = this.live.get(stored.id);
    if (local === undefined) {
      this.live.set(stored.id, stored);
      return stored;
    }
    if (STAGE[stored.state] > STAGE[local.state]) Object.assign(local, { ...stored, backend_id: stored.backend_id ?? local.backend_id });
    return local;
  }

  /** Rebuilds a user's queue from their pending jobs known here, in submission order. */
  private requeue(user: string): void {
    const waiting = [...this.live.values()].filter((r) => r.user === user && r.state === 'pending').sort((x, y) => x.seq - y.seq);
    this.o.admission.resetQueue(
      user,
      waiting.map(waitingOf),
    );
  }

  /** A job another gateway ended (or a refused submission removed): no longer live here. */
  private forget(id: string): void {
    if (this.unsaved.has(id) || this.inFlight.has(id) || this.ending.has(id)) return;
    this.drop(id);
  }

  /** No longer live here: its status, the owner it may replace, its hold or queue place go. */
  private drop(id: string): void {
    this.live.delete(id);
    this.cache.delete(id);
    this.replaces.delete(id);
    if (!this.o.admission.withdraw(id)) this.o.admission.release(id, 0);
  }

  /** Check-and-hold for a new job, against what its backend can ever run. */
  async admit(request: AdmissionRequest, backend: string): Promise<Admission> {
    const { slots } = await this.backend(backend).capacity();
    return this.o.admission.admit(request, { name: backend, slots });
  }

  /** An admission whose record was never made: its hold or queue place goes. */
  unadmit(id: string): void {
    if (!this.o.admission.withdraw(id)) this.o.admission.release(id, 0);
  }

  /** A submission admitted or pending: live from now on (with the owner of a dataset it may replace). */
  track(r: JobRecord, replaces: { owner: string | null } | null): void {
    this.live.set(r.id, r);
    this.unsaved.add(r.id);
    if (replaces !== null) this.replaces.set(r.id, replaces);
  }

  /** A refused submission leaves nothing: no hold, no queue entry, no record. */
  async untrack(r: JobRecord): Promise<void> {
    this.unprepare(r.id);
    if (r.state === 'pending') await this.o.records.remove(r.id).catch(() => undefined);
    this.live.delete(r.id);
    this.unsaved.delete(r.id);
    this.replaces.delete(r.id);
    if (r.held) this.o.admission.release(r.id, 0);
    else this.o.admission.withdraw(r.id);
    // Whoever waits on it (a held wait, a followed log) looks again and finds it gone (log-follow.ts).
    this.changes.touch(r.id);
  }

  async insert(r: JobRecord): Promise<void> {
    await this.o.records.insert(r);
    this.unsaved.delete(r.id);
  }

  /** A record written for a handover the backend then refused (only while nobody sent or ended it since). */
  async removeRecord(id: string): Promise<void> {
    await this.o.records.removeUnsent(id);
  }

  /**
   * Marks a handover as in progress before anything else is awaited (see JobService.start): the
   * reconciler leaves it alone and a cancel waits for it. Call settle with its outcome, then done.
   */
  claimHandover(id: string): { settle: (h: Handover) => void; done: () => void } {
    let settle: (h: Handover) => void = () => {};
    let over: () => void = () => {};
    this.inFlight.set(id, new Promise<Handover>((resolve) => (settle = resolve)));
    this.handoversOver.set(id, new Promise<void>((resolve) => (over = resolve)));
    return {
      settle: (h) => settle(h),
      done: () => {
        this.inFlight.delete(id);
        this.handoversOver.delete(id);
        over();
      },
    };
  }

  isInFlight(id: string): boolean {
    return this.inFlight.has(id);
  }

  /** Resolves once a handover in progress (if any) has settled. */
  async settled(id: string): Promise<void> {
    await this.inFlight.get(id);
  }

  /**
   * A live job by id, or any recorded one. With shared records the store is asked every time: the
   * job may have been submitted, started or ended by another gateway.
   */
  /**
   * Who asked for a job's cancel, on its record (and this gateway's copy) before the cancel is
   * carried out; its view shows it only if the job does end cancelled.
   */
  async cancelledBy(r: JobRecord, user: string): Promise<void> {
    r.cancelled_by = user;
    const local = this.live.get(r.id);
    if (local !== undefined) local.cancelled_by = user;
    await this.o.records.setCancelledBy(r.id, user);
  }

  async find(id: string): Promise<JobRecord | undefined> {
    const local = this.live.get(id);
    if (local !== undefined && !this.o.shared) return local;
    const stored = await this.o.records.get(id);
    if (stored === undefined) {
      // Removed by another gateway (a submission it did not accept): gone here too, as sync() would
      // decide, unless this gateway is still writing or handing it over itself (forget() keeps those).
      if (local !== undefined) this.forget(id);
      return this.live.get(id);
    }
    if (!(LIVE_STATES as readonly string[]).includes(stored.state)) {
      if (local !== undefined) this.forget(id);
      return local !== undefined && this.live.has(id) ? local : stored;
    }
    return this.merge(stored);
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

  pending(user: string): PendingJob[] {
    const queue = this.o.admission.pending(user);
    const waits = this.directoryWaits.get(user);
    return waits === undefined || queue.length === 0 ? queue : [{ ...queue[0]!, reason: waits }, ...queue.slice(1)];
  }

  /** Users whose LDAP pending jobs wait for their directory to confirm them (drainUser): why, shown as the head's reason. */
  private readonly directoryWaits = new Map<string, string>();

  usage(user: string): Usage {
    return this.o.admission.ledger.usage(user);
  }

  /**
   * A user's usage and pending jobs (each with why it waits) for display. With shared records they
   * are computed from the records read now, apart from the state decisions are made on, so no lock
   * is taken; on the embedded store this process's state is the records'.
   */
  async snapshot(user: string): Promise<{ usage: Usage; pending: PendingJob[]; names: Map<string, Pick<JobRecord, 'name' | 'created_at'>> }> {
    if (!this.o.shared) {
      const names = new Map([...this.live.values()].filter((r) => r.user === user).map((r) => [r.id, r]));
      return { usage: this.usage(user), pending: this.pending(user), names };
    }
    let read: Awaited<ReturnType<JobRecords['ofUser']>>;
    try {
      read = await this.o.records.ofUser(user, new Date(Date.now() - DAY_MS).toISOString());
    } catch (err) {
      this.o.log.error({ user, err: (err as Error).message }, 'quota not shown: the store cannot be reached');
      throw new GatehouseError('not_ready', 'the gateway cannot reach its store to read your quota; try again shortly');
    }
    const view = this.o.admission.detached();
    view.ledger.resetUser(
      user,
      read.live.filter((r) => r.held).map((r) => ({ job: r.id, cores: r.cores, memory_mb: r.memory_mb, core_seconds: Math.max(r.core_seconds, this.live.get(r.id)?.core_seconds ?? 0) })),
      read.charges.map((c) => ({ at: Date.parse(c.finished_at), seconds: c.core_seconds })),
    );
    view.resetQueue(
      user,
      read.live.filter((r) => r.state === 'pending').map(waitingOf),
    );
    return { usage: view.ledger.usage(user), pending: view.pending(user), names: new Map(read.live.map((r) => [r.id, r])) };
  }

  /** Start-up: the ledger's holds, the pending queues and the day's charges, from the records. */
  async restore(): Promise<void> {
    const { admission } = this.o;
    for (const r of await this.o.records.live()) {
      const onTrail = this.atRisk(r) ? this.o.admittedOnTrail!(r.id, r.created_at, r.user) : 'admitted';
      if (onTrail !== 'admitted') {
        await this.endUnadmitted(r, onTrail);
        continue;
      }
      this.live.set(r.id, r);
      const subject = { user: r.user, groups: r.groups };
      const resources = { cores: r.cores, memory_mb: r.memory_mb, time_limit_s: r.time_limit_s };
      if (r.held) admission.ledger.hold(r.id, r.user, resources, r.core_seconds);
      else if (r.state === 'pending') admission.restorePending({ job: r.id, subject, resources }, r.reason);
    }
    for (const c of await this.o.records.chargesSince(new Date(Date.now() - DAY_MS).toISOString())) {
      admission.ledger.charge(c.user, c.core_seconds, Date.parse(c.finished_at));
    }
    await this.recordOwedEnds();
  }

  /**
   * Start-up: the ends this gateway wrote into the records whose events its trail may not hold. The
   * record's end comes first (it is what makes an end happen once across gateways) and its events
   * follow; a gateway stopped between the two (a crash, or a stop while the trail was down and the
   * outbox held them in memory) left an ended record whose end the trail never tells. Each such record
   * names this trail's chain; what the trail lacks of its end (its start if never seen, job.finish,
   * the output's dataset.write) is recorded now from the record, marked recovered, and the record's
   * debt cleared once that is durable. An end whose events are all there (stopped after them, before
   * the clearing) gets nothing twice.
   */
  private async recordOwedEnds(): Promise<void> {
    const owed = this.o.endsOwedTo;
    if (owed === undefined) return;
    // All at once: their events share the trail's group commits (a crash under load may leave hundreds).
    const settled = await Promise.all(
      (await this.o.records.endsOwed(owed.chain)).map(async (r) => {
        const on = new Set(owed.actions(r.id));
        const state = r.state;
        const which = { start: !on.has('job.start') && Boolean(r.status?.started_at), finish: !on.has('job.finish'), write: state === 'succeeded' && !on.has('dataset.write') };
        if (which.start || which.finish || which.write) {
          this.o.log.warn({ job: r.id, user: r.user, state, missing: Object.entries(which).filter(([, v]) => v).map(([k]) => k) }, 'a job ended before the gateway stopped, its end not on the trail: recorded now');
        }
        return (await this.endEvents(r, state, r.status, which, { recovered: true })) ? [r.id] : [];
      }),
    );
    await this.clearOwed(settled.flat());
  }

  /**
   * A record that could have been written beside a job.submit that never became durable: admitted at
   * submission (not from the queue, whose job.admit is recorded first), still `dispatching`, never
   * sent, on the embedded store. Usually a stopped gateway's last submissions; also an older one whose
   * job.submit was refused and whose row could not be taken back either (the gateway ran on), so the
   * trail is asked about every such row, however old. Closed by default: one it cannot confirm
   * (retention archived events from about then) is not run either.
   */
  private atRisk(r: JobRecord): boolean {
    return !this.o.shared && this.o.admittedOnTrail !== undefined && r.state === 'dispatching' && r.backend_id === null && r.admitted_at === r.created_at;
  }

  /**
   * A record whose admission is not on the trail: job.submit never became durable (the gateway stopped
   * after writing the row, or the trail refused it and the row could not be taken back), so nothing was
   * sent (a handover leaves only after) and nobody was answered 201. Ended in the record, never sent,
   * its quota not held; nothing goes on the trail, which never admitted it (a job.finish there would
   * end a job it never started). The same for a row whose job.submit names another user (a row not as
   * it was admitted: an edited or restored store) and for one whose end is on the trail already (its
   * record could not be written, it was answered 503 and ended there, and its row could not be taken
   * back): neither runs. `unknown`: the trail could not say (its admission, if any, is in a retention
   * archive); not run all the same, and its end recorded, since it was most likely admitted and
   * answered 201 (a gateway down longer than the trail's retention): an auditor finds its end.
   */
  private async endUnadmitted(r: JobRecord, onTrail: Exclude<TrailAdmission, 'admitted'>): Promise<void> {
    const archived = onTrail === 'unknown';
    const error = archived
      ? 'not run: its admission could not be confirmed on the audit trail (the trail has archived events from when it was submitted)'
      : onTrail === 'ended'
        ? 'not run: the audit trail already holds its end'
        : 'not run: its admission was never recorded on the audit trail';
    if (archived) await this.record(r, { action: 'job.finish', decision: 'error', reason: 'not run: its admission could not be confirmed on the live trail', details: { state: 'failed', archived: true } });
    await this.o.records.transition({ ...r, state: 'failed', held: false, reason: null, error, finished_at: new Date().toISOString() }, ['dispatching']);
    this.o.log.warn({ job: r.id, user: r.user, trail: onTrail }, 'a job record whose admission the trail does not vouch for was ended unsent');
  }

  private submissionOf(r: JobRecord): BackendSubmission {
    const replaces = this.replaces.get(r.id);
    return {
      id: r.id,
      user: r.user,
      ...(r.posix_user !== null ? { posix_user: r.posix_user } : {}),
      spec: r.spec,
      spec_hash: r.spec_hash,
      granted: { cores: r.cores, memory_mb: r.memory_mb, time_limit_s: r.time_limit_s },
      ...(replaces ? { replaces } : {}),
    };
  }

  /**
   * An admitted job's backend checks it now and holds it (if it can: the held handover), while its
   * job.submit is being made durable; handOver then admits it there. Nothing of it runs before.
   * Resolves with whether the backend holds it checked (false: no held handover, or refused).
   */
  prepare(r: JobRecord): Promise<boolean> {
    const backend = this.backend(r.backend);
    if (backend.prepare === undefined) return Promise.resolve(false);
    const entry: { handover: PreparedHandover | null; over: boolean } = { handover: null, over: false };
    this.prepared.set(r.id, entry);
    // Asked in an immediate: the caller has just started recording job.submit, whose message goes to
    // the audit writer in this turn's check phase; queued after it, the commit starts first and the
    // backend's checks (and the ticket's signing) run beside it instead of before it.
    return new Promise<boolean>((resolve) =>
      setImmediate(() => {
        if (!entry.over) entry.handover = backend.prepare!(this.submissionOf(r));
        resolve(entry.handover?.held.catch(() => false) ?? false);
      }),
    );
  }

  /** A prepared job that will not be handed over (its job.submit or its record failed): the backend lets it go. */
  unprepare(id: string): void {
    const entry = this.prepared.get(id);
    if (entry === undefined) return;
    this.prepared.delete(id);
    entry.over = true;
    entry.handover?.drop();
  }

  /** Hands a job to its backend once, and records what came of it (not its end: the caller decides). */
  async handOver(r: JobRecord): Promise<Handover> {
    const backend = this.backend(r.backend);
    const entry = this.prepared.get(r.id);
    this.prepared.delete(r.id);
    if (entry !== undefined) entry.over = true; // never asked yet: it is not, and the job goes whole
    const prepared = entry?.handover ?? null;
    try {
      const { backendId } = await (prepared !== null ? prepared.submit() : backend.submit(this.submissionOf(r)));
      r.backend_id = backendId;
      if (r.state === 'dispatching') r.state = 'queued';
      r.reason = null;
      this.changes.touch(r.id);
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
   * A background handover: a pending job just admitted (its admission is on record and its hold
   * saved before it gets here), or one a restart or a lost gateway left unsent. Its datasets are
   * decided again first: it may have waited while policy or labels changed (for a handover a
   * restart interrupted, deciding twice only repeats the decision in the trail). `known`: its owner as
   * the directory answered for this admission (drainUser asked just before), so it is not asked twice.
   */
  dispatch(r: JobRecord, known?: PersonNow): void {
    if (this.inFlight.has(r.id)) return;
    if (this.o.audit.available?.() === false) return; // the reconciler tries again once the trail is back
    const run = (async (): Promise<Handover> => {
      const login = await this.loginOf(r);
      if (login.status === 'unsure') {
        r.reason = `waiting to confirm the login that submitted it: ${login.reason}`;
        await this.persist(r);
        return { outcome: 'unavailable', error: new Error(r.reason) };
      }
      if (login.status === 'ended') {
        await this.record(r, loginEndedDenial(login.reason));
        const refusal = loginEndedRefusal(login.reason);
        await this.end(r, 'failed', refusal, null);
        return { outcome: 'refused', error: new GatehouseError('forbidden', refusal) };
      }
      const person = known ?? (await this.o.personNow?.({ user: r.user, auth_method: r.auth_method })) ?? { status: 'unasked' };
      if (person.status === 'unsure') {
        // Not refused for a directory outage, not run unconfirmed: it waits, and the reconciler asks again.
        r.reason = `waiting for the directory to confirm ${r.user}: ${person.reason}`;
        await this.persist(r);
        return { outcome: 'unavailable', error: new Error(r.reason) };
      }
      if (person.status === 'gone') {
        const refusal = `not run: its owner is no longer a person here (${person.reason})`;
        await this.record(r, { action: 'job.admit', decision: 'deny', reason: 'owner_gone', details: { directory: person.reason } });
        await this.end(r, 'failed', refusal, null);
        return { outcome: 'refused', error: new GatehouseError('forbidden', refusal) };
      }
      if (person.status === 'present') this.regrouped(r.id, person);
      const refusal = await this.recheckDatasets(r, r.groups);
      if (refusal !== null) {
        await this.end(r, 'failed', refusal, null);
        return { outcome: 'refused', error: new GatehouseError('forbidden', refusal) };
      }
      if (!(await this.o.records.save(r))) return { outcome: 'refused', error: new GatehouseError('conflict', `job ${r.id} ended meanwhile`) };
      const result = await this.handOver(r);
      if (result.outcome === 'refused') await this.end(r, 'failed', `${r.backend} refused the job: ${result.error.message}`, null);
      else if (result.outcome === 'sent') await this.keepSent(r);
      else await this.persist(r);
      return result;
    })();
    this.inFlight.set(r.id, run);
    void run
      .catch((err: Error) => this.o.log.error({ job: r.id, err: err.message }, 'job handover failed'))
      .finally(() => this.inFlight.delete(r.id));
  }

  /** The login a job was submitted under, as the store has it now; a store that cannot say is unsure, never live. */
  private async loginOf(r: JobRecord): Promise<LoginNow | { status: 'unsure'; reason: string }> {
    if (r.login_id === null || this.o.loginNow === undefined) return { status: 'live' };
    return this.o.loginNow(r.login_id).catch((err: Error) => ({ status: 'unsure' as const, reason: err.message }));
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

  /**
   * A status the backend pushed (engine-events.ts): applied as a poll's would be, in the order they
   * came for each job. A job still being handed over is left to that first (its end seen before its
   * record says it was sent would fail the submission that sent it). Jobs not live here (another
   * gateway's, or already ended) are left alone.
   */
  observePushed(backend: string, status: JobStatus): Promise<void> {
    const r = this.live.get(status.id);
    if (r === undefined || r.backend !== backend || (r.backend_id !== null && r.backend_id !== status.id)) return Promise.resolve();
    const previous = this.pushed.get(r.id) ?? Promise.resolve();
    const next = previous.then(async () => {
      await this.handedOver(r.id);
      if (this.live.get(r.id) === r) await this.observe(r, status);
    });
    this.pushed.set(r.id, next);
    void next.finally(() => {
      if (this.pushed.get(r.id) === next) this.pushed.delete(r.id);
    }).catch(() => undefined);
    return next;
  }

  /** Resolves once no handover of the job is in progress, its record saved as sent included. */
  private async handedOver(id: string): Promise<void> {
    for (;;) {
      // A settled handover stays in flight until its submission moves on, and its keepSent starts a
      // few microtasks later: look again only after those (a macrotask), never in a microtask spin.
      // A claimed handover is waited for until done(), not only until it settled: a settled one
      // whose record is still being saved made this loop spin a turn at a time (about 50 turns a
      // submission with the held handover, where the engine's push comes before the record's fsync).
      await (this.handoversOver.get(id) ?? this.inFlight.get(id) ?? this.keeping.get(id))?.catch(() => undefined);
      await new Promise((resolve) => setImmediate(resolve));
      if (!this.inFlight.has(id) && !this.keeping.has(id)) return;
    }
  }

  /** Every reused status dropped: what the backend pushed may have been missed (engine-events.ts's gap). */
  forgetStatuses(): void {
    this.cache.clear();
  }

  cached(id: string): JobStatus | null {
    return this.cache.get(id)?.status ?? null;
  }

  /** What the backend says of a live job: progress, its start, its end; whoever waits on it then looks again. */
  async observe(r: JobRecord, status: JobStatus): Promise<void> {
    try {
      await this.apply(r, status);
    } finally {
      this.changes.touch(r.id);
    }
  }

  private async apply(r: JobRecord, status: JobStatus): Promise<void> {
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
      // Put on the trail with the change, before any await: an end seen meanwhile (a status read, the
      // reconciler) then finds the job running and records no second start, and the start comes first.
      const start = this.started(r, status);
      await this.persist(r);
      await start;
    }
  }

  /**
   * Ends a job once: the record first (the durable release, conditional on the job still being in
   * one of `from`, so of several gateways seeing the same end only one goes on), then the ledger,
   * the audit event, and the user's next pending jobs. Concurrent reports of the same end are ignored.
   */
  async end(r: JobRecord, state: RecordState, error: string | null, status: JobStatus | null): Promise<void> {
    const ended = await this.endRecord(r, state, error, status);
    if (ended !== null) await this.announceEnd(r, state, status, ended);
  }

  /**
   * A pending job cancelled by a person: ended only if it still waits (another gateway may have
   * admitted it a moment ago, and then the backend must be told). False when it no longer waited.
   */
  async cancelPending(r: JobRecord): Promise<boolean> {
    const ended = await this.forUser(r.user, async () => {
      if (r.state !== 'pending' || !this.o.admission.withdraw(r.id)) return null;
      const done = await this.endRecord(r, 'cancelled', 'cancelled while pending', null, ['pending']);
      if (done === null) this.requeue(r.user);
      return done;
    });
    if (ended === null) return false;
    await this.announceEnd(r, 'cancelled', null, ended);
    return true;
  }

  /** The record's half of an end; null when the job had already ended (here or on another gateway). */
  private async endRecord(r: JobRecord, state: RecordState, error: string | null, status: JobStatus | null, from: readonly RecordState[] = LIVE_STATES): Promise<{ wasRunning: boolean } | null> {
    if (this.ending.has(r.id) || (ENDED_STATES as readonly string[]).includes(r.state)) return null;
    this.ending.add(r.id);
    try {
      const wasHeld = r.held;
      const finishedAt = status?.finished_at ?? new Date().toISOString();
      const next: JobRecord = { ...r, state, error, status: status ?? r.status, core_seconds: status?.core_seconds ?? r.core_seconds, finished_at: finishedAt, held: false, reason: null };
      if (!(await this.o.records.transition(next, from, this.o.endsOwedTo?.chain))) {
        // Another gateway ended it first (or admitted it from the queue): take the record as it is now.
        const stored = await this.o.records.get(r.id);
        if (stored !== undefined) Object.assign(r, stored);
        this.ending.delete(r.id);
        if (stored === undefined || !(LIVE_STATES as readonly string[]).includes(stored.state)) this.forget(r.id);
        return null;
      }
      // Read after the write, not before: a poll may have seen the job start while it was on its way
      // (announceEnd records a start only for a job never seen running).
      const wasRunning = r.state === 'running';
      Object.assign(r, next);
      this.live.delete(r.id);
      this.cache.delete(r.id);
      if (wasHeld) this.o.admission.release(r.id, r.core_seconds, Date.parse(finishedAt));
      else this.o.admission.withdraw(r.id);
      this.replaces.delete(r.id);
      this.changes.touch(r.id);
      return { wasRunning };
    } finally {
      this.ending.delete(r.id);
    }
  }

  /** The events of an end this gateway recorded, then the user's next pending jobs. */
  private async announceEnd(r: JobRecord, state: RecordState, status: JobStatus | null, ended: { wasRunning: boolean }): Promise<void> {
    const which = { start: !ended.wasRunning && Boolean(status?.started_at), finish: true, write: state === 'succeeded' };
    if (await this.endEvents(r, state, status, which)) this.endOnTrail(r.id);
    await this.drain([r.user]);
  }

  /**
   * An end's events, those of `which`: its start (a job never seen running), job.finish, and for a
   * success its output's dataset.write. True when every one is durable now (none kept in the outbox).
   */
  private async endEvents(r: JobRecord, state: RecordState, status: JobStatus | null, which: { start: boolean; finish: boolean; write: boolean }, extra: Record<string, unknown> = {}): Promise<boolean> {
    const started = which.start && status !== null ? await this.started(r, status) : true;
    // The error stays in the record: it may quote the job's own output or data, which the trail must not hold.
    const finish = which.finish
      ? this.event(r, {
          action: 'job.finish',
          decision: state === 'succeeded' ? 'allow' : 'error',
          reason: state === 'succeeded' ? `succeeded; wrote ${r.output}` : state,
          details: {
            state,
            core_seconds: r.core_seconds,
            rows_in: status?.rows_in ?? 0,
            rows_out: status?.rows_out ?? 0,
            partitions: status?.partitions ?? null,
            ran_s: ranSeconds(status?.started_at ?? r.status?.started_at ?? null, r.finished_at),
            ...backendDetails(status),
            ...extra,
          },
        })
      : true;
    // The write itself, as the dataset's own event: who made (or replaced) it, through which job, with which labels.
    // Recorded together with job.finish (one commit), so the next pending job is not kept waiting.
    const written = which.write
      ? this.event(r, {
          action: 'dataset.write',
          object: `dataset:${r.output}`,
          decision: 'allow',
          reason: `${r.spec.mode === 'overwrite' ? 'replaced' : 'written'} by job ${r.id}`,
          details: { job: r.id, mode: r.spec.mode ?? 'create', labels: r.spec.labels ?? [], rows_out: status?.rows_out ?? 0 },
        })
      : true;
    const [finished, wrote] = await Promise.all([finish, written]);
    return started && finished && wrote;
  }

  /** Ends whose events are durable, not yet cleared in the records (endOnTrail). */
  private readonly endsDurable: string[] = [];
  private endsTimer: NodeJS.Timeout | null = null;

  /** The end's events are durable: its record's debt (endsOwedTo) is cleared with the next batch. */
  private endOnTrail(id: string): void {
    if (this.o.endsOwedTo === undefined) return;
    this.endsDurable.push(id);
    this.endsTimer ??= setTimeout(() => void this.flushEnds(), ENDS_FLUSH_MS);
    this.endsTimer.unref();
  }

  /** Clears the debts of ends now durable (at stop too); one left uncleared is only asked of the trail again at the next start. */
  async flushEnds(): Promise<void> {
    if (this.endsTimer !== null) clearTimeout(this.endsTimer);
    this.endsTimer = null;
    await this.clearOwed(this.endsDurable.splice(0));
  }

  private async clearOwed(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += ENDS_FLUSH_BATCH) {
      await this.o.records.endsRecorded(ids.slice(i, i + ENDS_FLUSH_BATCH)).catch((err: Error) => this.o.log.warn({ err: err.message }, 'ended jobs not marked as on the trail; the next start asks the trail about them'));
    }
  }

  /**
   * A job seen started: `job.start`, and `dataset.read` on its input (the read itself, as opposed
   * to the permission decided at submission, `dataset.authorize`).
   */
  private async started(r: JobRecord, status: JobStatus): Promise<boolean> {
    const recorded = await Promise.all([
      this.event(r, { action: 'job.start', decision: 'allow', reason: `started on ${r.backend}`, details: { started_at: status.started_at, partitions: status.partitions.total, ...backendDetails(status) } }),
      this.event(r, { action: 'dataset.read', object: `dataset:${r.input}`, decision: 'allow', reason: `read by job ${r.id}, started on ${r.backend}`, details: { job: r.id, started_at: status.started_at, partitions: status.partitions.total } }),
    ]);
    return recorded.every(Boolean);
  }

  /**
   * Admits what now fits from the pending queues (all of them, or `users`'), in order, and hands it
   * over; refuses what never will. Each user's queue is decided under that user's lock, on the
   * shared records, so whichever gateway frees the quota, the queue leaves in order exactly once.
   */
  async drain(users?: string[]): Promise<void> {
    // Admitting from the queue is a decision: none is made while the trail cannot record it. The
    // reconciler drains again on its next round, after the trail is back.
    if (this.o.audit.available?.() === false) return;
    const list = users ?? (this.o.shared ? await this.o.records.pendingUsers() : this.o.admission.queuedUsers());
    for (const user of list) {
      await this.drainUser(user).catch((err: Error) => this.o.log.error({ user, err: err.message }, 'could not admit from a pending queue; the next reconcile pass tries again'));
    }
  }

  /**
   * Who the owner of an LDAP person's pending jobs is now, asked of the directory before the user's
   * section (no lock is held while it answers) for the jobs known here then; null when there is none
   * (or no directory to ask). In the section the groups it gives decide their quota (a person it no
   * longer has is refused as the job leaves the queue, in dispatch).
   */
  private async pendingOwnerNow(user: string): Promise<{ jobs: Set<string>; now: PersonNow } | null> {
    if (this.o.personNow === undefined) return null;
    const jobs = new Set([...this.live.values()].filter((r) => r.user === user && r.state === 'pending' && r.auth_method === 'ldap').map((r) => r.id));
    if (jobs.size === 0) return null;
    const now = await this.o.personNow({ user, auth_method: 'ldap' }).catch((err: Error): PersonNow => ({ status: 'unsure', reason: err.message }));
    return { jobs, now };
  }

  /**
   * The user's pending jobs whose login has ended: refused now, not when quota would let them out
   * (they would wait for nothing, and hold their place in the queue). One store read per login.
   */
  private async endLoginless(user: string): Promise<void> {
    if (this.o.loginNow === undefined) return;
    const asked = new Map<string, Promise<LoginNow | { status: 'unsure'; reason: string }>>();
    for (const r of [...this.live.values()]) {
      if (r.user !== user || r.state !== 'pending' || r.login_id === null) continue;
      let login = asked.get(r.login_id);
      if (login === undefined) asked.set(r.login_id, (login = this.loginOf(r)));
      const now = await login;
      if (now.status === 'ended') await this.refusePending(r, now.reason);
    }
  }

  /** A pending job whose login ended: on record first, then ended, only if it still waits. */
  private async refusePending(r: JobRecord, reason: string): Promise<void> {
    const ended = await this.forUser(r.user, async () => {
      if (r.state !== 'pending' || !this.o.admission.withdraw(r.id)) return null;
      try {
        await this.record(r, loginEndedDenial(reason));
      } catch (err) {
        this.requeue(r.user);
        throw err;
      }
      const done = await this.endRecord(r, 'failed', loginEndedRefusal(reason), null, ['pending']);
      if (done === null) this.requeue(r.user);
      return done;
    });
    if (ended !== null) await this.announceEnd(r, 'failed', null, ended);
  }

  /**
   * A live job's owner is this now (their directory said so as it left the queue): the job's events
   * name these groups from here on, and it runs as the cluster account the directory names now (an
   * account taken away or given to someone else is not used). This gateway's copy only; the record
   * keeps what it was submitted with, and a restart asks the directory again.
   */
  private regrouped(id: string, now: { groups: readonly string[]; posix_user?: string }): void {
    const r = this.live.get(id);
    if (r === undefined) return;
    r.groups = [...now.groups];
    r.posix_user = now.posix_user ?? null;
  }

  /**
   * An LDAP pending job of the user the directory did not just answer for: it could not say, or the
   * job was learnt from the shared records inside the section. Such a job is not admitted on the groups
   * it was submitted with (a person taken out of a bigger quota would run on it).
   */
  private unconfirmed(user: string, owner: { jobs: Set<string>; now: PersonNow } | null): boolean {
    if (this.o.personNow === undefined) return false;
    for (const r of this.live.values()) {
      if (r.user !== user || r.state !== 'pending' || r.auth_method !== 'ldap') continue;
      if (owner === null || owner.now.status === 'unsure' || !owner.jobs.has(r.id)) return true;
    }
    return false;
  }

  private async drainUser(user: string, askAgain = true): Promise<void> {
    if (askAgain) await this.endLoginless(user);
    const owner = await this.pendingOwnerNow(user);
    // Admissions made in the section, undone here if it does not commit (its lock session died):
    // the records still say pending, and so must this gateway, or it would hand them over unadmitted.
    const undo: { r: JobRecord; before: JobRecord }[] = [];
    const decided = this.forUser(user, async () => {
      if (this.unconfirmed(user, owner)) return null;
      if (owner?.now.status === 'present') {
        this.o.admission.regroup(user, owner.jobs, owner.now.groups);
        // The trail's events about them (job.admit, quota.reject, their end) name the groups that decide them.
        for (const id of owner.jobs) this.regrouped(id, owner.now);
      }
      const decided = this.o.admission.drain([user]);
      const admitted: JobRecord[] = [];
      const now = new Date().toISOString();
      for (const [i, a] of decided.admitted.entries()) {
        const r = this.live.get(a.job);
        if (r === undefined) continue;
        const before = { ...r };
        Object.assign(r, { state: 'dispatching', held: true, admitted_at: now, reason: null, policy_version: a.policyVersion });
        const waited = Math.round((Date.parse(now) - Date.parse(r.created_at)) / 1000);
        try {
          // On record, then saved as held, before the backend hears of it; a restart never finds it pending while it runs.
          await this.record(r, { action: 'job.admit', decision: 'allow', reason: `admitted after ${waited} s pending`, policy_version: a.policyVersion, details: { granted: a.granted, waited_s: waited, ...(r.posix_user !== null ? { posix_user: r.posix_user } : {}) } });
          if (!(await this.o.records.transition(r, ['pending']))) throw new Error(`job ${r.id} no longer waits`);
        } catch (err) {
          // Not admitted after all: it and those after it wait on, in their order (first in, first out).
          Object.assign(r, before);
          for (const later of decided.admitted.slice(i)) this.o.admission.release(later.job, 0);
          this.requeue(user);
          this.o.log.warn({ user, job: r.id, err: (err as Error).message }, 'a pending job stays pending: its admission could not be recorded');
          break;
        }
        admitted.push(r);
        undo.push({ r, before });
      }
      const refused: { r: JobRecord; x: (typeof decided.refused)[number]; ended: { wasRunning: boolean } }[] = [];
      for (const x of decided.refused) {
        const r = this.live.get(x.job);
        if (r === undefined) continue;
        const ended = await this.endRecord(r, 'failed', `${x.reason} (the quota was lowered while the job was pending)`, null, ['pending']);
        if (ended !== null) refused.push({ r, x, ended });
      }
      return { admitted, refused };
    });
    const outcome = await decided.catch((err: Error) => {
      for (const { r, before } of undo) {
        Object.assign(r, before);
        this.o.admission.release(r.id, 0);
      }
      if (undo.length > 0) this.requeue(user);
      throw err;
    });
    if (outcome === null) {
      // Jobs this gateway learnt of in the section (shared records): asked of the directory once more.
      if (askAgain && owner?.now.status !== 'unsure') return this.drainUser(user, false);
      // The directory could not say: nothing of the user's leaves the queue; the reconciler drains again.
      this.directoryWaits.set(user, `waiting for the directory to confirm ${user}${owner?.now.status === 'unsure' ? `: ${owner.now.reason}` : ''}`);
      for (const r of this.live.values()) if (r.user === user) this.changes.touch(r.id);
      return;
    }
    this.directoryWaits.delete(user);
    const { admitted, refused } = outcome;
    const known = (r: JobRecord): PersonNow | undefined => (owner?.now.status === 'present' && owner.jobs.has(r.id) ? owner.now : undefined);
    for (const r of admitted) this.dispatch(r, known(r));
    // Admitted, or moved up the queue: the user's jobs look different to whoever waits on them.
    for (const r of this.live.values()) if (r.user === user) this.changes.touch(r.id);
    for (const { r, x, ended } of refused) {
      void this.event(r, { action: 'quota.reject', decision: 'deny', reason: x.reason, policy_version: x.policyVersion, details: { limit: x.limit, used: x.used, requested: x.requested, max: x.max, pending: true } });
      await this.announceEnd(r, 'failed', null, ended);
    }
  }

  /**
   * A job the backend just accepted, saved with its backend id. False when its record had ended
   * meanwhile by anything but its own run (cancelled or ended by a decision through another gateway
   * while this one was handing it over, or the leader's resend was refused): the backend's copy is
   * then cancelled at once, since nothing holds its quota any more, and this gateway forgets the job.
   * True too for a job that simply ran to its end first: another gateway recorded what the backend
   * said of the very copy this one sent (a fast job's pushed end can beat this save).
   */
  async keepSent(r: JobRecord): Promise<boolean> {
    const keeping = this.keepSentNow(r);
    this.keeping.set(r.id, keeping);
    try {
      return await keeping;
    } finally {
      if (this.keeping.get(r.id) === keeping) this.keeping.delete(r.id);
    }
  }

  private async keepSentNow(r: JobRecord): Promise<boolean> {
    let saved: boolean;
    try {
      saved = await this.o.records.save(r);
    } catch (err) {
      this.o.log.error({ job: r.id, err: (err as Error).message }, 'job record not saved');
      return true; // still live as far as anyone knows; the reconciler adopts it
    }
    if (saved) return true;
    const stored = await this.o.records.get(r.id).catch(() => undefined);
    if (stored !== undefined && endedByItsRun(stored, r)) {
      Object.assign(r, stored);
      this.drop(r.id); // its end, quota and job.finish were recorded by the gateway that saw it
      return true;
    }
    this.o.log.warn({ job: r.id, backend: r.backend }, 'a job ended elsewhere while it was handed over: cancelling it on its backend');
    const copy = r.backend_id ?? r.id;
    const answer = await this.backend(r.backend)
      .cancel(copy)
      .catch((err: Error) => {
        this.o.log.error({ job: r.id, err: err.message }, 'could not cancel a job ended while it was handed over; the orphan sweep will');
        return null;
      });
    if (stored !== undefined) Object.assign(r, stored);
    this.drop(r.id); // not forget(): this very handover is still in flight
    // Too late: it ran to its end and wrote its output before the cancel reached it. The record's end
    // (a cancel, a decision) stands, but the write happened, and the trail says so (review38).
    if (answer?.state === 'succeeded' && answer.id === copy) {
      this.o.log.warn({ job: r.id, output: r.output }, 'a job ended elsewhere while it was handed over had already written its output');
      await this.event(r, {
        action: 'dataset.write',
        object: `dataset:${r.output}`,
        decision: 'allow',
        reason: `${r.spec.mode === 'overwrite' ? 'replaced' : 'written'} by job ${r.id}, which ran to its end on ${r.backend} before the cancel of its ${r.state} record reached it`,
        details: { job: r.id, mode: r.spec.mode ?? 'create', labels: r.spec.labels ?? [], rows_out: answer.rows_out, record_state: r.state },
      });
    }
    return false;
  }

  /**
   * Cancels a job of ours the backend runs with no live record here (a submission that crashed
   * between the handover and its record's insert on the embedded store, or whose cancel after a
   * failed insert did not get through), and says so on the trail: its job.submit may be there,
   * admitted, with nothing after it. The gateway is the actor; the backend's word for the owner is
   * in the details. Kept in the outbox while the trail is down (the cancel does not wait for it).
   */
  async cancelUnrecorded(backendName: string, backend: ComputeBackend, status: JobStatus): Promise<void> {
    try {
      await backend.cancel(status.id);
    } catch (err) {
      this.o.log.error({ job: status.id, err: (err as Error).message }, 'could not cancel an unrecorded job');
      return; // tried again at the next pass, recorded once it is cancelled
    }
    // Once per job: a backend may still list it as active for a pass while it stops.
    if (!this.claimUnrecordedEnd(status.id)) return;
    await this.o.outbox.record({
      actor: SYSTEM_ACTOR,
      action: 'job.finish',
      object: `job:${status.id}`,
      decision: 'error',
      reason: `cancelled: backend ${backendName} ran it with no record of it at this gateway`,
      details: { backend: backendName, state: status.state, owner: status.user, unrecorded: true },
    });
  }

  /**
   * Claims the one job.finish a job of ours without a record gets on the trail: the sweep's cancel
   * above and the start-up's lost submissions (lost-submissions.ts) may both come to one job. False
   * when it was claimed already.
   */
  claimUnrecordedEnd(id: string): boolean {
    if (this.unrecordedEnded.has(id)) return false;
    if (this.unrecordedEnded.size >= 1024) this.unrecordedEnded.clear();
    this.unrecordedEnded.add(id);
    return true;
  }

  /** Jobs without a record whose end this gateway has recorded (claimUnrecordedEnd). */
  private readonly unrecordedEnded = new Set<string>();

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
  private event(r: JobRecord, e: JobEvent): Promise<boolean> {
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
  private async recheckDatasets(r: JobRecord, groups: string[]): Promise<string | null> {
    const asker = { identity: { user: r.user, groups, auth_method: r.auth_method }, origin: null };
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

/** A pending job as its user's queue holds it. */
function waitingOf(r: JobRecord): AdmissionRequest & { reason: string | null } {
  return { job: r.id, subject: { user: r.user, groups: r.groups }, resources: { cores: r.cores, memory_mb: r.memory_mb, time_limit_s: r.time_limit_s }, reason: r.reason };
}

/** What the job is on its backend, where that says more than the gateway's id: Slurm's job id and the account it ran as. */
function backendDetails(status: JobStatus | null): Record<string, string> {
  return {
    ...(status?.backend_job_id !== undefined ? { backend_job_id: status.backend_job_id } : {}),
    ...(status?.posix_user !== undefined ? { posix_user: status.posix_user } : {}),
  };
}

/** How long a job ran, from its start on the backend to its end; null when it never started. */
function ranSeconds(startedAt: string | null, finishedAt: string | null): number | null {
  if (startedAt === null || finishedAt === null) return null;
  const ms = Date.parse(finishedAt) - Date.parse(startedAt);
  return Number.isFinite(ms) ? Math.max(0, ms) / 1000 : null;
}

/**
 * An ended record whose end is the backend's own word on the copy `sent` went out as: succeeded or
 * failed as its final status says, of that backend id. A cancel ends a record `cancelled`; a refusal
 * or a lost job ends it with no final status: none of them passes for a run. (A cancel asked too late
 * leaves cancelled_by on a job that did run to its end: that is a run.)
 */
function endedByItsRun(stored: JobRecord, sent: JobRecord): boolean {
  const status = stored.status;
  if (status === null) return false;
  if (stored.state !== 'succeeded' && stored.state !== 'failed') return false;
  return status.state === stored.state && status.finished_at !== null && status.id === (sent.backend_id ?? sent.id);
}
