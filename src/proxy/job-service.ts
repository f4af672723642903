// The job path for one request: authorize the datasets (stage 2), admit within quota (stage 3),
// hand over to the backend (stage 4), each decision audited before it is answered (stage 5).
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { actorOf, type AuditInput, recordOrFail } from '../audit/index.js';
import type { Decision, Identity, Subject } from '../identity/index.js';
import { authorize, decide, forbidden, type PolicySnapshot } from '../policy/index.js';
import { BACKEND_SLOTS, heldMemoryMb, limitsFor } from '../quota/index.js';
import { type DatasetInfo, GatehouseError, type JobSpec, jobSpecHash, jobSpecProblem } from '../wire/index.js';
import type { Handover, JobBook } from './job-book.js';
import { newJobId } from './job-id.js';
import { ENDED_STATES, type JobRecord } from './job-records.js';
import { type JobView, type QuotaView, viewOf } from './job-view.js';

export interface JobServiceOptions {
  book: JobBook;
  policy: () => PolicySnapshot;
  /** The catalog for authorization: labels of the input, and of an output being replaced. */
  dataset: (name: string, fresh: boolean) => Promise<DatasetInfo | undefined>;
  defaultBackend: string;
}

export interface Created {
  id: string;
  state: 'pending' | 'queued' | 'running';
  reason: string | null;
}

export class JobService {
  constructor(private readonly o: JobServiceOptions) {}

  private get book(): JobBook {
    return this.o.book;
  }

  async submit(identity: Identity, spec: JobSpec, req: FastifyRequest): Promise<Created> {
    const problem = jobSpecProblem(spec);
    if (problem !== null) throw new GatehouseError('invalid_request', problem, { field: `body.${problem.slice(0, problem.indexOf(':'))}` });
    const backendName = spec.backend ?? this.o.defaultBackend;
    if (!this.book.o.backends.has(backendName)) {
      throw new GatehouseError('invalid_request', `backend: "${backendName}" is not configured here (configured: ${[...this.book.o.backends.keys()].join(', ')})`, { field: 'body.backend' });
    }
    const id = newJobId();
    const ctx = { policy: this.o.policy, audit: this.book.o.audit };

    // Stage 2: read the input, write the output (with every label it will carry: outputLabels),
    // and replace an existing output only as its owner or with admin on it. Each decision is a
    // `dataset.authorize` event; the read and the write themselves are recorded when they happen.
    const input = await this.o.dataset(spec.input, false);
    await authorize(ctx, req, identity, `dataset:${spec.input}`, 'read', AUTHORIZE, { labels: input?.labels, details: { job: id } });
    if (input === undefined) throw new GatehouseError('not_found', `no dataset ${spec.input}`, { field: 'body.input' });
    const existing = spec.mode === 'overwrite' ? await this.o.dataset(spec.output, true) : undefined;
    const outLabels = outputLabels(this.o.policy(), input, spec, existing);
    await authorize(ctx, req, identity, `dataset:${spec.output}`, 'write', AUTHORIZE, { labels: outLabels, details: { job: id } });
    if (existing !== undefined) {
      const decision = replaceDecision(this.o.policy(), identity, existing);
      await this.audit(identity, req, replaceEvent(decision, existing, id));
      if (!decision.allowed) throw forbidden(decision);
    }
    const effective = labelled(spec, outLabels);

    // Stage 3: admission, one synchronous step on the ledger, against what the backend can ever run.
    const resources = spec.resources;
    const summary = { input: spec.input, output: spec.output, backend: backendName, requested: resources, name: spec.name };
    const { slots } = await this.book.backend(backendName).capacity();
    const admission = this.book.o.admission.admit({ job: id, subject: identity, resources }, { name: backendName, slots });
    if (admission.outcome === 'rejected') {
      const { limit, used, requested, max, reason } = admission;
      await this.audit(identity, req, { action: 'quota.reject', object: `job:${id}`, decision: 'deny', reason, policy_version: admission.policyVersion, details: { ...summary, limit, used, requested, max } });
      // More cores than the backend has is a request that can never run here, whatever the quota.
      if (limit === BACKEND_SLOTS) throw new GatehouseError('invalid_request', reason, { field: 'body.resources.cores', limit, requested, max });
      throw new GatehouseError('quota_exceeded', reason, { limit, used, requested, max });
    }

    const now = new Date().toISOString();
    const record: JobRecord = {
      id,
      seq: this.book.o.records.nextSeq(),
      user: identity.user,
      groups: [...identity.groups],
      auth_method: identity.auth_method,
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
    };
    this.book.live.set(id, record);
    if (existing !== undefined && existing.owner !== identity.user) this.book.replaces.set(id, { owner: existing.owner });
    try {
      if (admission.outcome === 'pending') return await this.park(identity, req, record, admission.reason, summary);
      return await this.start(identity, req, record, summary);
    } catch (err) {
      // Nothing of a refused submission stays: no hold, no queue entry, no record.
      if (record.state === 'pending') await this.book.o.records.remove(id).catch(() => undefined);
      this.book.live.delete(id);
      this.book.replaces.delete(id);
      if (record.held) this.book.o.admission.release(id, 0);
      else this.book.o.admission.withdraw(id);
      throw err;
    }
  }

