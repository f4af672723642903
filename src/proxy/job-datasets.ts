// A job's dataset decisions, in one place for both moments they are made: at submission, and again
// as a pending job leaves the queue (policy, labels and datasets may have changed while it waited).
// Read the input, write the output (with every label it will carry), and replace an existing output
// only as its owner or with admin on it. Labels come from the catalog of the job's OWN backend. Each
// decision goes through the Authorizer port and is recorded (`dataset.authorize`) before anything
// acts on it; the read and the write themselves are recorded later, when they happen (job-book.ts).
import { type AuditRecorder, type DecisionActor, type DecisionOrigin, recordDecision } from '../audit/index.js';
import type { Authorizer, Decision } from '../identity/index.js';
import { forbidden, type PolicySnapshot } from '../policy/index.js';
import { type DatasetInfo, GatehouseError, type JobSpec } from '../wire/index.js';
import type { DatasetLookup } from './dataset-lookup.js';
import type { HeldEvents } from './held-events.js';

/** For whom a job's datasets are decided (the submitter, or the job's owner as recorded), and where: a request, or null for the queue. */
export interface Asker {
  identity: DecisionActor;
  origin: DecisionOrigin | null;
}

/** Records one dataset decision (`requested`: read, write or overwrite) before anything acts on it; rejects (503 audit_unavailable) when the trail cannot take it. */
export type RecordDatasetDecision = (asker: Asker, object: string, requested: string, decision: Decision, details: Record<string, unknown>) => Promise<void>;

/** The audit action of a dataset permission decision (read, write or overwrite, in `details.requested`). */
export const AUTHORIZE = 'dataset.authorize';

/** The one recording function of a job's dataset decisions: src/audit's recordDecision, as every authorization decision is recorded. */
export function recordDatasetDecision(audit: AuditRecorder): RecordDatasetDecision {
  return (asker, object, requested, decision, details) => recordDecision(audit, asker.origin, asker.identity, { action: AUTHORIZE, object, requested, decision, details });
}

export interface JobDatasetsOptions {
  authorizer: Authorizer;
  /** The labels the serving policy gives an object through its g2 lines (see policyLabelsOf). */
  policyLabels: (object: string) => string[];
  /** The catalog of a backend, by its name: labels of the input, and of an output being replaced. */
  catalog: (backend: string) => DatasetLookup;
  record: RecordDatasetDecision;
}

/** One dataset decision of a dry run, as the preview answers it. */
export interface PreviewDecision {
  object: string;
  requested: string;
  allowed: boolean;
  rule: string | null;
  line: string | null;
  reason: string;
}

/** What a job's datasets came to. */
export type DatasetVerdict =
  /** Allowed: the spec to hand over (its labels: every label the output carries) and, for an overwrite of another's dataset, its owner. */
  | { outcome: 'allowed'; spec: JobSpec; replaces: { owner: string | null } | null }
  | { outcome: 'denied'; decision: Decision }
  /** The input is not in the backend's catalog (the read was decided and recorded first, so a name tells nothing to those who may not read it). */
  | { outcome: 'missing' }
  /** The output would carry a label no manifest can hold. */
  | { outcome: 'unlabelable'; error: GatehouseError };

export interface JobOnDatasets {
  id: string;
  spec: JobSpec;
  backend: string;
}

export class JobDatasets {
  constructor(private readonly o: JobDatasetsOptions) {}

