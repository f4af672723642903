// The long-poll on a job's status (GET /v1/jobs/:id?wait_s=N&seen=TOKEN): the answer comes at once
// when the job differs from what the caller last saw (the `seen` token of their previous answer),
// else the request is held until the job changes here (job-changes.ts: a pushed or polled status, an
// end, a cancel) or N seconds pass. A person's `--wait` then sees the end the moment the gateway does,
// not up to a poll interval later. What one caller can hold is bounded (per user and in all): a held
// request is a socket and a listener, and a loop of waits must not starve the gateway.
import { createHash } from 'node:crypto';
import { FINAL_STATES, GatehouseError } from '../wire/index.js';
import type { JobChanges } from './job-changes.js';
import type { JobView } from './job-view.js';

/** The longest a caller may ask to be held: under the CLI's and the Python client's 30 s read timeouts. */
export const MAX_WAIT_S = 25;
/** Held waits per user (a person's CLI and notebooks together) and on the whole gateway. */
export const WAITS_PER_USER = 16;
export const WAITS_TOTAL = 1024;
/**
 * Retry-After on a refusal past the bounds (seconds). A place frees when a held read ends (its job
 * changes, its time runs out, its caller leaves, its job is handed over), which nobody can foresee;
 * a refused ask costs only the job's record read, so the person's own limit says 1 s, keeping a
 * retrying follow about a second behind the place it waits for. The gateway's limit says 5 s: there
 * the retries of many people meet on one loaded gateway.
 */
export const RETRY_AFTER_S = { user: 1, gateway: 5 } as const;

/**
 * What the caller has seen of the job, as a short token: the state and everything a person watches
 * change (partitions done, failed, total; why it waits and its place in the queue; its start, end,
 * error, who cancelled it). Not the CPU seconds, which change with every status and tell nobody
 * waiting anything new.
 */
export function seenOf(view: JobView): string {
  const p = view.partitions;
  const what = [view.state, p.total, p.done, p.failed, view.reason, view.queue_position, view.started_at, view.finished_at, view.error, view.cancelled_by];
  return createHash('sha256').update(JSON.stringify(what)).digest('base64url').slice(0, 22);
}

export interface HeldWait {
  user: string;
  id: string;
  /** The caller's token; the answer is held only while the job still matches it. */
  seen: string;
  waitS: number;
  /** The job as this gateway knows it now; fresh: ask the store and the backend too (the fallback re-read). */
  read(fresh: boolean): Promise<JobView>;
  /** Resolves when the caller went away: the wait ends and its place is given back. */
  gone: Promise<void>;
}

export interface JobWaitsOptions {
  perUser?: number;
  total?: number;
  /**
   * With other gateways over the same store (PostgreSQL) a change may be applied on another one and
   * never touch this one: a held wait then also re-reads the job this often. Null: every change of
   * the job passes through this gateway (the embedded store), so touches alone wake waits.
   */
  rereadMs: number | null;
}

export class JobWaits {
  private readonly perUser = new Map<string, number>();
  private total = 0;
  private closing = false;
  private release: () => void = () => {};
  /** Resolves when the gateway stops: every held wait is answered then (and a followed log still waiting for its job's handover is cut), so none keeps it from stopping. */
  readonly closed = new Promise<void>((resolve) => {
    this.release = resolve;
  });

  constructor(
    private readonly changes: JobChanges,
    private readonly o: JobWaitsOptions,
  ) {}

  /** Waits held now, in all or for one user. */
  held(user?: string): number {
    return user === undefined ? this.total : (this.perUser.get(user) ?? 0);
  }

  /** The gateway is stopping: held waits are answered now (the job as it is), new ones at once. */
  close(): void {
    this.closing = true;
    for (const stop of this.stops) stop();
    this.release();
  }

  /**
   * The held waits' ends at the gateway's stop. A set each wait leaves when it ends: a reaction on
   * `closed` per wait would stay attached to that one promise, with its wait's closure, until the
   * gateway stops (a leak growing with every wait a running gateway ever held).
   */
  private readonly stops = new Set<() => void>();

  /** Holds the caller until the job differs from `seen`, ends, the time is up or the caller goes away; answers the job as it is then. */
  async hold(w: HeldWait): Promise<JobView> {
    if (this.closing) return w.read(false);
    this.take(w.user);
    const deadline = timer(w.waitS * 1000);
    // The ends of the whole wait are listened to once, not once per wake-up: a job touched often
    // without changing what the caller sees would otherwise pile reactions on them for the wait's life.
    let wake: (why: 'changed' | 'time' | 'gone' | 'reread') => void = () => {};
    let ended: 'time' | 'gone' | undefined;
    const end = (why: 'time' | 'gone') => {
      ended ??= why;
      wake(why);
    };
    void deadline.done.then(() => end('time'));
    void w.gone.then(() => end('gone'));
    const stop = () => end('time');
    this.stops.add(stop);
    try {
      let fresh = false;
      for (;;) {
        // Listening before reading: a change between the read and the wait still wakes it.
        const next = this.changes.next(w.id);
        const reread = this.o.rereadMs === null ? null : timer(this.o.rereadMs);
        try {
          const view = await w.read(fresh);
          if (seenOf(view) !== w.seen || (FINAL_STATES as readonly string[]).includes(view.state)) return view;
          if (ended !== undefined) return view;
          const woke = await new Promise<'changed' | 'time' | 'gone' | 'reread'>((resolve) => {
            wake = resolve;
            void next.changed.then(() => resolve('changed'));
            void reread?.done.then(() => resolve('reread'));
          });
          wake = () => {};
          if (woke === 'time' || woke === 'gone') return view;
          fresh = woke === 'reread';
        } finally {
          next.cancel();
          reread?.clear();
        }
      }
    } finally {
      this.stops.delete(stop);
      deadline.clear();
      this.give(w.user);
    }
  }

  /**
   * A place among the held waits for another request held on a job (a followed log waiting for its
   * handover, log-follow.ts): it costs what a held wait costs, so it counts against the same bounds.
   * Throws too_many_requests past them; the function returned gives the place back (once).
   */
  place(user: string): () => void {
    this.take(user, 'follow the log once the job has started');
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.give(user);
    };
  }

  private take(user: string, instead = 'ask without wait_s'): void {
    const mine = this.perUser.get(user) ?? 0;
    const perUser = this.o.perUser ?? WAITS_PER_USER;
    // `waits` names the bound that refused: what a client may wait out (clients retry only these 429s).
    if (mine >= perUser) throw new GatehouseError('too_many_requests', `you already hold ${mine} waits on jobs (at most ${perUser} at once); end one, or ${instead}`, { limit: perUser, waits: 'user', retry_after: RETRY_AFTER_S.user });
    if (this.total >= (this.o.total ?? WAITS_TOTAL)) throw new GatehouseError('too_many_requests', `the gateway holds as many waits on jobs as it may; try again shortly, or ${instead}`, { limit: this.o.total ?? WAITS_TOTAL, waits: 'gateway', retry_after: RETRY_AFTER_S.gateway });
    this.perUser.set(user, mine + 1);
    this.total += 1;
  }

  private give(user: string): void {
    const mine = (this.perUser.get(user) ?? 1) - 1;
    if (mine <= 0) this.perUser.delete(user);
    else this.perUser.set(user, mine);
    this.total -= 1;
  }
}

/** A promise that resolves after ms, and a way to stop it early (so nothing keeps the process up). */
function timer(ms: number): { done: Promise<void>; clear(): void } {
  let handle: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    handle = setTimeout(resolve, ms);
  });
  return { done, clear: () => clearTimeout(handle) };
}