  /** Fits the limits, not the current usage: recorded as pending, answered 201 with the reason. */
  private async park(identity: Identity, req: FastifyRequest, record: JobRecord, reason: string, summary: Record<string, unknown>): Promise<Created> {
    await this.audit(identity, req, { action: 'job.submit', object: `job:${record.id}`, decision: 'allow', reason: `pending: ${reason}`, policy_version: record.policy_version, details: { ...summary, state: 'pending' } });
    await this.book.o.records.insert(record);
    await this.audit(identity, req, { action: 'quota.pending', object: `job:${record.id}`, decision: 'allow', reason, policy_version: record.policy_version, details: summary });
    return { id: record.id, state: 'pending', reason };
  }

  /** Admitted: the decision is recorded, then the record is written while the backend receives the job. */
  private async start(identity: Identity, req: FastifyRequest, record: JobRecord, summary: Record<string, unknown>): Promise<Created> {
    const granted = { cores: record.cores, memory_mb: record.memory_mb, time_limit_s: record.time_limit_s };
    // In flight from before the first await: the record is already live and 'dispatching', and the
    // reconciler hands over any such job not in flight, so while job.submit is being recorded it
    // would send the same id to the engine as this handover (the soak saw 409 "job exists" answered,
    // and a job marked failed while it ran). A cancel meanwhile waits for this handover to settle.
    let settle: (h: Handover) => void = () => {};
    this.book.inFlight.set(record.id, new Promise<Handover>((resolve) => (settle = resolve)));
    try {
      try {
        await this.audit(identity, req, { action: 'job.submit', object: `job:${record.id}`, decision: 'allow', reason: `admitted to ${record.backend}`, policy_version: record.policy_version, details: { ...summary, granted } });
      } catch (err) {
        settle({ outcome: 'unavailable', error: err as Error });
        throw err;
      }
      const stored = this.book.o.records.insert(record).then(
        () => null,
        (err: Error) => err,
      );
      const handover = this.book.handOver(record).catch((error: Error): Handover => ({ outcome: 'unavailable', error }));
      void handover.then(settle);
      const sent = await handover;
      const storeError = await stored;
      if (storeError !== null) {
        if (sent.outcome === 'sent') await this.book.backend(record.backend).cancel(record.backend_id ?? record.id).catch(() => undefined);
        throw new GatehouseError('not_ready', `the job record could not be written (${storeError.message}); nothing runs`);
      }
      if (sent.outcome !== 'sent') {
        await this.book.o.records.remove(record.id);
        const error = sent.outcome === 'refused' ? sent.error : new GatehouseError('not_ready', `backend ${record.backend} is not reachable, nothing was submitted: ${sent.error.message}`);
        await this.audit(identity, req, { action: 'job.finish', object: `job:${record.id}`, decision: 'error', reason: `not started: ${error.message}`, policy_version: record.policy_version, details: { ...summary, state: 'refused' } });
        throw error;
      }
      void this.book.persist(record); // queued + backend id; a restart before it lands is adopted by the reconciler
      return { id: record.id, state: 'queued', reason: null };
    } finally {
      this.book.inFlight.delete(record.id);
    }
  }