  /**
   * Submission: resolves with the spec to hand over; throws 403 (the rule), 404 (no input) or 409
   * (a label no manifest holds). With `held`, an allowed job's decisions wait there for the caller's
   * next event; a refused one's are recorded before it throws.
   */
  async forSubmit(asker: Asker, job: JobOnDatasets, held?: HeldEvents): Promise<{ spec: JobSpec; replaces: { owner: string | null } | null }> {
    // Held: the decisions are recorded with the submission's next event, in its group commit (held-events.ts).
    const record: RecordDatasetDecision | undefined = held && ((...args) => held.hold(() => this.o.record(...args)));
    let verdict: DatasetVerdict;
    try {
      verdict = await this.decide(asker, job, { freshInput: false, details: {} }, record);
    } catch (err) {
      await held?.flush(); // what was decided before the failure is on record before the error is answered
      throw err;
    }
    if (verdict.outcome !== 'allowed') await held?.flush(); // a refusal's decisions are on record before it is answered
    switch (verdict.outcome) {
      case 'allowed':
        return verdict;
      case 'denied':
        throw forbidden(verdict.decision);
      case 'missing':
        throw new GatehouseError('not_found', `no dataset ${job.spec.input}`, { field: 'body.input' });
      case 'unlabelable':
        throw verdict.error;
    }
  }

  /**
   * Queue exit, with the groups the job was submitted with and fresh catalog answers. Resolves
   * with the verdict; a catalog that cannot answer throws 503 (undecided is not allowed: the
   * caller retries the whole way).
   */
  async forQueueExit(asker: Asker, job: JobOnDatasets): Promise<DatasetVerdict> {
    return this.decide(asker, job, { freshInput: true, details: { leaving_queue: true } });
  }

  /**
   * A dry run (POST /v1/jobs/preview): the same decisions, none recorded one by one (the preview is
   * recorded once, as job.preview, by the caller), each returned with the rule that made it, and the
   * input as its catalog lists it.
   */
  async forPreview(asker: Asker, job: JobOnDatasets): Promise<{ verdict: DatasetVerdict; decisions: PreviewDecision[]; input: DatasetInfo | undefined }> {
    const decisions: PreviewDecision[] = [];
    const collect: RecordDatasetDecision = async (_asker, object, requested, decision) => {
      decisions.push({ object, requested, allowed: decision.allowed, rule: decision.rule, line: decision.line, reason: decision.reason });
    };
    const verdict = await this.decide(asker, job, { freshInput: false, details: {} }, collect);
    // Only for a readable input: a name one may not read tells nothing of its size.
    const input = decisions[0]?.allowed ? await this.o.catalog(job.backend)(job.spec.input, false) : undefined;
    return { verdict, decisions, input };
  }

  private async decide(asker: Asker, job: JobOnDatasets, occasion: { freshInput: boolean; details: Record<string, unknown> }, record: RecordDatasetDecision = this.o.record): Promise<DatasetVerdict> {
    const { spec } = job;
    const lookup = this.o.catalog(job.backend);
    let input: DatasetInfo | undefined;
    let existing: DatasetInfo | undefined;
    try {
      input = await lookup(spec.input, occasion.freshInput);
      existing = spec.mode === 'overwrite' ? await lookup(spec.output, true) : undefined;
    } catch (err) {
      if (!occasion.freshInput) throw err;
      throw new GatehouseError('not_ready', `the datasets of job ${job.id} could not be decided again as it left the queue: ${(err as Error).message}`);
    }
    const subject = asker.identity;
    const { authorizer } = this.o;
    const read = authorizer.decide(subject, `dataset:${spec.input}`, 'read', { labels: input?.labels });
    await record(asker, `dataset:${spec.input}`, 'read', read, { job: job.id, ...occasion.details });
    if (!read.allowed) return { outcome: 'denied', decision: read };
    if (input === undefined) return { outcome: 'missing' };

    const inherited = new Set([...input.labels, ...this.o.policyLabels(`dataset:${input.name}`), ...(existing?.labels ?? [])]);
    const declared = [...new Set(spec.labels ?? [])].filter((l) => !inherited.has(l)).sort();
    const outLabels = [...new Set([...inherited, ...declared])].sort();
    const write = this.writeDecision(subject, `dataset:${spec.output}`, outLabels, declared);
    await record(asker, `dataset:${spec.output}`, 'write', write, { job: job.id, ...(declared.length > 0 ? { declared_labels: declared } : {}), ...occasion.details });
    if (!write.allowed) return { outcome: 'denied', decision: write };

    if (existing !== undefined) {
      const replace = this.replaceDecision(subject, existing);
      await record(asker, `dataset:${existing.name}`, 'overwrite', replace, { owner: existing.owner, job: job.id, ...occasion.details });
      if (!replace.allowed) return { outcome: 'denied', decision: replace };
    }
    let effective: JobSpec;
    try {
      effective = labelled(spec, outLabels);
    } catch (err) {
      return { outcome: 'unlabelable', error: err as GatehouseError };
    }
    return { outcome: 'allowed', spec: effective, replaces: existing !== undefined && existing.owner !== subject.user ? { owner: existing.owner } : null };
  }

