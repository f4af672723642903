// A followed log of a job its backend does not have yet: waiting in its owner's queue, or on its way
// (on the embedded store the 201 goes out while the release is still travelling). The answer is an
// open body at once, which follows the backend's log from the handover on, or ends empty if the job
// ends without reaching a backend. Ending at once instead gave a person who followed right after
// submitting an empty log for a job that then ran and logged (CI10: the Python client's walk).
// Who may read it is decided once, when asked, as for any followed log (a running job's streams for
// the job's life); its credential is not asked again at the handover, where a 15-minute access token
// would cut a follow that waited in the queue longer. A job whose login ended meanwhile is ended
// unrun at its admission (JobBook.dispatch): its follow ends empty.
// A job whose record is removed while its follow waits (a submission not accepted after all: a
// handover the backend refused, a job.submit that could not be recorded) never reaches a backend: its
// follow ends at once with one line that says so, instead of holding its caller's place until they
// hang up. Removal touches the job (JobBook.untrack); on a shared store the re-read finds it gone.
import { PassThrough, pipeline, type Readable } from 'node:stream';
import type { JobChanges } from './job-changes.js';
import { ENDED_STATES, type JobRecord } from './job-records.js';

export interface LogFollowOptions {
  /** Touched when the job is handed over, admitted from the queue or ends (job-changes.ts). */
  changes: JobChanges;
  /** The job as the book has it now. */
  find(id: string): Promise<JobRecord | undefined>;
  /** The followed log of a job its backend has (null: the backend no longer knows it). */
  follow(r: JobRecord): Promise<Readable | null>;
  /** With other gateways over the store a change may never touch this one: look again this often. */
  rereadMs: number | null;
}

export class WaitingFollows {
  /** Bodies still waiting for their job's handover. */
  private readonly waiting = new Set<PassThrough>();
  private stopped = false;

  constructor(private readonly o: LogFollowOptions) {}

  /** The gateway stops: a body still waiting is cut (as a backend's followed log is), so none keeps it from stopping. */
  stop(): void {
    this.stopped = true;
    for (const out of this.waiting) out.destroy(new Error('the gateway is stopping'));
  }

  /** The job's followed log from its handover on; `done` once the wait is over, however it ends. */
  follow(r: JobRecord, done: () => void): Readable {
    const out = new PassThrough();
    if (this.stopped) {
      done();
      out.destroy(new Error('the gateway is stopping'));
      return out;
    }
    this.waiting.add(out);
    let gone = false;
    let wake: () => void = () => {};
    // The person left (the route destroys the body then) or the gateway stops: nothing more is looked up or opened.
    out.once('close', () => {
      gone = true;
      wake();
    });
    void (async () => {
      for (;;) {
        // Listening before reading: a handover between the read and the wait still wakes it.
        const next = this.o.changes.next(r.id);
        let reread: NodeJS.Timeout | undefined;
        try {
          const now = await this.o.find(r.id);
          if (gone) return;
          if (now === undefined) return void out.end(goneLine(r));
          if (now.backend_id !== null) {
            const log = await this.o.follow(now);
            if (log === null) return void out.end();
            if (gone) return void log.destroy();
            pipeline(log, out, () => undefined); // an error destroys both: the person sees the body cut
            return;
          }
          if (ENDED_STATES.includes(now.state)) return void out.end();
          await new Promise<void>((resolve) => {
            wake = resolve;
            void next.changed.then(resolve);
            if (this.o.rereadMs !== null) reread = setTimeout(resolve, this.o.rereadMs);
          });
          wake = () => {};
        } finally {
          next.cancel();
          clearTimeout(reread);
        }
      }
    })()
      .catch((err: Error) => out.destroy(err))
      .finally(() => {
        this.waiting.delete(out);
        done();
      });
    return out;
  }
}

/**
 * The last line of a followed log whose job's record was removed before it reached its backend,
 * marked as the engine marks its own lines. It names only the job the caller was allowed to follow.
 */
export function goneLine(r: JobRecord, now = new Date()): string {
  return `[gateway] ${now.toISOString()} job ${r.id} no longer exists: its submission was not accepted (the answer to it said why), so nothing of it ran\n`;
}
