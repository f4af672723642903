// review35: a task flooding its worker's channel. The job's code runs in the runner's own process, so
// it can write on fd 3, where the engine reads the runner's answers: each line was parsed (an
// unreadable one logged) and, when it was not the answer awaited, ignored. A task writing junk lines
// there as fast as it could kept the engine's one thread busy for as long as it went on: everyone's
// submissions, statuses and answers waited (a health check took 8 s behind one task at load 11).
// The runners never write anything the engine did not ask for: past a few such messages the worker
// is stopped and its partition fails, saying why.
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { engineSuite } from '../support/engine-suite.js';

const TEXT = 'id,word\n1,a\n2,b\n';

const suite = engineSuite({ engine: { slots: 2 } }, async (data) => {
  const partitions = Array.from({ length: 4 }, () => ({ text: TEXT, rows: 2 }));
  expect(await writeDataset(data, 'few', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions })).toBe(true);
}, 60_000);

function spec(name: string, source: string, maxAttempts: number): JobSpec {
  return { name, input: 'few', output: `scratch/${name}`, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, max_attempts: maxAttempts };
}

describe("a task writing on its worker's channel", () => {
  it('is stopped once it writes more than a few messages the engine did not ask for: the job fails, saying why', async () => {
    // Junk and well-formed but unasked-for lines, for ever (the job's time limit would end it in 60 s).
    const source = `import os
def process(i, o, ctx):
    junk = b'x\\n{}\\n{"partition": 99, "ok": true}\\n{"ready": true, "marks": false}\\n' * 4096
    while True:
        try:
            os.write(3, junk)
        except BlockingIOError:
            pass
`;
    const id = await suite.client.submit(spec('flooder', source, 2), { user: 'mallory' });
    const ended = await suite.client.waitFor(id, undefined, 60_000);
    expect(ended.state, JSON.stringify(ended)).toBe('failed');
    expect(ended.error).toContain('did the job write to file descriptor 3?');
    // Each attempt's worker stopped at once: the partition's attempts ran out, not its time.
    expect(ended.error).toMatch(/^partition \d+ failed after 2 attempts: worker was stopped: it wrote \d+ messages on its channel that the engine did not ask for/);
  }, 120_000);

  it('is stopped too when what it writes never ends a line (review36): no answer is that long', async () => {
    // Bytes without a newline: never a message to count, but read and cut for ever, a core of the engine's thread.
    const source = `import os
def process(i, o, ctx):
    junk = b'x' * 65536
    while True:
        try:
            os.write(3, junk)
        except BlockingIOError:
            pass
`;
    const id = await suite.client.submit(spec('endless_line', source, 2), { user: 'mallory' });
    const ended = await suite.client.waitFor(id, undefined, 60_000);
    expect(ended.state, JSON.stringify(ended)).toBe('failed');
    expect(ended.error).toMatch(/^partition \d+ failed after 2 attempts: worker was stopped: .*did the job write to file descriptor 3\?/);
  }, 120_000);

  it("still ignores a single forged answer: the partition's own answer counts", async () => {
    const source = `import os, shutil
def process(i, o, ctx):
    if ctx.partition == 0:
        os.write(3, b'{"partition": 1, "ok": true, "rows_out": 999, "bytes_out": 1, "seconds": 0}\\n')
    shutil.copyfile(i, o)
`;
    const id = await suite.client.submit(spec('one_forged', source, 1), { user: 'mallory' });
    const ended = await suite.client.waitFor(id, undefined, 60_000);
    expect(ended, JSON.stringify(ended)).toMatchObject({ state: 'succeeded', rows_out: 8 });
  }, 120_000);
});
