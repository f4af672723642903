// engine34: a worker holds several partitions queued (up to QUEUE_MAX, about 50 ms of work) and
// answers them a few at a time, and a first attempt writes the partition's own name in out/ (no
// keep-rename). Each case is a job written as an attacker would, on a real engine with its sandbox:
// it plants a link or a decoy where another partition's output goes, forges the answer of a partition
// queued behind its own, or kills its worker with partitions answered and unanswered in its queue.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { engineSuite } from '../support/engine-suite.js';

const PARTITIONS = 24;
const TEXT = 'id,word\n1,a\n2,b\n';

const suite = engineSuite({ engine: { slots: 2 } }, async () => {
  const partitions = Array.from({ length: PARTITIONS }, () => ({ text: TEXT, rows: 2 }));
  expect(await writeDataset(suite.data, 'many', { format: 'csv', columns: ['id', 'word'], owner: 'mallory', labels: [], produced_by: 'test', partitions })).toBe(true);
}, 60_000);

/** One worker (cores 1): the partitions run in order, 0 first, and queue behind each other. */
function spec(name: string, source: string, maxAttempts = 1): JobSpec {
  return { name, input: 'many', output: `scratch/${name}`, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: maxAttempts };
}

function manifest(name: string): { partitions: { file: string; rows: number; bytes: number }[] } {
  return JSON.parse(readFileSync(join(suite.data, 'scratch', name, '_dataset.json'), 'utf8'));
}

describe('a first attempt writing the partition its own name', () => {
  it('refuses a symbolic link planted where a later partition writes: the job fails, nothing is committed', async () => {
    // Partition 0 plants part-00001.csv -> decoy.csv; partition 1's ordinary write follows it.
    const source = `import os, shutil
def process(i, o, ctx):
    shutil.copyfile(i, o)
    if ctx.partition == 0:
        os.symlink('decoy.csv', os.path.join(os.path.dirname(o), 'part-00001.csv'))
`;
    const id = await suite.client.submit(spec('linked', source), { user: 'mallory' });
    const ended = await suite.client.waitFor(id);
    expect(ended.state, JSON.stringify(ended)).toBe('failed');
    expect(ended.error).toContain("partition 1: the task's output is not a plain file");
    expect(() => readFileSync(join(suite.data, 'scratch', 'linked', '_dataset.json'))).toThrow(/ENOENT/);
  }, 120_000);

  it('keeps what the partition wrote, not a decoy planted under its name before it ran', async () => {
    const source = `import os, shutil
def process(i, o, ctx):
    shutil.copyfile(i, o)
    if ctx.partition == 0:
        with open(os.path.join(os.path.dirname(o), 'part-00001.csv'), 'w') as f:
            f.write('id,word\\n' + '9,decoy\\n' * 1000)
`;
    const id = await suite.client.submit(spec('decoyed', source), { user: 'mallory' });
    const ended = await suite.client.waitFor(id);
    expect(ended.state, JSON.stringify(ended)).toBe('succeeded');
    expect(manifest('decoyed').partitions[1]).toMatchObject({ rows: 2, bytes: TEXT.length });
    expect(readFileSync(join(suite.data, 'scratch', 'decoyed', 'part-00001.csv'), 'utf8')).toBe(TEXT);
  }, 120_000);
});

describe('partitions queued in one worker, answered together', () => {
  it("ignores an answer a task forges for the partition queued behind it: that partition's own answer counts", async () => {
    // Partition 0 writes, on the worker's channel, that partition 1 is done with 999 rows.
    const source = `import os, shutil
def process(i, o, ctx):
    if ctx.partition == 0:
        os.write(3, b'{"partition": 1, "ok": true, "rows_out": 999, "bytes_out": 1, "seconds": 0}\\n')
    shutil.copyfile(i, o)
`;
    const id = await suite.client.submit(spec('forged', source), { user: 'mallory' });
    const ended = await suite.client.waitFor(id);
    expect(ended.state, JSON.stringify(ended)).toBe('succeeded');
    expect(ended.rows_out).toBe(2 * PARTITIONS);
    expect(manifest('forged').partitions[1]).toMatchObject({ rows: 2, bytes: TEXT.length });
  }, 120_000);

  it('blames the partition that killed its worker mid-queue, and runs the ones it had finished unanswered again uncounted', async () => {
    // Partition 12's first attempt ends the worker's process at once, with the partitions before it
    // in the queue done but (answers going out together) possibly not yet answered.
    const source = `import os, shutil
def process(i, o, ctx):
    if ctx.partition == 12 and ctx.attempt == 1:
        os._exit(3)
    shutil.copyfile(i, o)
`;
    const id = await suite.client.submit(spec('killed', source, 2), { user: 'mallory' });
    const ended = await suite.client.waitFor(id);
    expect(ended.state, JSON.stringify(ended)).toBe('succeeded');
    // Partition 12 twice, every other partition once: none that finished before it is charged.
    expect(ended.attempts).toBe(PARTITIONS + 1);
    const log = await suite.client.logs(id);
    expect(log).toContain('partition 12 attempt 1 failed; retrying');
    expect(log).not.toMatch(/partition (?!12 )\d+ attempt 1 failed/);
    expect(manifest('killed').partitions.map((p) => p.rows)).toEqual(Array.from({ length: PARTITIONS }, () => 2));
  }, 120_000);
});
