// Compares the ledger with the backends, on start-up and then periodically: often while jobs are
// live (their ends free quota for the pending ones), rarely when idle. It ends jobs the backend
// finished or lost, resends handovers a restart interrupted, and cancels backend jobs the gateway
// has no live record of (sent by a request that never got its answer; see job-id.ts).
import type { JobStatus } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import type { JobBook, Logger } from './job-book.js';
import { isGatewayJobId } from './job-id.js';

export interface ReconcilerOptions {
  /** Between passes while any job is live. */
  busyMs: number;
  /** Between passes when none is. */
  idleMs: number;
  log: Logger;
  /** Whether this gateway leads the job path now: of several over one store only the leader reconciles. */
  isLeader?: () => boolean;
}

/**
 * A job admitted on another gateway and not yet sent by it is left to that gateway this long before
 * the leader sends it itself (that gateway died between writing the record and the handover).
 */
const RESEND_GRACE_MS = 10_000;

export class Reconciler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly book: JobBook,
    private readonly o: ReconcilerOptions,
  ) {}

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass now (also what tests and the start-up call). */
  async pass(): Promise<void> {
    if (this.running !== null) return this.running;
    this.running = this.reconcile().finally(() => (this.running = null));
    return this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.pass()
        .catch((err: Error) => this.o.log.error({ err: err.message }, 'reconcile pass failed'))
        .finally(() => this.schedule(this.book.liveCount > 0 ? this.o.busyMs : this.o.idleMs));
    }, ms);
    this.timer.unref();
  }

  private async reconcile(): Promise<void> {
    if (this.o.isLeader !== undefined && !this.o.isLeader()) return; // the leader gateway does this for all
    const book = this.book;
    const answers: [string, ComputeBackend, JobStatus[]][] = [];
    for (const [name, backend] of book.eachBackend()) {
      try {
        answers.push([name, backend, await backend.active()]);
      } catch (err) {
        // Cannot tell what ended: nothing is released, nothing resent, until the backend answers.
        this.o.log.warn({ backend: name, err: (err as Error).message }, 'backend unreachable; jobs keep their quota until it answers');
      }
    }
    // After the backends answered: a job they list was recorded before it was sent, so it is known here now.
    await book.adoptLive();
    for (const [name, backend, active] of answers) {
      const seen = new Map(active.map((s) => [s.id, s]));
      for (const r of book.liveJobs()) {
        if (r.backend !== name || r.state === 'pending' || book.isInFlight(r.id)) continue;
        const status = seen.get(r.backend_id ?? r.id);
        if (status !== undefined) {
          await book.observe(r, status);
          continue;
        }
        // Not active: ended since the last pass, never arrived, or lost.
        let latest: Awaited<ReturnType<typeof backend.status>>;
        try {
          latest = await backend.status(r.backend_id ?? r.id);
        } catch {
          continue;
        }
        if (latest !== null) await book.observe(r, latest);
        else if (r.state === 'dispatching') {
          if (!book.shared || Date.now() - Date.parse(r.admitted_at ?? r.created_at) > RESEND_GRACE_MS) book.dispatch(r);
        }
        else await book.end(r, 'failed', `backend ${name} lost the job (it no longer knows ${r.backend_id ?? r.id}); its quota is released`, null);
      }
      for (const s of active) {
        if (book.isLive(s.id) || book.isInFlight(s.id) || !isGatewayJobId(s.id)) continue;
        this.o.log.warn({ backend: name, job: s.id, user: s.user }, 'cancelling a backend job the gateway has no live record of');
        await book.cancelUnrecorded(name, backend, s);
      }
    }
    await book.drain(); // a policy reload or the rolling day may have made room
  }
}