  /**
   * A pending job's datasets decided again as it leaves the queue (policy, labels and datasets may
   * have changed while it waited), with the groups it was submitted with. Null: still allowed;
   * else why not. Both decisions are audited on behalf of the owner.
   */
  async recheck(r: JobRecord): Promise<string | null> {
    const subject = { user: r.user, groups: r.groups };
    const policy = this.o.policy();
    let input: DatasetInfo | undefined;
    let existing: DatasetInfo | undefined;
    try {
      input = await this.o.dataset(r.input, true);
      existing = r.spec.mode === 'overwrite' ? await this.o.dataset(r.output, true) : undefined;
    } catch (err) {
      // Undecided is not allowed: the dispatch fails here and the reconciler retries the whole way
      // (admission kept, re-check included) once the backend lists again.
      throw new GatehouseError('not_ready', `the datasets of job ${r.id} could not be decided again as it left the queue: ${(err as Error).message}`);
    }
    const outLabels = input === undefined ? [] : outputLabels(policy, input, r.spec, existing);
    const checks: [DatasetInfo | string, string, Decision][] = [[r.input, 'read', decide(policy, subject, `dataset:${r.input}`, 'read', { labels: input?.labels })]];
    if (input !== undefined) checks.push([r.output, 'write', decide(policy, subject, `dataset:${r.output}`, 'write', { labels: outLabels })]);
    if (input !== undefined && existing !== undefined) checks.push([existing, 'overwrite', replaceDecision(policy, subject, existing)]);
    const actor = actorOf({ user: r.user, groups: r.groups, auth_method: r.auth_method }, null);
    for (const [target, requested, decision] of checks) {
      const event =
        typeof target === 'string'
          ? { action: AUTHORIZE, object: `dataset:${target}`, decision: decision.allowed ? 'allow' : 'deny', reason: decision.reason, policy_version: decision.policyVersion, details: { requested, job: r.id, ...(decision.line ? { rule_line: decision.line } : {}) } } as const
          : replaceEvent(decision, target, r.id);
      await recordOrFail(this.book.o.audit, { actor, ...event, details: { ...event.details, leaving_queue: true } });
      if (!decision.allowed) return `no longer allowed when admitted from the queue: ${decision.reason}`;
    }
    if (input === undefined) return `dataset ${r.input} no longer exists`;
    // Labels may have come (a policy line, the input replaced) while it waited: the output carries them too.
    let effective: JobSpec;
    try {
      effective = labelled(r.spec, outLabels);
    } catch (err) {
      return (err as Error).message;
    }
    const hash = jobSpecHash(effective);
    if (hash !== r.spec_hash) Object.assign(r, { spec: effective, spec_hash: hash });
    if (existing !== undefined && existing.owner !== r.user) this.book.replaces.set(r.id, { owner: existing.owner });
    else this.book.replaces.delete(r.id);
    return null;
  }

  /**
   * The caller's job, or another's when policy grants `read` (to see it) or `admin` (to see or
   * cancel it) on `job:<id>`; anyone else gets 404.
   */
  async record(identity: Identity, id: string, action: 'read' | 'admin', req: FastifyRequest): Promise<JobRecord> {
    const r = this.book.live.get(id) ?? (await this.book.o.records.get(id));
    if (r !== undefined && r.user === identity.user) return r;
    if (r !== undefined) {
      // Someone else's job is a policy decision, recorded either way (a granted cancel records job.cancel itself).
      const decision = this.decideAny(identity, `job:${id}`, action === 'read' ? ['read', 'admin'] : ['admin']);
      if (!decision.allowed || action === 'read') {
        await this.audit(identity, req, { action: action === 'read' ? 'job.read' : 'job.cancel', object: `job:${id}`, decision: decision.allowed ? 'allow' : 'deny', reason: decision.reason, policy_version: decision.policyVersion, details: { owner: r.user } });
      }
      if (decision.allowed) return r;
    }
    // Another user's job is as absent as one that never existed: its id tells nothing.
    throw new GatehouseError('not_found', `no job ${id}`);
  }

