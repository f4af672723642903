// Who waits for a job to change (a held GET /v1/jobs/:id?wait_s=N), and the signal that it may have.
// The job book touches a job wherever it applies something to it (a pushed or polled status, an
// end, a cancel, an admission from the queue, a handover), so a waiter re-reads the job the moment
// it changes here instead of on a timer. A touch says only "look again": waking for nothing costs a
// re-read, missing a change would cost the whole wait, so the book touches generously.

export interface NextChange {
  /** Resolves at the next touch of the job after next() was called. */
  readonly changed: Promise<void>;
  /** Stops listening (the wait ended another way); nothing is kept for it. */
  cancel(): void;
}

export class JobChanges {
  private readonly listeners = new Map<string, Set<() => void>>();

  /** Subscribe before reading the job, so that a change between the read and the wait is not missed. */
  next(id: string): NextChange {
    let listener: () => void = () => {};
    const changed = new Promise<void>((resolve) => {
      listener = resolve;
    });
    let set = this.listeners.get(id);
    if (set === undefined) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return {
      changed,
      cancel: () => {
        const current = this.listeners.get(id);
        if (current === undefined) return;
        current.delete(listener);
        if (current.size === 0) this.listeners.delete(id);
      },
    };
  }

  /** Something about the job may have changed: every waiter on it looks again. */
  touch(id: string): void {
    const set = this.listeners.get(id);
    if (set === undefined) return;
    this.listeners.delete(id);
    for (const listener of set) listener();
  }

  /** Jobs someone waits on now (for tests and /metrics-like checks). */
  get watched(): number {
    return this.listeners.size;
  }
}
