// Stage 3 of the pipeline: admission. A job that fits its user's limits and what they hold now is
// admitted and its resources held; one that fits the limits but not the current usage waits in
// the user's pending queue (first in, first out) and is admitted when usage frees; one that could
// never fit, or whose user has spent the day's core-hours, is refused at once.
//
// Checking and holding happen in one synchronous step on the in-memory ledger, so however many
// submissions race, none can see usage another has not yet added. The caller persists each
// outcome (the job records) before answering.
import type { Subject } from '../identity/index.js';
import type { PolicySnapshot } from '../policy/index.js';
import { checkQuota, limitsFor, type ResourceRequest } from './limits.js';
import { UsageLedger } from './ledger.js';

export interface AdmissionRequest {
  job: string;
  subject: Subject;
  resources: ResourceRequest;
}

interface Numbers {
  /** The limit that decided: a quota line's limit, or max_pending_jobs (the gateway's own cap). */
  limit: string;
  used: number;
  requested: number;
  max: number;
  reason: string;
}

export type Admission =
  | { outcome: 'admitted'; granted: ResourceRequest; policyVersion: string }
  | ({ outcome: 'pending'; policyVersion: string } & Numbers)
  | ({ outcome: 'rejected'; policyVersion: string } & Numbers);

export interface PendingJob extends AdmissionRequest {
  /** Why it waits now, e.g. `quota: cores 8/8 in use`. */
  reason: string;
}

/** What a drain did: jobs admitted from the queues, and jobs that can now never fit (limits lowered). */
export interface Drained {
  admitted: { job: string; user: string; granted: ResourceRequest; policyVersion: string }[];
  refused: ({ job: string; user: string; policyVersion: string } & Numbers)[];
}

export class AdmissionControl {
  /** Per user, in submission order. */
  private readonly queues = new Map<string, PendingJob[]>();

  constructor(
    readonly ledger: UsageLedger,
    private readonly policy: () => PolicySnapshot,
    private readonly maxPendingPerUser: number,
  ) {}

  /**
   * Decides one submission on the serving policy, holding its resources when admitted. A job
   * within the limits that asks for more cores than its backend runs at once (`backend`) is
   * refused too (limit `backend_slots`): it would hold quota it can never use.
   */
  admit(request: AdmissionRequest, backend?: { name: string; slots: number }): Admission {
    const policy = this.policy();
    const { limits, policyVersion } = limitsFor(policy, request.subject);
    const user = request.subject.user;
    const check = checkQuota(limits, this.ledger.usage(user), request.resources);
    if (check.verdict === 'refuse') return { outcome: 'rejected', policyVersion, ...numbers(check) };
    const cores = request.resources.cores;
    if (backend !== undefined && cores > backend.slots) {
      const reason = `resources.cores: ${cores} cores requested, but backend ${backend.name} runs at most ${backend.slots} workers at once, so a job can never use more; ask for ${backend.slots} or fewer`;
      return { outcome: 'rejected', policyVersion, limit: BACKEND_SLOTS, used: 0, requested: cores, max: backend.slots, reason };
    }
    const queue = this.queues.get(user) ?? [];
    if (check.verdict === 'fits' && queue.length === 0) {
      this.ledger.hold(request.job, user, request.resources);
      return { outcome: 'admitted', granted: { ...request.resources }, policyVersion };
    }
    if (queue.length >= this.maxPendingPerUser) {
      return { outcome: 'rejected', policyVersion, limit: 'max_pending_jobs', used: queue.length, requested: 1, max: this.maxPendingPerUser, reason: `quota: ${queue.length} jobs already pending, the most a user may have waiting` };
    }
    // First in, first out: a job that would fit still waits behind its user's earlier ones.
    const waiting = check.verdict === 'wait' ? numbers(check) : { limit: 'queue', used: queue.length, requested: 1, max: this.maxPendingPerUser, reason: behind(queue.length) };
    this.enqueue({ ...request, reason: waiting.reason });
    return { outcome: 'pending', policyVersion, ...waiting };
  }

  /** A user's pending jobs in order, each with why it waits now. */
  pending(user: string): PendingJob[] {
    const queue = this.queues.get(user) ?? [];
    return queue.map((p, i) => ({ ...p, reason: i === 0 ? this.headReason(p) : behind(i) }));
  }