  async view(identity: Identity, id: string, req: FastifyRequest): Promise<JobView> {
    const r = await this.record(identity, id, 'read', req);
    return this.viewOfRecord(r, true);
  }

  async list(identity: Identity, options: { all: boolean; state?: string; limit: number }, req: FastifyRequest): Promise<JobView[]> {
    if (options.all) {
      const decision = this.decideAny(identity, 'job:all', ['read', 'admin']);
      await this.audit(identity, req, { action: 'job.list', object: 'job:all', decision: decision.allowed ? 'allow' : 'deny', reason: decision.reason, policy_version: decision.policyVersion, details: { state: options.state ?? null } });
      if (!decision.allowed) throw new GatehouseError('forbidden', `listing everyone's jobs: ${decision.reason}`, { rule: decision.rule, policy_version: decision.policyVersion });
    }
    const records = await this.book.o.records.list({ user: options.all ? undefined : identity.user, state: options.state, limit: options.limit });
    return Promise.all(records.map((r) => this.viewOfRecord(this.book.live.get(r.id) ?? r, false)));
  }

  async cancel(identity: Identity, id: string, req: FastifyRequest): Promise<JobView> {
    const r = await this.record(identity, id, 'admin', req);
    if ((ENDED_STATES as readonly string[]).includes(r.state)) throw new GatehouseError('conflict', `job ${id} has already ${r.state === 'cancelled' ? 'been cancelled' : r.state}`);
    await this.audit(identity, req, { action: 'job.cancel', object: `job:${id}`, decision: 'allow', reason: r.user === identity.user ? 'cancelled by its owner' : `cancelled by ${identity.user}`, policy_version: this.o.policy().version, details: { owner: r.user, state: r.state } });
    if (r.state === 'pending' && this.book.o.admission.withdraw(id)) {
      await this.book.end(r, 'cancelled', `cancelled while pending`, null);
      return viewOf(r, null);
    }
    await this.book.inFlight.get(id); // a handover in progress settles first, so the backend has it to cancel
    const status = r.backend_id === null ? null : await this.book.backend(r.backend).cancel(r.backend_id);
    if (status !== null) await this.book.observe(r, status);
    else await this.book.end(r, 'cancelled', null, null);
    return viewOf(r, status ?? r.status);
  }

  async logs(identity: Identity, id: string, follow: boolean, req: FastifyRequest): Promise<Readable | string> {
    const r = await this.record(identity, id, 'read', req);
    if (r.backend_id === null) return ''; // pending, or being handed over: nothing written yet
    return (await this.book.backend(r.backend).logs(r.backend_id, follow)) ?? '';
  }

  quota(identity: Identity): QuotaView {
    const { detail, policyVersion } = limitsFor(this.o.policy(), identity);
    const limits = Object.fromEntries(Object.entries(detail).map(([k, v]) => [k, { value: v.value, source: v.source, line: v.line }])) as QuotaView['limits'];
    const pending = this.book.o.admission.pending(identity.user).map((p) => {
      const r = this.book.live.get(p.job);
      return { id: p.job, name: r?.name ?? '', reason: p.reason, resources: { ...p.resources }, memory_mb_total: heldMemoryMb(p.resources), created_at: r?.created_at ?? new Date(0).toISOString() };
    });
    return { user: identity.user, policy_version: policyVersion, limits, usage: this.book.o.admission.ledger.usage(identity.user), pending };
  }

  private async viewOfRecord(r: JobRecord, fetch: boolean): Promise<JobView> {
    if (r.state === 'pending') return viewOf(r, null, this.pendingReason(r));
    if (!this.book.live.has(r.id) || r.backend_id === null) return viewOf(r, r.status);
    const status = fetch ? await this.book.statusOf(r).catch(() => this.book.cached(r.id)) : this.book.cached(r.id);
    return viewOf(r, status ?? r.status);
  }

  private pendingReason(r: JobRecord): string | undefined {
    return this.book.o.admission.pending(r.user).find((p) => p.job === r.id)?.reason;
  }

