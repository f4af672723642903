// The held handover's table on the engine: jobs a gateway prepared on its job channel (checked, their
// id, output and ticket reserved, nothing stored, nothing run) until it releases them once their
// job.submit is durable. A held job belongs to the connection that prepared it: only that
// connection may release or drop it, and its end drops them all. One the gateway neither released
// nor dropped within `boundMs` is dropped too (a gateway that stalls must not hold an output's name
// for long); a release after that is answered as for a job never held, and the gateway submits it
// whole instead.
import type { PreparedJob } from './jobs/intake.js';

export type DropReason = 'dropped by the gateway' | 'its channel ended' | 'held past its bound';

interface Held {
  owner: object;
  job: PreparedJob;
  until: number;
}

export interface HeldJobsOptions {
  /** How long a prepared job is held at most. */
  boundMs: number;
  /** Lets a dropped job's reservations go (JobEngine.drop); `why` for the log. */
  drop: (job: PreparedJob, why: DropReason) => void;
  now?: () => number;
}

export class HeldJobs {
  private readonly held = new Map<string, Held>();
  private readonly now: () => number;

  constructor(private readonly o: HeldJobsOptions) {
    this.now = o.now ?? Date.now;
  }

  get size(): number {
    return this.held.size;
  }

  /** Holds `job` for `owner`, under the job id its ticket names (the intake reserved it: no other prepare holds it). */
  hold(owner: object, job: PreparedJob): void {
    this.sweep();
    this.held.set(job.claims.job, { owner, job, until: this.now() + this.o.boundMs });
  }

  /** The job `owner` holds under `id`, taken out of the table to be committed; undefined: none (never held, another's, dropped, or past its bound). */
  take(owner: object, id: string): PreparedJob | undefined {
    this.sweep();
    const h = this.held.get(id);
    if (h === undefined || h.owner !== owner) return undefined;
    this.held.delete(id);
    return h.job;
  }

  /** Lets `owner`'s job `id` go; false when it held none by that id. */
  drop(owner: object, id: string): boolean {
    const job = this.take(owner, id);
    if (job === undefined) return false;
    this.o.drop(job, 'dropped by the gateway');
    return true;
  }

  /** Every job `owner` holds (its channel ended). */
  dropAll(owner: object): void {
    for (const [id, h] of this.held) {
      if (h.owner !== owner) continue;
      this.held.delete(id);
      this.o.drop(h.job, 'its channel ended');
    }
  }

  /** Drops the jobs past their bound. */
  sweep(): void {
    const now = this.now();
    for (const [id, h] of this.held) {
      if (h.until > now) continue;
      this.held.delete(id);
      this.o.drop(h.job, 'held past its bound');
    }
  }
}