  pendingCount(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Users with jobs waiting. */
  queuedUsers(): string[] {
    return [...this.queues.keys()];
  }

  isPending(job: string): boolean {
    for (const q of this.queues.values()) if (q.some((p) => p.job === job)) return true;
    return false;
  }

  /** Takes a job out of its queue (cancelled while pending); false when it was not waiting. */
  withdraw(job: string): boolean {
    for (const [user, q] of this.queues) {
      const i = q.findIndex((p) => p.job === job);
      if (i < 0) continue;
      q.splice(i, 1);
      if (q.length === 0) this.queues.delete(user);
      return true;
    }
    return false;
  }

  /**
   * The groups these pending jobs of `user` are decided on from now: who the person is now (asked of
   * their directory as the queue moves), not who they were at submission, so a person taken out of a
   * group waits on, or is refused by, the limits they have now. Other jobs of theirs keep their groups.
   */
  regroup(user: string, jobs: ReadonlySet<string>, groups: readonly string[]): void {
    for (const p of this.queues.get(user) ?? []) if (jobs.has(p.job)) p.subject = { ...p.subject, groups: [...groups] };
  }

  /** Ends a job's hold, once; see UsageLedger.release. */
  release(job: string, coreSeconds: number, at?: number): boolean {
    return this.ledger.release(job, coreSeconds, at);
  }

  /**
   * Admits from the head of each queue while the head fits (on the serving policy: a lowered
   * quota applies here, to the next admission, never to running jobs). A head that can now never
   * fit is refused and the next one considered; one blocked by the day's core-hours keeps waiting.
   */
  drain(users: Iterable<string> = [...this.queues.keys()]): Drained {
    const out: Drained = { admitted: [], refused: [] };
    const policy = this.policy();
    for (const user of [...users]) {
      const queue = this.queues.get(user);
      while (queue !== undefined && queue.length > 0) {
        const head = queue[0]!;
        const { limits, policyVersion } = limitsFor(policy, head.subject);
        const check = checkQuota(limits, this.ledger.usage(user), head.resources);
        if (check.verdict === 'wait' || (check.verdict === 'refuse' && check.limit === 'core_hours_per_day')) {
          head.reason = check.reason;
          break;
        }
        queue.shift();
        if (check.verdict === 'refuse') {
          out.refused.push({ job: head.job, user, policyVersion, ...numbers(check) });
          continue;
        }
        this.ledger.hold(head.job, user, head.resources);
        out.admitted.push({ job: head.job, user, granted: { ...head.resources }, policyVersion });
      }
      if (queue !== undefined && queue.length === 0) this.queues.delete(user);
    }
    return out;
  }

  /**
   * A fresh control on the same policy and caps, with a ledger of its own: to compute a view (a
   * user's usage and why each of their jobs waits) from records read just now, without touching
   * the state decisions are made on.
   */
  detached(): AdmissionControl {
    return new AdmissionControl(new UsageLedger(), this.policy, this.maxPendingPerUser);
  }

  /** A user's queue as the shared records have it (in submission order), read under the user's lock. */
  resetQueue(user: string, pending: readonly (AdmissionRequest & { reason: string | null })[]): void {
    this.queues.delete(user);
    for (const p of pending) this.enqueue({ job: p.job, subject: p.subject, resources: p.resources, reason: p.reason ?? 'waiting for quota' });
  }

  /** Start-up: a pending job from the records, in submission order. */
  restorePending(job: AdmissionRequest, reason: string | null): void {
    this.enqueue({ ...job, reason: reason ?? 'waiting for quota' });
  }

  private enqueue(p: PendingJob): void {
    const q = this.queues.get(p.subject.user);
    if (q === undefined) this.queues.set(p.subject.user, [p]);
    else q.push(p);
  }

  private headReason(p: PendingJob): string {
    const { limits } = limitsFor(this.policy(), p.subject);
    const check = checkQuota(limits, this.ledger.usage(p.subject.user), p.resources);
    return check.verdict === 'fits' ? 'admitting' : check.reason;
  }
}

/** The `limit` of a refusal for more cores than the backend runs at once (not a quota line). */
export const BACKEND_SLOTS = 'backend_slots';

const behind = (n: number) => `queued behind ${n} earlier pending job${n === 1 ? '' : 's'} of yours`;

function numbers(check: { limit: string; used: number; requested: number; max: number; reason: string }): Numbers {
  return { limit: check.limit, used: check.used, requested: check.requested, max: check.max, reason: check.reason };
}
