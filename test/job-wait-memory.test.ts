// A running gateway holds millions of waits over its life (`--wait`, Job.wait(), the console): each
// must leave nothing behind once answered. Each held wait hung a reaction on the one promise that
// settles at the gateway's stop, keeping its closure until then (flake38 found it reading job-wait.ts).
// Measured as the heap kept after a full collection, over many waits answered by a change.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { JobChanges } from '../src/proxy/job-changes.js';
import type { JobView } from '../src/proxy/job-view.js';
import { JobWaits, seenOf } from '../src/proxy/job-wait.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const view = (state: string): JobView => ({ state, partitions: { total: 1, done: 0, failed: 0, running: 0 } }) as unknown as JobView;
/** A caller that stays: its own promise, as each request's is (one shared would keep every wait's reaction itself). */
const stays = () => new Promise<void>(() => {});

/** One wait held on job `id` and answered by a change to it. */
async function heldAndAnswered(waits: JobWaits, changes: JobChanges, id: string): Promise<void> {
  let state = 'queued';
  const first = seenOf(view(state));
  const answer = waits.hold({ user: 'alice', id, seen: first, waitS: 600, read: async () => view(state), gone: stays() });
  await new Promise((resolve) => setImmediate(resolve)); // held now: it read the job and waits on it
  state = 'running';
  changes.touch(id);
  expect((await answer).state).toBe('running');
}

function heapAfterCollection(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('held waits on jobs', () => {
  it('keep nothing once answered: the heap after 20 000 waits is what it was after the first 1 000', async () => {
    const changes = new JobChanges();
    const waits = new JobWaits(changes, { rereadMs: null });
    for (let i = 0; i < 1_000; i++) await heldAndAnswered(waits, changes, `j${i}`);
    const before = heapAfterCollection();
    for (let i = 0; i < 20_000; i++) await heldAndAnswered(waits, changes, `k${i}`);
    const grown = heapAfterCollection() - before;
    // A closure and its context kept per wait is ~100-200 bytes: 2-4 MB here. Allow for V8's own noise.
    expect(grown).toBeLessThan(1024 * 1024);
    expect(waits.held()).toBe(0);
  });

  it('are still all answered at the gateway’s stop', async () => {
    const changes = new JobChanges();
    const waits = new JobWaits(changes, { rereadMs: null });
    const held = Array.from({ length: 5 }, (_, i) => waits.hold({ user: 'alice', id: `s${i}`, seen: seenOf(view('queued')), waitS: 600, read: async () => view('queued'), gone: stays() }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(waits.held('alice')).toBe(5);
    waits.close();
    for (const answer of await Promise.all(held)) expect(answer.state).toBe('queued');
    expect(waits.held()).toBe(0);
  });
});
