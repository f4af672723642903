// review35: a task printing as fast as it can. Every line a worker prints costs the engine's one
// thread (split, tagged, logged or counted past the log's cap), and the engine read a worker's
// stdout for as long as the pipe had data: libuv reads a pipe up to 32 times in one turn of the loop,
// so one task printing short lines held the engine's thread for most of each turn, and everyone's
// submissions, statuses and answers waited (a health check took 1.6-7 s behind one task at load 10).
// The engine now takes at most OUTPUT_TURN_BYTES of a worker's prints before it lets the loop turn.
// Counted here, in the engine's place: the lines handed to the sink between two turns of the loop.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OUTPUT_TURN_BYTES, runCommand, runnerScript, runtimeArgv, WarmWorker } from '../../src/compute/runners/index.js';
import { until } from '../support/until.js';

const PYTHON = process.env.GATEHOUSE_TEST_PYTHON ?? '/usr/bin/python3';
let dir: string | undefined;
let worker: WarmWorker | undefined;
afterEach(async () => {
  worker?.kill();
  await worker?.exited;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/**
 * Watches the loop's turns (one check phase to the next) until two million lines were handled: the
 * most handled in any one turn, and how many turns there were.
 */
async function mostLinesInOneTurn(lines: () => number): Promise<{ most: number; turns: number }> {
  let most = 0;
  let turns = 0;
  let seen = 0;
  let counting = true;
  const turn = () => {
    most = Math.max(most, lines() - seen);
    seen = lines();
    turns += 1;
    if (counting) setImmediate(turn);
  };
  setImmediate(turn);
  await until(() => lines() > 2_000_000, 60_000, 'two million lines printed');
  counting = false;
  return { most, turns };
}

describe("a task flooding its worker's output", () => {
  it('is read at most about OUTPUT_TURN_BYTES a turn of the loop, whatever it prints', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-output-flood-'));
    const source = join(dir, 'job.py');
    // Two-byte lines (the most lines per byte) on stdout and stderr, until the test says stop.
    writeFileSync(
      source,
      `import os, sys, shutil
def process(i, o, ctx):
    junk = b'x\\n' * 32768
    stop = os.path.join(os.path.dirname(i), 'stop')
    while not os.path.exists(stop):
        os.write(1, junk)
        os.write(2, junk)
    shutil.copyfile(i, o)
`,
    );
    const [file, ...args] = runtimeArgv('python', { runtimeDir: dirname(runnerScript('python')), source, entrypoint: 'process', jobId: 'flood', python: PYTHON, node: process.execPath, memoryMb: 256 });
    let lines = 0;
    worker = WarmWorker.start({ file: file!, args, env: { PATH: '/usr/bin:/bin' }, cwd: dir }, () => {
      lines += 1;
    });
    await worker.ready();
    const input = join(dir, 'in.csv');
    writeFileSync(input, 'a\n1\n');
    const result = worker.run({ partition: 0, attempt: 1, input, output: join(dir, 'out.csv'), format: 'csv' });
    const { most, turns } = await mostLinesInOneTurn(() => lines);
    writeFileSync(join(dir, 'stop'), '');
    expect(await result).toMatchObject({ ok: true });
    // A turn takes what it read before the budget ran out, and at most one more read (64 KiB) per stream.
    expect(most, `${most} lines in one turn of ${turns}`).toBeLessThanOrEqual((OUTPUT_TURN_BYTES + 2 * 65_536) / 2);
  }, 120_000);

  it("is read the same way from a command runtime's process", async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-output-flood-'));
    const stop = join(dir, 'stop');
    const script = `import os\njunk = b'x\\n' * 32768\nwhile not os.path.exists(${JSON.stringify(stop)}):\n    os.write(1, junk)\n    os.write(2, junk)\n`;
    let lines = 0;
    const result = runCommand({ file: PYTHON, args: ['-c', script], env: { PATH: '/usr/bin:/bin' }, cwd: dir }, 0, () => {
      lines += 1;
    });
    const { most, turns } = await mostLinesInOneTurn(() => lines);
    writeFileSync(stop, '');
    expect(await result).toMatchObject({ ok: true });
    expect(most, `${most} lines in one turn of ${turns}`).toBeLessThanOrEqual((OUTPUT_TURN_BYTES + 2 * 65_536) / 2);
  }, 120_000);
});
