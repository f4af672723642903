// The per-partition task entry point a Slurm array task runs (`node bin/gatehouse-task.js --job <dir>
// --partition N`), run directly here, without Slurm: it reads partition N of the input from the data
// root through the shared catalog, runs the engine's own runner on it (warm python/node worker, or the
// command), and leaves part-NNNNN.<format> in the job folder's out/ with its counts in done/. Its output
// must be byte for byte what the bundled engine (a real engine process) writes for the same partition.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { engineSuite } from './support/engine-suite.js';
import { ROOT } from './support/gatehouse.js';

const resources = { cores: 1, memory_mb: 512, time_limit_s: 120 };
const NORMALIZER = readFileSync(join(ROOT, 'examples', 'normalize_words.py'), 'utf8');
const NODE_SOURCE = `
  import { readFileSync, writeFileSync } from 'node:fs';
  export async function process(input, output, ctx) {
    const lines = readFileSync(input, 'utf8').trimEnd().split('\\n');
    writeFileSync(output, lines.map((l, i) => (i === 0 ? l + ',partition' : l + ',' + ctx.partition)).join('\\n') + '\\n');
  }`;

let home: string;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function task(args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'gatehouse-task.js'), ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

/** A job folder as the Slurm backend writes it: spec.json (id, spec, granted, the data root). */
function jobDir(id: string, spec: JobSpec): string {
  const dir = mkdtempSync(join(home, `${id}-`));
  writeFileSync(join(dir, 'spec.json'), JSON.stringify({ id, spec, granted: spec.resources, data_root: suite.data }));
  return dir;
}

/** The engine's output for `spec` run on partition `p` alone: its one partition file's text and its rows. */
async function engineOutput(spec: JobSpec, p: number): Promise<{ text: string; rows: number }> {
  const id = await suite.client.submit({ ...spec, partitions: [p] });
  const status = await suite.client.waitFor(id);
  expect(status.state, status.error ?? '').toBe('succeeded');
  return { text: readFileSync(join(suite.data, spec.output, 'part-00000.csv'), 'utf8'), rows: status.rows_out };
}

const suite = engineSuite({ engine: { slots: 2 } }, async (data) => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-partition-task-'));
  const part = (p: number) => ({ text: `id,word\n${[0, 1, 2, 3].map((i) => `${p * 4 + i},  Wörd${p}-${i}!`).join('\n')}\n`, rows: 4 });
  await writeDataset(data, 'lines', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [part(0), part(1), part(2)] });
});

afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('gatehouse-task: one partition, as a Slurm array task runs it', () => {
  const cases: [string, JobSpec][] = [
    ['python', { name: 'norm', input: 'lines', output: 'out_py', runtime: 'python', source: NORMALIZER, resources }],
    ['node', { name: 'node', input: 'lines', output: 'out_node', runtime: 'node', source: NODE_SOURCE, resources }],
    ['command', { name: 'cmd', input: 'lines', output: 'out_cmd', runtime: 'command', argv: ['/bin/sh', '-c', 'tr a-z A-Z < "$0" > "$1"; echo "did $2"', '{input}', '{output}', '{partition}'], resources }],
  ];
  for (const [runtime, spec] of cases) {
    it(`writes what the bundled engine writes for the same partition (${runtime})`, async () => {
      const expected = await engineOutput(spec, 2);
      const dir = jobDir(`t-${runtime}`, spec);
      const ran = await task(['--job', dir, '--partition', '2']);
      expect(ran.code, ran.stderr).toBe(0);
      expect(readFileSync(join(dir, 'out', 'part-00002.csv'), 'utf8')).toBe(expected.text);
      const done = JSON.parse(readFileSync(join(dir, 'done', 'part-00002.json'), 'utf8')) as { partition: number; rows: number; bytes: number };
      expect(done).toMatchObject({ partition: 2, rows: expected.rows, bytes: Buffer.byteLength(expected.text) });
      if (runtime === 'command') expect(ran.stdout).toContain('did 2');
      // Run again (Slurm may requeue a task): the same output, nothing else left behind.
      expect((await task(['--job', dir, '--partition', '2'])).code).toBe(0);
      expect(readFileSync(join(dir, 'out', 'part-00002.csv'), 'utf8')).toBe(expected.text);
      expect(existsSync(join(dir, 'out', 'part-00000.csv'))).toBe(false);
    }, 120_000);
  }

  it('fails with exit 1 and the reason when the code fails, leaving no output for that partition', async () => {
    const dir = jobDir('t-fail', { name: 'boom', input: 'lines', output: 'out_fail', runtime: 'python', source: 'def process(input, output, ctx):\n    raise ValueError("bad row 7")\n', resources });
    const ran = await task(['--job', dir, '--partition', '1']);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('bad row 7');
    expect(existsSync(join(dir, 'out', 'part-00001.csv'))).toBe(false);
    expect(existsSync(join(dir, 'done', 'part-00001.json'))).toBe(false);
  });

  it("labels the job's lines as the bundled engine's log does: stderr marked, ctx.log by its level, stdout as it is", async () => {
    const source = 'import sys\ndef process(input, output, ctx):\n    print("plain out")\n    print("plain err", file=sys.stderr)\n    ctx.log.info("progress note")\n    open(output, "w").write(open(input).read())\n';
    const dir = jobDir('t-labels', { name: 'labels', input: 'lines', output: 'out_labels', runtime: 'python', source, resources });
    const ran = await task(['--job', dir, '--partition', '0']);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain('plain out\n');
    expect(ran.stdout).not.toContain('stderr:');
    expect(ran.stderr).toContain('stderr: plain err\n');
    expect(ran.stderr).toMatch(/^INFO .*progress note$/m);
    expect(ran.stderr).not.toMatch(/stderr: INFO/);
  });

  it('refuses a partition the input does not have, and bad arguments, with exit 2 naming them', async () => {
    const dir = jobDir('t-args', cases[0]![1]);
    const missing = await task(['--job', dir, '--partition', '3']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/partition 3: lines has partitions 0 to 2/);
    const notNumber = await task(['--job', dir, '--partition', 'x']);
    expect(notNumber.code).toBe(2);
    expect(notNumber.stderr).toMatch(/--partition/);
    const noJob = await task(['--partition', '1']);
    expect(noJob.code).toBe(2);
    expect(noJob.stderr).toMatch(/--job/);
    const noSpec = await task(['--job', home, '--partition', '1']);
    expect(noSpec.code).toBe(2);
    expect(noSpec.stderr).toMatch(/spec\.json/);
  });
});
