// review35: fair share against a worker's queue. Since engine34 a worker holds partitions queued
// behind the one it runs (up to QUEUE_MAX, sized from the partitions' past times, which the job
// controls: quick partitions first, long ones after). A worker over its job's share took no more, but
// ran everything queued before it gave its slot back, so another user's job waited for up to
// QUEUE_MAX of the first user's partitions instead of one. The attacker here queues partitions that
// never end until the test says so, and the other user's job must still get its slot once the
// partitions that were running end.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { engineSuite } from '../support/engine-suite.js';

const PARTITIONS = 8;
const TEXT = 'id,word\n1,a\n2,b\n';

const suite = engineSuite({ engine: { slots: 2 } }, async () => {
  const partitions = Array.from({ length: PARTITIONS }, () => ({ text: TEXT, rows: 2 }));
  expect(await writeDataset(suite.data, 'many', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions })).toBe(true);
}, 60_000);

const work = (id: string) => join(suite.data, '.staging', id, 'work');
const release = (id: string, partitions: number[]) => {
  for (const p of partitions) writeFileSync(join(work(id), `go-${p}`), '');
};
/** The partitions whose task has begun (each gated task says so in its work folder first). */
const begun = (id: string) =>
  readdirSync(work(id))
    .filter((f) => f.startsWith('begun-'))
    .map((f) => Number(f.slice('begun-'.length)))
    .sort((a, b) => a - b);

function spec(name: string, source: string): JobSpec {
  return { name, input: 'many', output: `scratch/${name}`, runtime: 'python', source, resources: { cores: 2, memory_mb: 256, time_limit_s: 120 } };
}

describe("a worker's queue and fair share", () => {
  it("gives the slot back once the partition it was running ends, not after the ones queued behind it", async () => {
    // Each partition runs until the test drops go-<partition> in the job's work folder.
    const gated = `import os, shutil, time
def process(i, o, ctx):
    open(os.path.join(os.getcwd(), 'begun-%d' % ctx.partition), 'w').close()
    while not os.path.exists(os.path.join(os.getcwd(), 'go-%d' % ctx.partition)):
        time.sleep(0.02)
    shutil.copyfile(i, o)
`;
    const alice = await suite.client.submit(spec('alice_hog', gated), { user: 'alice' });
    // Both of Alice's workers run a partition with another queued behind it (attempts count what is handed).
    await suite.client.waitFor(alice, (s) => s.workers === 2 && s.attempts >= 4, 30_000);
    const copy = `import shutil
def process(i, o, ctx):
    shutil.copyfile(i, o)
`;
    const bob = await suite.client.submit(spec('bob_waits', copy), { user: 'bob' });
    await suite.client.waitFor(bob, (s) => s.reason === 'waiting for a free slot', 10_000);
    const running = begun(alice);
    expect(running).toHaveLength(2);
    // The partitions that were running when Bob came end; those queued behind them do not.
    release(alice, running);
    const ended = await suite.client.waitFor(bob, undefined, 30_000);
    expect(ended.state, JSON.stringify(ended)).toBe('succeeded');
    expect((await suite.client.status(alice)).state).toBe('running');
    // What Alice's worker gave back runs later, its attempt not counted, and her job completes whole.
    release(alice, Array.from({ length: PARTITIONS }, (_, p) => p));
    const done = await suite.client.waitFor(alice, undefined, 60_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: 'succeeded', partitions: { total: PARTITIONS, done: PARTITIONS, failed: 0 }, rows_out: 2 * PARTITIONS, attempts: PARTITIONS });
  }, 120_000);
});
