// File-by-file work done with synchronous calls, TURN_FILES files per turn of the event loop. Each
// file is a few syscalls of a few microseconds; through libuv's thread pool each one cost the engine
// tens of microseconds of CPU (a promise, a hand-off to a pool thread, a wake-up of the loop and back)
// on the cores its workers compute on, so a 256-partition job spent about 25 ms of the engine's thread
// on each of the inputs' linking, the seal and the area's removal. A turn blocks the loop for well
// under a millisecond; then it serves what is waiting (a worker's reply, a request) before the next.
// Apart because the job area and the tree removal (safe-tree.ts) both pace their work by it.

const TURN_FILES = 32;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** `work` on each item, synchronously, yielding to the event loop every TURN_FILES items. */
export async function inTurns<T>(items: readonly T[], work: (item: T) => void): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && i % TURN_FILES === 0) await nextTurn();
    work(items[i]!);
  }
}

/** The same pacing for a walk that is not one list (a tree): tick() before each file. */
export class Turns {
  private files = 0;

  async tick(): Promise<void> {
    if (++this.files % TURN_FILES === 0) await nextTurn();
  }
}