  /** The first of `actions` policy grants on `object`, or the refusal of the last. */
  private decideAny(identity: Identity, object: string, actions: string[]): Decision {
    const policy = this.o.policy();
    let decision: Decision | undefined;
    for (const action of actions) {
      decision = decide(policy, identity, object, action);
      if (decision.allowed) break;
    }
    return decision!;
  }

  private async audit(identity: Identity, req: FastifyRequest, e: Omit<AuditInput, 'actor' | 'request_id'>): Promise<void> {
    await recordOrFail(this.book.o.audit, { actor: actorOf(identity, req.ip), request_id: req.id, ...e }, req.log);
  }
}

/** The audit action of a dataset permission decision (read, write or overwrite, in `details.requested`). */
const AUTHORIZE = 'dataset.authorize';

/** What a dataset manifest's labels may be (src/compute's manifest): a policy label that is not cannot be carried. */
const MANIFEST_LABEL = /^[a-z0-9][a-z0-9_-]*$/;
const MAX_LABELS = 64;

/** The labels the policy gives an object through its g2 lines (`g2, dataset:customers, label:pii`), links of links included. */
function policyLabels(policy: PolicySnapshot, object: string): string[] {
  return [...policy.objectClosure(object, []).keys()].filter((n) => n.startsWith('label:')).map((n) => n.slice('label:'.length));
}

/**
 * The labels an output will carry: the input's (its manifest's and those the policy gives it),
 * any the spec adds, and those of a dataset it replaces. A contractor cannot launder pii by
 * copying it, through any chain of jobs, nor clear a label by overwriting.
 */
function outputLabels(policy: PolicySnapshot, input: DatasetInfo, spec: JobSpec, existing: DatasetInfo | undefined): string[] {
  return [...new Set([...input.labels, ...policyLabels(policy, `dataset:${input.name}`), ...(spec.labels ?? []), ...(existing?.labels ?? [])])].sort();
}

/**
 * The spec as it is handed over: its labels are every label the output carries (the engine writes
 * them into the output's manifest). A label no manifest can hold refuses the job rather than
 * letting the output go out without it.
 */
function labelled(spec: JobSpec, labels: string[]): JobSpec {
  const bad = labels.find((l) => !MANIFEST_LABEL.test(l) || l.length > 64);
  if (bad !== undefined) {
    throw new GatehouseError('conflict', `the output would carry the label "${bad}" (the policy gives it to ${spec.input}), which a dataset manifest cannot hold (lower-case letters, digits, _ and -); nothing was run: the policy's g2 line needs a name the manifest can carry`, { label: bad });
  }
  if (labels.length > MAX_LABELS) throw new GatehouseError('conflict', `the output would carry ${labels.length} labels; a dataset manifest holds ${MAX_LABELS} at most`);
  if (labels.length === 0) return spec;
  return { ...spec, labels };
}

/**
 * May `subject` replace `existing`? Its owner may (the manifest's `owner`); anyone else needs
 * `admin` on it by policy, and so does everyone for a dataset with no owner (the demo datasets).
 */
function replaceDecision(policy: PolicySnapshot, subject: Subject, existing: DatasetInfo): Decision {
  const object = `dataset:${existing.name}`;
  if (existing.owner !== null && existing.owner === subject.user) {
    return { allowed: true, rule: null, line: null, reason: `${existing.name} is the caller's own dataset (its manifest names ${subject.user} as owner)`, policyVersion: policy.version };
  }
  const whose = existing.owner === null ? `${existing.name} has no owner` : `${existing.name} belongs to ${existing.owner}`;
  const admin = decide(policy, subject, object, 'admin', { labels: existing.labels });
  if (admin.allowed) return { ...admin, reason: `${whose}; admin on ${object} ${admin.reason}` };
  return { ...admin, reason: `${whose}: replacing it takes its owner or admin on ${object} (${admin.reason})` };
}

function replaceEvent(decision: Decision, existing: DatasetInfo, job: string) {
  return {
    action: AUTHORIZE,
    object: `dataset:${existing.name}`,
    decision: decision.allowed ? 'allow' : 'deny',
    reason: decision.reason,
    policy_version: decision.policyVersion,
    details: { requested: 'overwrite', owner: existing.owner, job, ...(decision.line ? { rule_line: decision.line } : {}) },
  } as const;
}
