// review33: engine.max_output_mb bounds a job's whole output, counted as each partition is kept
// (partition-keep.ts). A kept partition stays in out/, a file of the task's own uid, until the seal, so
// a later partition of the same job can append to it: the kept size no longer counts what is
// committed, and a job commits up to one limit per partition (each file is still held to the limit by
// RLIMIT_FSIZE), with a manifest whose rows and bytes no longer describe the partition it counted.
// The attack is a real job on a real engine; the task writes nothing outside its own out/.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { engineSuite } from '../support/engine-suite.js';

// Partition 0 copies its input. Partition 1 waits (30 s at most) for partition 0's kept file beside
// its own output, appends 0.75 MiB of rows to it, then writes 0.75 MiB of its own: each kept size is
// well under the 1 MiB limit, their sum at keep time too, but 1.5 MiB reach the data root.
const GROWER = `import os, time
def process(i, o, ctx):
    if os.path.basename(i).startswith('part-00000'):
        open(o, 'w').write(open(i).read())
        return
    kept = os.path.join(os.path.dirname(o), 'part-00000.csv')
    for _ in range(600):
        if os.path.exists(kept):
            break
        time.sleep(0.05)
    row = '9,' + 'x' * 1000 + '\\n'
    with open(kept, 'a') as f:
        f.write(row * 768)
    with open(o, 'w') as f:
        f.write('id,word\\n' + row * 768)
`;

const suite = engineSuite({ engine: { slots: 2, max_output_mb: 1 } }, async () => {
  const text = 'id,word\n1,a\n2,b\n';
  expect(await writeDataset(suite.data, 'two', { format: 'csv', columns: ['id', 'word'], owner: 'mallory', labels: [], produced_by: 'test', partitions: [{ text, rows: 2 }, { text, rows: 2 }] })).toBe(true);
}, 60_000);

describe('a partition grown after it was kept', () => {
  it('does not commit more than engine.max_output_mb, nor a partition other than the one counted', async () => {
    const spec: JobSpec = { name: 'grow', input: 'two', output: 'scratch/grown', runtime: 'python', source: GROWER, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };
    const id = await suite.client.submit(spec, { user: 'mallory' });
    const ended = await suite.client.waitFor(id);
    // Before: succeeded, 1.5 MiB committed under a 1 MiB limit, partition 0's manifest rows 2 of 770.
    // A first attempt writes part-00000.csv itself (no rename at keep), and partition 1 may run while
    // partition 0's answer still waits in the worker for company: the append then lands before the
    // keep, which counts it (over the limit), else after it (the commit sees the change).
    expect(ended.state, JSON.stringify(ended)).toBe('failed');
    expect(ended.error).toMatch(/part-00000\.csv changed after it was kept|the output is over the engine's limit of 1 MiB/);
    expect(existsSync(join(suite.data, 'scratch/grown'))).toBe(false);
  }, 120_000);
});
