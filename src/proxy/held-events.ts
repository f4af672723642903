// A submission's audit events held back to travel with the event that acts on them. The audit
// writer commits what reaches it in one turn of the event loop as one group commit (one fsync), so
// the dataset decisions and then job.submit (or quota.reject, or the pending job's events) cost one
// commit instead of three one after another (under heavy load a turn's events go out in several
// messages and, rarely, two commits: each still durable before flush() resolves). Nothing is acted on before flush() resolves: every
// event is still durable before the job is handed over and before the answer, and a path that ends
// without acting (a deny, an error) flushes what it holds before it answers.

export class HeldEvents {
  private held: (() => Promise<void>)[] = [];

  /** Keeps `write` (one event's recording) for the next flush; resolves at once. */
  hold(write: () => Promise<void>): Promise<void> {
    this.held.push(write);
    return Promise.resolve();
  }

  /**
   * Starts every held write and then `also`, all in this turn (so, as a rule, in one group commit); resolves
   * once each is durable and rejects (503 audit_unavailable, from recordOrFail) if any is not.
   */
  flush(...also: (() => Promise<void>)[]): Promise<void> {
    const writes = [...this.held.splice(0), ...also].map((write) => write());
    return Promise.all(writes).then(() => undefined);
  }
}
