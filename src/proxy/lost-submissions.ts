// Submissions a stopped gateway admitted but left no record of. The record is written after
// job.submit (a shared store) or beside it (the embedded one), so a power loss in the milliseconds
// between leaves an admitted job the trail never mentions again. (The other way round, a record whose
// job.submit never became durable, is ended unsent at start-up: JobBook.restore.) At start-up the trail names them (audit's unendedSubmissions); this asks the records
// and the job's backend about each, and gives the ones nothing else will end their job.finish, so an
// auditor never finds an admitted job that simply stops being mentioned:
// - a record here: the job is followed as any other (its end will be recorded);
// - the backend does not know it: it never ran (the handover was lost with the record);
// - the backend ran it to its end while no record was here: that end;
// - the backend still runs it: the leader's sweep cancels it and records its end (JobBook.cancelUnrecorded).
import { type AuditEvent, type AuditOutbox, SYSTEM_ACTOR } from '../audit/index.js';
import { FINAL_STATES, type JobStatus } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import type { Logger } from './job-book.js';
import { isGatewayJobId } from './job-id.js';

export interface LostSubmissionsOptions {
  /** job.submit (allow) events whose job the trail never mentions again, read at start-up. */
  unended: readonly AuditEvent[];
  /** The record of a job, if this gateway has one (live or ended). */
  recorded: (id: string) => Promise<boolean>;
  /** The configured backend of that name, or undefined. */
  backend: (name: string) => ComputeBackend | undefined;
  /** Claims the one end an unrecorded job gets on the trail (shared with the sweep's): false when already claimed. */
  claimEnd: (id: string) => boolean;
  outbox: AuditOutbox;
  log: Logger;
}

export class LostSubmissions {
  private readonly open: AuditEvent[];

  constructor(private readonly o: LostSubmissionsOptions) {
    this.open = [...o.unended];
  }

  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private settling: Promise<void> = Promise.resolve();

  /** Settles now, and again every `everyMs` while a backend has not answered, until stop(). */
  start(everyMs: number): void {
    if (this.open.length === 0) return;
    const pass = (): void => {
      this.settling = this.settle().then(
        (left) => {
          if (left > 0 && !this.stopped) (this.timer = setTimeout(pass, everyMs)).unref();
        },
        (err: Error) => this.o.log.error({ err: err.message }, 'could not settle submissions without a record'),
      );
    };
    pass();
  }

  /** No further pass; resolves once the one under way (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.settling;
  }

  /**
   * Settles what it can: each submission is decided once its backend answers; one whose backend
   * cannot be reached now stays for the next call. Resolves with the number still open.
   */
  async settle(): Promise<number> {
    for (const event of [...this.open]) {
      if (await this.settleOne(event)) this.open.splice(this.open.indexOf(event), 1);
    }
    return this.open.length;
  }

  private async settleOne(event: AuditEvent): Promise<boolean> {
    const id = event.object.slice('job:'.length);
    if (!isGatewayJobId(id) || (await this.o.recorded(id))) return true;
    const owner = event.actor.user;
    const backendName = typeof event.details.backend === 'string' ? event.details.backend : null;
    const backend = backendName === null ? undefined : this.o.backend(backendName);
    if (backend === undefined) {
      // Cannot be asked, so nothing true can be said of its fate beyond this line in the operator's log.
      this.o.log.warn({ job: id, backend: backendName, submitted: event.id }, 'an admitted job has no record here and its backend is not configured; its end is unknown');
      return true;
    }
    let status: JobStatus | null;
    try {
      status = await backend.status(id);
    } catch (err) {
      this.o.log.warn({ job: id, backend: backendName, err: (err as Error).message }, 'backend unreachable; an admitted job without a record is asked about again');
      return false;
    }
    if (status !== null && !FINAL_STATES.includes(status.state)) return true; // still runs: the leader's sweep cancels and records it
    if (!this.o.claimEnd(id)) return true; // the sweep recorded its end
    const details = { backend: backendName, owner, submitted_event: event.id, unrecorded: true };
    await this.o.outbox.record(
      status === null
        ? { actor: SYSTEM_ACTOR, action: 'job.finish', object: event.object, decision: 'error', reason: `lost: the gateway stopped before writing its record and backend ${backendName} never received it; it never ran`, details: { ...details, state: 'lost' } }
        : { actor: SYSTEM_ACTOR, action: 'job.finish', object: event.object, decision: 'error', reason: `ended at backend ${backendName} as ${status.state} while this gateway had no record of it (it stopped before writing one)`, details: { ...details, state: status.state } }, // not its error: that may quote the job's data
    );
    this.o.log.warn({ job: id, owner, backend: backendName, state: status?.state ?? 'lost' }, 'an admitted job without a record ended on the trail');
    return true;
  }
}