  /**
   * Write on the output with every label it will carry, so a deny on any of them holds. A label
   * the job itself declares can close the output but never open it: were an allow rule on a label
   * (`p, role:x, label:shared, write, allow`) to count for a label the caller picked, anyone it
   * names could write any dataset by declaring that label. So when the job declares labels of its
   * own, write must also be allowed without them.
   */
  private writeDecision(subject: Asker['identity'], object: string, labels: string[], declared: string[]): Decision {
    const write = this.o.authorizer.decide(subject, object, 'write', { labels });
    if (!write.allowed || declared.length === 0) return write;
    const own = new Set(declared);
    const without = this.o.authorizer.decide(subject, object, 'write', { labels: labels.filter((l) => !own.has(l)) });
    if (without.allowed) return write;
    return { ...without, reason: `${without.reason} (a label the job declares, ${declared.join(', ')}, cannot grant write)` };
  }

  /**
   * May `subject` replace `existing`? Its owner may (the manifest's `owner`); anyone else needs
   * `admin` on it by policy, and so does everyone for a dataset with no owner (the demo datasets).
   */
  private replaceDecision(subject: Asker['identity'], existing: DatasetInfo): Decision {
    const object = `dataset:${existing.name}`;
    if (existing.owner !== null && existing.owner === subject.user) {
      return { allowed: true, rule: null, line: null, reason: `${existing.name} is the caller's own dataset (its manifest names ${subject.user} as owner)`, policyVersion: this.o.authorizer.version() };
    }
    const admin = this.o.authorizer.decide(subject, object, 'admin', { labels: existing.labels });
    const whose = existing.owner === null ? `${existing.name} has no owner` : `${existing.name} belongs to ${existing.owner}`;
    if (admin.allowed) return { ...admin, reason: `${whose}; admin on ${object} ${admin.reason}` };
    // Write without read (a drop box) must not tell whose the dataset is: the answer goes to the caller.
    const read = this.o.authorizer.decide(subject, object, 'read', { labels: existing.labels });
    if (!read.allowed) return { ...admin, reason: `${existing.name} is not the caller's: replacing it takes its owner or admin on ${object} (${admin.reason})` };
    return { ...admin, reason: `${whose}: replacing it takes its owner or admin on ${object} (${admin.reason})` };
  }
}

/**
 * The labels the serving policy gives an object through its g2 lines (`g2, dataset:customers,
 * label:pii`), links of links included. With the input's manifest labels, the spec's own and those
 * of a dataset it replaces, they are the output's: a contractor cannot launder pii by copying it,
 * through any chain of jobs, nor clear a label by overwriting.
 */
export function policyLabelsOf(policy: () => PolicySnapshot): (object: string) => string[] {
  return (object) => [...policy().objectClosure(object, []).keys()].filter((n) => n.startsWith('label:')).map((n) => n.slice('label:'.length));
}

/** What a dataset manifest's labels may be (src/compute's manifest): a policy label that is not cannot be carried. */
const MANIFEST_LABEL = /^[a-z0-9][a-z0-9_-]*$/;
const MAX_LABELS = 64;

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
