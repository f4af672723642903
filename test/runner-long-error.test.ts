// review36: a partition whose error is long. The engine reads a worker's channel a line of at most 8 KiB
// (MAX_LINE_BYTES) at a time and cuts what is longer, so an answer carrying a long error (an exception
// whose message holds a long value, a traceback through a long line of source) could not be read: the
// answer was lost, and the job ran on, waiting for it, to its time limit. The runners now bound the
// error an answer carries (its start and its end, the middle cut): the job fails at once, saying why.
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { engineSuite } from './support/engine-suite.js';

const suite = engineSuite({ engine: { slots: 2 } }, async (data) => {
  const partitions = Array.from({ length: 3 }, () => ({ text: 'id,word\n1,a\n', rows: 1 }));
  expect(await writeDataset(data, 'few', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions })).toBe(true);
}, 60_000);

// 20 000 characters, some of them far from ASCII (each a surrogate pair in JSON's \\u escapes).
const sources = {
  python: "def process(i, o, ctx):\n    raise ValueError('start of it ' + 'x\\U0001F600' * 10000 + ' end of it')\n",
  node: "export function process(i, o, ctx) { throw new Error('start of it ' + 'x\\u{1F600}'.repeat(10000) + ' end of it'); }\n",
};

describe('a partition whose error is long', () => {
  for (const runtime of ['python', 'node'] as const) {
    it(`(${runtime}) fails the job with that error, its start and its end, not at the job's time limit`, async () => {
      const spec: JobSpec = { name: 'long-error', input: 'few', output: `scratch/long-error-${runtime}`, runtime, source: sources[runtime], resources: { cores: 1, memory_mb: 512, time_limit_s: 20 }, max_attempts: 1 };
      const id = await suite.client.submit(spec, { user: 'ana' });
      const ended = await suite.client.waitFor(id, undefined, 60_000);
      expect(ended.state, JSON.stringify(ended)).toBe('failed');
      expect(ended.error, JSON.stringify(ended)).toMatch(/^partition \d+ failed after 1 attempt: .*start of it/s);
      expect(ended.error).toContain('characters cut');
      expect(ended.error).not.toMatch(/time limit/);
    }, 90_000);
  }
});
