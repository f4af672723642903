// The engine's task runners, run for real: warm Python and Node workers speaking the fd 3
// protocol, one-process-per-partition commands, row counting, and the examples/ jobs.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CompiledPythonRunner,
  compilePythonRunner,
  countRows,
  expandArgv,
  type LineSink,
  QUEUE_MAX,
  runCommand,
  runnerScript,
  runtimeArgv,
  spareRuntimeArgv,
  WarmWorker,
  type WorkerLaunch,
  WorkerStartError,
} from '../src/compute/runners/index.js';
import { until } from './support/until.js';

// The system interpreter, not a developer's pyenv shim: the engine's tasks see a plain PATH.
const PYTHON = process.env.GATEHOUSE_TEST_PYTHON ?? '/usr/bin/python3';
const ENV = { PATH: '/usr/bin:/bin' };
const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));

const dirs: string[] = [];
const workers: WarmWorker[] = [];
afterEach(async () => {
  for (const worker of workers.splice(0)) {
    worker.kill();
    await worker.exited;
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-runners-'));
  dirs.push(dir);
  return dir;
}

interface Line {
  partition: number | null;
  stream: 'stdout' | 'stderr';
  line: string;
}

function collector(): { lines: Line[]; sink: LineSink } {
  const lines: Line[] = [];
  return { lines, sink: (partition, stream, line) => lines.push({ partition, stream, line }) };
}

function launchFor(runtime: 'python' | 'node', dir: string, sourceFile: string, env: Record<string, string> = {}, memoryMb = 256): WorkerLaunch {
  const [file, ...args] = runtimeArgv(runtime, {
    runtimeDir: dirname(runnerScript(runtime)),
    source: sourceFile,
    entrypoint: 'process',
    jobId: 'job-test',
    python: PYTHON,
    node: process.execPath,
    memoryMb,
  });
  return { file: file!, args, env: { ...ENV, ...env }, cwd: dir };
}

/** Starts a warm worker over `source` (written to the job folder) and waits until it is ready. */
async function warm(runtime: 'python' | 'node', source: string, options: { env?: Record<string, string>; sink?: LineSink; memoryMb?: number } = {}) {
  const dir = folder();
  const sourceFile = join(dir, runtime === 'python' ? 'job.py' : 'job.mjs');
  writeFileSync(sourceFile, source);
  const worker = WarmWorker.start(launchFor(runtime, dir, sourceFile, options.env, options.memoryMb), options.sink ?? (() => {}));
  workers.push(worker);
  return { worker, dir };
}

function task(dir: string, partition: number, input: string, format: 'csv' | 'jsonl' = 'csv') {
  return { partition, attempt: 1, input, output: join(dir, `out-${partition}.${format}.a1`), format } as const;
}

function write(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Copies input to output: lets a test choose the output's exact bytes. */
const COPY_PY = `import shutil\ndef process(input_path, output_path, ctx):\n    shutil.copyfile(input_path, output_path)\n`;

/** Files whose row counts every counter (both runners and rows.ts) must agree on. */
const ROW_CASES: { name: string; format: 'csv' | 'jsonl'; text: string; rows: number }[] = [
  { name: 'csv, final newline', format: 'csv', text: 'a,b\n1,2\n3,4\n5,6\n', rows: 3 },
  { name: 'csv, no final newline', format: 'csv', text: 'a,b\n1,2\n3,4\n5,6', rows: 3 },
  { name: 'csv, CRLF', format: 'csv', text: 'a,b\r\n1,2\r\n3,4\r\n', rows: 2 },
  { name: 'csv, header only', format: 'csv', text: 'a,b\n', rows: 0 },
  { name: 'csv, header without newline', format: 'csv', text: 'a,b', rows: 0 },
  { name: 'csv, empty', format: 'csv', text: '', rows: 0 },
  { name: 'jsonl, final newline', format: 'jsonl', text: '{"a":1}\n{"a":2}\n', rows: 2 },
  { name: 'jsonl, no final newline', format: 'jsonl', text: '{"a":1}\n{"a":2}\n{"a":3}', rows: 3 },
  { name: 'jsonl, blank lines', format: 'jsonl', text: '\n{"a":1}\n\n\r\n{"a":2}\r\n\n', rows: 2 },
  { name: 'jsonl, empty', format: 'jsonl', text: '', rows: 0 },
];

/** A file over 1 MiB whose blank lines and line ends fall on and around the counters' chunk borders. */
function bigJsonl(): { text: string; rows: number } {
  const parts: string[] = [];
  let rows = 0;
  let size = 0;
  for (let i = 0; size < 2.5 * 1024 * 1024; i++) {
    const piece = i % 7 === 0 ? '\n' : i % 11 === 0 ? '\r\n' : `{"i":${i},"pad":"${'x'.repeat(i % 97)}"}\n`;
    if (piece.length > 2) rows++;
    parts.push(piece);
    size += piece.length;
  }
  return { text: parts.join(''), rows };
}

describe('python warm worker', () => {
  it('imports the source once and runs many partitions on the same process', async () => {
    const { worker, dir } = await warm(
      'python',
      `import os\nwith open(${JSON.stringify('imports.txt')}, 'a') as f:\n    f.write('imported %d\\n' % os.getpid())\n` +
        `def process(input_path, output_path, ctx):\n` +
        `    with open(input_path) as src, open(output_path, 'w') as dst:\n` +
        `        dst.write(src.read().upper())\n`,
    );
    await worker.ready();
    for (const partition of [0, 1, 2, 3]) {
      const input = write(dir, `part-${partition}.csv`, `word\n${'x\n'.repeat(partition + 1)}`);
      const result = await worker.run(task(dir, partition, input));
      expect(result).toMatchObject({ ok: true, rows_out: partition + 1, bytes_out: 5 + 2 * (partition + 1) });
      expect(readFileSync(join(dir, `out-${partition}.csv.a1`), 'utf8')).toBe(`WORD\n${'X\n'.repeat(partition + 1)}`);
    }
    expect(readFileSync(join(dir, 'imports.txt'), 'utf8')).toBe(`imported ${worker.pid}\n`);
    await worker.stop();
    expect(await worker.exited).toEqual({ code: 0, signal: null });
  });

  it('counts the rows of CSV and JSON Lines outputs, with or without a final newline', async () => {
    const { worker, dir } = await warm('python', COPY_PY);
    await worker.ready();
    let partition = 0;
    for (const c of [...ROW_CASES, { name: 'jsonl over a chunk', format: 'jsonl' as const, ...bigJsonl() }]) {
      const input = write(dir, `in-${partition}.${c.format}`, c.text);
      const result = await worker.run(task(dir, partition++, input, c.format));
      expect(result, c.name).toEqual({ ok: true, rows_out: c.rows, bytes_out: Buffer.byteLength(c.text), seconds: expect.any(Number) });
    }
  });

  it('replies an exception with its traceback, and the same worker serves the next partition', async () => {
    const { worker, dir } = await warm(
      'python',
      `import shutil\n` +
        `def check(partition):\n    if partition == 1:\n        raise ValueError('bad partition %d' % partition)\n` +
        `def process(input_path, output_path, ctx):\n    check(ctx.partition)\n    shutil.copyfile(input_path, output_path)\n`,
    );
    const input = write(dir, 'in.csv', 'a\n1\n');
    expect(await worker.run(task(dir, 0, input))).toMatchObject({ ok: true, rows_out: 1 });
    const failed = await worker.run(task(dir, 1, input));
    expect(failed.ok).toBe(false);
    if (failed.ok) return;
    expect(failed.error.split('\n')[0]).toBe('ValueError: bad partition 1');
    expect(failed.error).toContain('Traceback (most recent call last)');
    expect(failed.error).toMatch(/job\.py", line 4, in check/);
    expect(failed.error).not.toContain('python_runner.py');
    expect(failed).toMatchObject({ oom: false, lost_worker: false });
    expect(await worker.run(task(dir, 2, input))).toMatchObject({ ok: true, rows_out: 1 });
  });

  it('says so when process() wrote nothing', async () => {
    const { worker, dir } = await warm('python', 'def process(input_path, output_path, ctx):\n    pass\n');
    const t = task(dir, 0, write(dir, 'in.csv', 'a\n'));
    expect(await worker.run(t)).toEqual({ ok: false, error: `process() wrote nothing to ${t.output}`, oom: false, lost_worker: false });
  });

  it('refuses a source with a syntax error: ready() rejects with the fatal message', async () => {
    const { worker } = await warm('python', 'def process(input_path, output_path, ctx)\n    pass\n');
    const error = await worker.ready().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect((error as Error).message).toMatch(/^SyntaxError: /);
    expect((error as Error).message).toContain('job.py", line 1');
    expect(await worker.exited).toEqual({ code: 1, signal: null });
  });

  it('refuses a source whose import fails or that has no such entrypoint', async () => {
    const failing = await warm('python', 'import no_such_module_here\n');
    await expect(failing.worker.ready()).rejects.toThrow(/^ModuleNotFoundError: No module named 'no_such_module_here'/);
    const missing = await warm('python', 'def main(a, b, c):\n    pass\nprocess = 3\n');
    await expect(missing.worker.ready()).rejects.toThrow(new WorkerStartError("'process' in the source is a int, not a function"));
  });

  it('rejects ready() with the reason when the interpreter cannot start at all', async () => {
    const dir = folder();
    const worker = WarmWorker.start({ file: join(dir, 'no-python'), args: [], env: ENV, cwd: dir }, () => {});
    workers.push(worker);
    await expect(worker.ready()).rejects.toThrow(/^could not start the worker \(spawn .*no-python ENOENT\)$/);
    expect(await worker.exited).toEqual({ code: null, signal: null });
    await expect(worker.run(task(dir, 0, 'x'))).rejects.toThrow(/could not start/);
  });

  it('marks a MemoryError as out of memory and keeps serving', async () => {
    const { worker, dir } = await warm(
      'python',
      `import shutil\ndef process(input_path, output_path, ctx):\n` +
        `    if ctx.partition == 0:\n        bytearray(1 << 60)\n    shutil.copyfile(input_path, output_path)\n`,
    );
    const input = write(dir, 'in.csv', 'a\n1\n');
    const result = await worker.run(task(dir, 0, input));
    expect(result).toMatchObject({ ok: false, oom: true, lost_worker: false });
    expect(result.ok === false && result.error).toMatch(/^MemoryError/);
    expect(await worker.run(task(dir, 1, input))).toMatchObject({ ok: true });
  });

  it('reports a worker killed mid-task as lost, with the signal and the stderr tail', async () => {
    const { worker, dir } = await warm(
      'python',
      `import os, sys\ndef process(input_path, output_path, ctx):\n` +
        `    sys.stderr.write('about to die\\n')\n    os.kill(os.getpid(), 9)\n`,
    );
    const result = await worker.run(task(dir, 5, write(dir, 'in.csv', 'a\n')));
    expect(result).toMatchObject({ ok: false, lost_worker: true, oom: false });
    expect(result.ok === false && result.error).toBe('worker exited with signal SIGKILL while running partition 5\nabout to die');
    expect(await worker.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // A dead worker runs nothing more, and says why.
    expect(await worker.run(task(dir, 6, 'x'))).toMatchObject({ ok: false, lost_worker: true });
  });

  it('tags stdout and stderr lines with the partition that printed them', async () => {
    const { lines, sink } = collector();
    const { worker, dir } = await warm(
      'python',
      `import shutil, sys\nprint('loading')\n` +
        `def process(input_path, output_path, ctx):\n` +
        `    print('hello from', ctx.partition, ctx.job_id, ctx.input_format, ctx.attempt)\n` +
        `    ctx.log.info('logged %s', ctx.partition)\n` +
        `    ctx.log.warning('careful')\n` +
        `    sys.stdout.write('no newline at the end')\n` +
        `    shutil.copyfile(input_path, output_path)\n`,
      { sink, env: { GATEHOUSE_PDEATHSIG: '1' } },
    );
    await worker.ready();
    const input = write(dir, 'in.jsonl', '{}\n');
    await worker.run(task(dir, 7, input, 'jsonl'));
    await worker.run(task(dir, 8, input, 'jsonl'));
    await worker.stop();
    // stdout and stderr are separate pipes: only each stream's own order is kept.
    expect([...lines].sort(byPartitionAndStream)).toEqual(([
      { partition: null, stream: 'stdout', line: 'loading' },
      { partition: 7, stream: 'stdout', line: 'hello from 7 job-test jsonl 1' },
      { partition: 7, stream: 'stderr', line: 'INFO logged 7' },
      { partition: 7, stream: 'stderr', line: 'WARNING careful' },
      { partition: 7, stream: 'stdout', line: 'no newline at the end' },
      { partition: 8, stream: 'stdout', line: 'hello from 8 job-test jsonl 1' },
      { partition: 8, stream: 'stderr', line: 'INFO logged 8' },
      { partition: 8, stream: 'stderr', line: 'WARNING careful' },
      { partition: 8, stream: 'stdout', line: 'no newline at the end' },
    ] satisfies Line[]).sort(byPartitionAndStream));
  });

  it('tags each line with its partition when the next partitions are queued behind the running one', async () => {
    const { lines, sink } = collector();
    // Partition 7 ends on a print without a newline and partition 8 prints at once: with both
    // handed over together nothing waits between them, and only the runner's mark tells them apart
    // (empty lines are not logged, with or without the mark's own newline).
    const { worker, dir } = await warm(
      'python',
      `import shutil, sys\n` +
        `def process(input_path, output_path, ctx):\n` +
        `    print('start', ctx.partition)\n` +
        `    print()\n` +
        `    ctx.log.info('logged %s', ctx.partition)\n` +
        `    for i in range(200):\n` +
        `        print('line', i, 'of', ctx.partition)\n` +
        `    sys.stdout.write('no newline at the end of %s' % ctx.partition)\n` +
        `    shutil.copyfile(input_path, output_path)\n`,
      { sink },
    );
    await worker.ready();
    expect(worker.depth).toBe(QUEUE_MAX);
    const input = write(dir, 'in.jsonl', '{}\n');
    const queued = Array.from({ length: QUEUE_MAX }, (_, k) => 7 + k);
    const all = Promise.all(queued.map((p) => worker.run(task(dir, p, input, 'jsonl'))));
    // No more: a worker holds the running partition and QUEUE_MAX - 1 behind it.
    await expect(worker.run(task(dir, 99, input, 'jsonl'))).rejects.toThrow(new RegExp(`already has ${QUEUE_MAX} partitions`));
    expect(await all).toMatchObject(queued.map(() => ({ ok: true, rows_out: 1 })));
    await worker.stop();
    const expected = (p: number): Line[] => [
      { partition: p, stream: 'stdout', line: `start ${p}` },
      ...Array.from({ length: 200 }, (_, i): Line => ({ partition: p, stream: 'stdout', line: `line ${i} of ${p}` })),
      { partition: p, stream: 'stdout', line: `no newline at the end of ${p}` },
      { partition: p, stream: 'stderr', line: `INFO logged ${p}` },
    ];
    expect([...lines].sort(byPartitionAndStream)).toEqual(queued.flatMap(expected).sort(byPartitionAndStream));
    expect(lines.some((l) => l.line.includes('gatehouse-end-of-task'))).toBe(false);
  });

  it('holds nothing back: a partition that prints more than its pipe holds, after silent ones, ends with every line tagged', async () => {
    // Silent partitions: the engine stops reading stdout and stderr between answers (their marks
    // wait in the kernel). Then partition 9 prints about 1 MB on each, more than a pipe holds: it
    // blocks until the engine reads, which it must do without an answer from this worker first.
    const { lines, sink } = collector();
    const { worker, dir } = await warm(
      'python',
      `import shutil, sys\ndef process(i, o, ctx):\n    if ctx.partition == 9:\n        for k in range(20000):\n            print('line %d %s' % (k, 'x' * 40))\n            sys.stderr.write('err %d %s\\n' % (k, 'y' * 40))\n    shutil.copyfile(i, o)\n`,
      { sink },
    );
    await worker.ready();
    const input = write(dir, 'in.jsonl', '{}\n');
    const results: Promise<unknown>[] = [];
    for (let p = 0; p < 14; p++) {
      results.push(worker.run(task(dir, p, input, 'jsonl')));
      // Keep a few queued, as the engine does.
      if (results.length >= 4) await results[results.length - 4];
    }
    expect(await Promise.all(results)).toMatchObject(Array.from({ length: 14 }, () => ({ ok: true })));
    const out = lines.filter((l) => l.stream === 'stdout');
    expect(out).toHaveLength(20000);
    expect(lines.filter((l) => l.stream === 'stderr')).toHaveLength(20000);
    expect(lines.every((l) => l.partition === 9)).toBe(true);
    expect(out[19999]).toEqual({ partition: 9, stream: 'stdout', line: `line 19999 ${'x'.repeat(40)}` });
  });

  it('answers queued partitions together, and on dying says which ran to their end unanswered and which was running', async () => {
    // Partitions 0-4 are quick; 5 ends the process at once. Answers wait for company while more is
    // queued, so 0-4 may be answered or not when it dies: each is either done or unanswered (its
    // marks came: not its failure), never lost; 5 is the one lost while running; 6 and 7 never started.
    const { worker, dir } = await warm('python', `import os, shutil\ndef process(i, o, ctx):\n    if ctx.partition == 5:\n        os._exit(3)\n    shutil.copyfile(i, o)\n`);
    await worker.ready();
    const input = write(dir, 'in.csv', 'a\n1\n');
    const results = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((p) => worker.run(task(dir, p, input))));
    for (const r of results.slice(0, 5)) {
      if (r.ok) expect(r).toMatchObject({ rows_out: 1 });
      else expect(r).toMatchObject({ lost_worker: true, unanswered: true, oom: false });
    }
    expect(results[5]).toMatchObject({ ok: false, lost_worker: true });
    expect(results[5]).not.toHaveProperty('unanswered');
    expect((results[5] as { error: string }).error).toMatch(/^worker exited with exit code 3 while running partition 5/);
    for (const r of results.slice(6)) expect(r).toMatchObject({ ok: false, lost_worker: true, error: expect.stringMatching(/before partition [67] started/) });
  });

  it('finish(): answers every partition it was sent, then exits 0 by itself; nothing runs after it', async () => {
    const { worker, dir } = await warm('python', `import shutil\ndef process(i, o, ctx):\n    shutil.copyfile(i, o)\n`);
    await worker.ready();
    const input = write(dir, 'in.csv', 'a\n1\n');
    // Sent in the same write as the two tasks: the runner reads its channel in order.
    const results = Promise.all([0, 1].map((p) => worker.run(task(dir, p, input))));
    worker.finish();
    for (const r of await results) expect(r).toMatchObject({ ok: true, rows_out: 1 });
    // Exits without stop(): no exit message from the engine after the answers.
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    await expect(worker.run(task(dir, 2, input))).rejects.toThrow(/told to finish/);
  });

  it('answers at once while partitions take long, never holding an answer behind the next partition', async () => {
    // Each partition waits for go-<partition> beside its input, polling every 50 ms. Partition 0 is
    // released once it has started (it says so), and sleeps 50 ms first, so it is long (over the 5 ms
    // under which answers may wait for company) even when go-0 is there at its first look (on a
    // loaded machine it was: answers then waited, and the test for ever). Partition 1 is released from
    // the start and ends at once; partition 2 waits until the test has both answers. Had partition
    // 1's answer waited for company behind partition 2, this test would wait for ever.
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const sink: LineSink = (_p, _s, line) => line === 'started 0' && started();
    const { worker, dir } = await warm(
      'python',
      `import os, shutil, time\n` +
        `def process(i, o, ctx):\n` +
        `    print('started', ctx.partition)\n` +
        `    if ctx.partition == 0:\n` +
        `        time.sleep(0.05)\n` +
        `    while not os.path.exists(os.path.join(os.path.dirname(i), 'go-%d' % ctx.partition)):\n` +
        `        time.sleep(0.05)\n` +
        `    shutil.copyfile(i, o)\n`,
      { sink },
    );
    await worker.ready();
    const input = write(dir, 'in.csv', 'a\n1\n');
    write(dir, 'go-1', '');
    const results = [0, 1, 2].map((p) => worker.run(task(dir, p, input)));
    await running;
    write(dir, 'go-0', '');
    expect(await Promise.all(results.slice(0, 2))).toMatchObject([{ ok: true, rows_out: 1 }, { ok: true, rows_out: 1 }]);
    write(dir, 'go-2', '');
    expect(await results[2]).toMatchObject({ ok: true, rows_out: 1 });
  });

  it('stop() kills a worker that does not exit within 2 s', async () => {
    // Stopped only once the partition runs (it says so): a worker asked to exit before its run
    // arrived would exit 0 at once, which a loaded machine made happen after a fixed 100 ms wait.
    let started!: () => void;
    const running_ = new Promise<void>((resolve) => (started = resolve));
    const sink: LineSink = (_p, _s, line) => line === 'started' && started();
    const { worker, dir } = await warm('python', 'import time\ndef process(i, o, ctx):\n    print("started")\n    time.sleep(30)\n', { sink });
    const running = worker.run(task(dir, 0, write(dir, 'in.csv', 'a\n')));
    await running_;
    await worker.stop();
    expect(await worker.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await running).toMatchObject({ ok: false, lost_worker: true });
  });
});

/** Running, as opposed to gone or a zombie waiting for a reaper that may be slow (or absent in a container). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Orders lines by partition then stream, keeping each stream's own order: pipes are read independently. */
function byPartitionAndStream(a: Line, b: Line): number {
  return (a.partition ?? -1) - (b.partition ?? -1) || a.stream.localeCompare(b.stream);
}

describe('python runner compiled at the engine start (python_runner.pyc)', () => {
  /** A runtime folder as installRuntime makes it, with the runner compiled into it as the engine does. */
  async function compiledRuntime(): Promise<string> {
    const runtimeDir = folder();
    copyFileSync(runnerScript('python'), join(runtimeDir, 'python_runner.py'));
    expect(await compilePythonRunner(PYTHON, runtimeDir, '/job/runtime')).toBeNull();
    return runtimeDir;
  }

  it('runs partitions from the .pyc as from the source: answers, log lines, a traceback that starts at the job', async () => {
    const runtimeDir = await compiledRuntime();
    // Tasks of every uid read it, as they read the source.
    expect(statSync(join(runtimeDir, 'python_runner.pyc')).mode & 0o777).toBe(0o644);
    // The source gone: whatever answers below can only be the compiled runner.
    rmSync(join(runtimeDir, 'python_runner.py'));
    const dir = folder();
    const source = write(
      dir,
      'job.py',
      `import shutil\n` +
        `def check(partition):\n    if partition == 1:\n        raise ValueError('bad partition %d' % partition)\n` +
        `def process(input_path, output_path, ctx):\n    check(ctx.partition)\n    ctx.log.info('ran %s', ctx.partition)\n    shutil.copyfile(input_path, output_path)\n`,
    );
    const [file, ...args] = runtimeArgv('python', { runtimeDir, source, entrypoint: 'process', jobId: 'job-test', python: PYTHON, node: process.execPath, memoryMb: 256, pythonCompiled: true });
    expect(args[1]).toBe(join(runtimeDir, 'python_runner.pyc'));
    const { lines, sink } = collector();
    const worker = WarmWorker.start({ file: file!, args, env: ENV, cwd: dir }, sink);
    workers.push(worker);
    await worker.ready();
    const input = write(dir, 'in.csv', 'a\n1\n');
    expect(await worker.run(task(dir, 0, input))).toMatchObject({ ok: true, rows_out: 1 });
    const failed = await worker.run(task(dir, 1, input));
    expect(failed.ok).toBe(false);
    if (failed.ok) return;
    expect(failed.error.split('\n')[0]).toBe('ValueError: bad partition 1');
    expect(failed.error).toMatch(/job\.py", line 4, in check/);
    // The runner's own frames are skipped by the name it was compiled with, not shown as python_runner.py.
    expect(failed.error).not.toContain('python_runner');
    await worker.stop();
    expect(lines).toContainEqual({ partition: 0, stream: 'stderr', line: 'INFO ran 0' });
  });

  it('looks a bare interpreter name up where the tasks do, so the .pyc is for the interpreter they run', async () => {
    const runtimeDir = folder();
    copyFileSync(runnerScript('python'), join(runtimeDir, 'python_runner.py'));
    // A python3 found first on the PATH given (as /usr/local/bin's is on the tasks'), noting that it ran.
    const bin = folder();
    const ran = join(bin, 'ran');
    writeFileSync(join(bin, 'python3'), `#!/bin/sh\necho "$@" > ${ran}\nexec ${PYTHON} "$@"\n`, { mode: 0o755 });
    expect(await compilePythonRunner('python3', runtimeDir, runtimeDir, `${bin}:/usr/bin:/bin`)).toBeNull();
    expect(readFileSync(ran, 'utf8')).toContain('python_runner.pyc');
    expect(existsSync(join(runtimeDir, 'python_runner.pyc'))).toBe(true);
  });

  it('sees an interpreter replaced under its .pyc: the next worker runs the source, and the runner is compiled again by the new one', async () => {
    const runtimeDir = folder();
    copyFileSync(runnerScript('python'), join(runtimeDir, 'python_runner.py'));
    const bin = folder();
    const python = join(bin, 'python3');
    // Each "interpreter" notes that it compiled; replaced as a package upgrade does (a new file renamed over the old).
    const install = (name: string): void => {
      writeFileSync(join(bin, 'new'), `#!/bin/sh\necho ${name} >> ${join(bin, 'compiled-by')}\nexec ${PYTHON} "$@"\n`, { mode: 0o755 });
      renameSync(join(bin, 'new'), python);
    };
    install('first');
    const warnings: string[] = [];
    const runner = new CompiledPythonRunner({ python: 'python3', runtimeDir, shownDir: runtimeDir, path: `${bin}:/usr/bin:/bin`, warn: (_f, m) => warnings.push(m), info: () => {} });
    expect(runner.usable()).toBe(false); // not compiled yet: the source
    await runner.compile();
    expect(runner.usable()).toBe(true);
    expect(runner.usable()).toBe(true); // asked again, nothing changed: no recompile
    expect(readFileSync(join(bin, 'compiled-by'), 'utf8')).toBe('first\n');

    install('second');
    expect(runner.usable()).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/interpreter changed/)]);
    await runner.settled();
    expect(readFileSync(join(bin, 'compiled-by'), 'utf8')).toBe('first\nsecond\n');
    expect(runner.usable()).toBe(true);
    expect(existsSync(join(runtimeDir, 'python_runner.pyc'))).toBe(true);

    // That one removed: exec finds the next python3 on the PATH, and so does the stamp.
    rmSync(python);
    expect(runner.usable()).toBe(false);
    await runner.settled();
    expect(runner.usable()).toBe(true);
    expect(readFileSync(join(bin, 'compiled-by'), 'utf8')).toBe('first\nsecond\n');
  });

  it("says why when it cannot be compiled, and leaves no .pyc behind, not even an older engine's", async () => {
    const runtimeDir = folder();
    writeFileSync(join(runtimeDir, 'python_runner.py'), 'def broken(:\n');
    writeFileSync(join(runtimeDir, 'python_runner.pyc'), 'an older runner, compiled');
    expect(await compilePythonRunner(PYTHON, runtimeDir, runtimeDir)).toMatch(/SyntaxError|invalid syntax/);
    expect(existsSync(join(runtimeDir, 'python_runner.pyc'))).toBe(false);
    expect(await compilePythonRunner(join(runtimeDir, 'no-such-python'), runtimeDir, runtimeDir)).not.toBeNull();
  });
});

describe('node warm worker', () => {
  it('imports the module once and awaits an async process()', async () => {
    const { lines, sink } = collector();
    const { worker, dir } = await warm(
      'node',
      `import { appendFileSync } from 'node:fs';\nimport { readFile, writeFile } from 'node:fs/promises';\n` +
        // The module's own `process` export hides Node's global of that name.
        `appendFileSync('imports.txt', 'imported ' + globalThis.process.pid + '\\n');\n` +
        `export async function process(inputPath, outputPath, ctx) {\n` +
        `  await new Promise((r) => setTimeout(r, 5));\n` +
        `  console.log('hello from', ctx.partition, ctx.jobId, ctx.inputFormat, ctx.attempt);\n` +
        `  ctx.log('logged', ctx.partition);\n` +
        `  await writeFile(outputPath, (await readFile(inputPath, 'utf8')).toUpperCase());\n}\n`,
      { sink },
    );
    await worker.ready();
    for (const partition of [0, 1, 2]) {
      const input = write(dir, `part-${partition}.jsonl`, '{"w":"a"}\n'.repeat(partition + 1));
      expect(await worker.run(task(dir, partition, input, 'jsonl'))).toMatchObject({ ok: true, rows_out: partition + 1, bytes_out: 10 * (partition + 1) });
    }
    expect(readFileSync(join(dir, 'imports.txt'), 'utf8')).toBe(`imported ${worker.pid}\n`);
    expect(lines).toContainEqual({ partition: 2, stream: 'stdout', line: 'hello from 2 job-test jsonl 1' });
    expect(lines).toContainEqual({ partition: 1, stream: 'stderr', line: 'INFO logged 1' });
    await worker.stop();
    expect(await worker.exited).toEqual({ code: 0, signal: null });
  });

  it('finish(): answers the partition it was sent, then exits 0 by itself', async () => {
    const { worker, dir } = await warm('node', `import { copyFile } from 'node:fs/promises';\nexport async function process(i, o) {\n  await new Promise((r) => setTimeout(r, 20));\n  await copyFile(i, o);\n}\n`);
    await worker.ready();
    const input = write(dir, 'in.csv', 'a\n1\n');
    const result = worker.run(task(dir, 0, input));
    worker.finish();
    expect(await result).toMatchObject({ ok: true, rows_out: 1 });
    expect(await worker.exited).toEqual({ code: 0, signal: null });
  });

  it('replies an error with its stack, and the same worker serves the next partition', async () => {
    const { worker, dir } = await warm(
      'node',
      `import { copyFileSync } from 'node:fs';\n` +
        `export function process(inputPath, outputPath, ctx) {\n` +
        `  if (ctx.partition === 1) throw new TypeError('bad partition ' + ctx.partition);\n` +
        `  copyFileSync(inputPath, outputPath);\n}\n`,
    );
    const input = write(dir, 'in.csv', 'a\n1\n2\n');
    expect(await worker.run(task(dir, 0, input))).toMatchObject({ ok: true, rows_out: 2 });
    const failed = await worker.run(task(dir, 1, input));
    expect(failed).toMatchObject({ ok: false, oom: false, lost_worker: false });
    expect(failed.ok === false && failed.error).toMatch(/^TypeError: bad partition 1\n[\s\S]*job\.mjs:3/);
    expect(await worker.run(task(dir, 2, input))).toMatchObject({ ok: true, rows_out: 2 });
  });

  it('counts rows the way the Python runner does', async () => {
    const { worker, dir } = await warm('node', `import { copyFileSync } from 'node:fs';\nexport const process = (i, o) => copyFileSync(i, o);\n`);
    let partition = 0;
    for (const c of [...ROW_CASES, { name: 'jsonl over a chunk', format: 'jsonl' as const, ...bigJsonl() }]) {
      const input = write(dir, `in-${partition}.${c.format}`, c.text);
      expect(await worker.run(task(dir, partition++, input, c.format)), c.name).toMatchObject({ ok: true, rows_out: c.rows, bytes_out: Buffer.byteLength(c.text) });
    }
  });

  it('loses a worker whose heap runs out, and says it was memory', async () => {
    // 40 MB for the task gives V8 a 32 MB heap: filled in a fraction of a second.
    const { worker, dir } = await warm('node', 'export function process() {\n  const all = [];\n  for (;;) all.push({ n: all.length });\n}\n', { memoryMb: 40 });
    const result = await worker.run(task(dir, 4, write(dir, 'in.csv', 'a\n')));
    expect(result).toMatchObject({ ok: false, oom: true, lost_worker: true });
    expect(result.ok === false && result.error).toMatch(/^worker exited with signal SIGABRT while running partition 4\n[\s\S]*JavaScript heap out of memory/);
  });

  it('refuses a module with a syntax error or without the entrypoint', async () => {
    const broken = await warm('node', 'export function process( {\n');
    const error = await broken.worker.ready().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerStartError);
    expect((error as Error).message).toMatch(/^SyntaxError: /);
    const missing = await warm('node', 'export function main() {}\n');
    await expect(missing.worker.ready()).rejects.toThrow(`the source exports no "process" (the job's entrypoint)`);
  });
});

describe('command runtime', () => {
  it('runs one process per partition with the placeholders filled in', async () => {
    const dir = folder();
    const input = write(dir, 'part-00003.csv', 'word\nabc\n');
    const output = join(dir, 'out.csv');
    const argv = expandArgv(['/bin/sh', '-c', 'tr a-z A-Z < "$0" > "$1"; echo "partition {partition} of {source}"', '{input}', '{output}'], {
      input,
      output,
      partition: 3,
      source: 'job.sh',
    });
    const { lines, sink } = collector();
    const result = await runCommand({ file: argv[0]!, args: argv.slice(1), env: ENV, cwd: dir }, 3, sink);
    expect(result).toEqual({ ok: true, seconds: expect.any(Number) });
    expect(readFileSync(output, 'utf8')).toBe('WORD\nABC\n');
    expect(lines).toEqual([{ partition: 3, stream: 'stdout', line: 'partition 3 of job.sh' }]);
  });

  it('fails a partition whose command exits non-zero, with the stderr tail', async () => {
    const dir = folder();
    const script = 'for i in $(seq 1 30); do echo "line $i" >&2; done; echo "out of memory" >&2; exit 3';
    const result = await runCommand({ file: '/bin/sh', args: ['-c', script], env: ENV, cwd: dir }, 0, () => {});
    expect(result).toMatchObject({ ok: false, oom: true });
    const error = result.ok ? '' : result.error;
    expect(error.split('\n')[0]).toBe('command exited with exit code 3');
    expect(error.split('\n')).toHaveLength(21); // the reason, then the last 20 stderr lines
    expect(error).toContain('line 30\nout of memory');
  });

  it('reports a command that cannot start, and kills the process group on abort', async () => {
    const dir = folder();
    const missing = await runCommand({ file: join(dir, 'no-such-program'), args: [], env: ENV, cwd: dir }, 0, () => {});
    expect(missing).toMatchObject({ ok: false, oom: false });
    expect(!missing.ok && missing.error).toMatch(/^could not start .*no-such-program: .*ENOENT/);

    // The shell's child (sleep) would outlive a plain kill of the shell: the group goes with it.
    const pidFile = join(dir, 'sleep.pid');
    const controller = new AbortController();
    const running = runCommand({ file: '/bin/sh', args: ['-c', `sleep 30 & echo $! > ${pidFile}.part; mv ${pidFile}.part ${pidFile}; wait`], env: ENV, cwd: dir }, 0, () => {}, controller.signal);
    // Aborted once the shell has started its child, not after a guessed delay.
    const sleeper = await until(() => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined), 10_000, "the pid of the shell's sleep");
    controller.abort(new Error('time limit reached'));
    expect(await running).toEqual({ ok: false, error: 'stopped: time limit reached', oom: false });
    // Left alone it would sleep 30 s: its end within the wait is the group kill's doing.
    await until(() => !alive(sleeper), 10_000, "the shell's sleep gone");
  });

  it('expands placeholders inside arguments and leaves unknown words alone', () => {
    expect(expandArgv(['--in={input}', '{output}', 'p{partition}-{partition}', '{source}', '{unknown}', '{ input }', 'x'], {
      input: '/in/part-00007.csv',
      output: '/out/part-00007.csv.a1',
      partition: 7,
      source: '/job/job.py',
    })).toEqual(['--in=/in/part-00007.csv', '/out/part-00007.csv.a1', 'p7-7', '/job/job.py', '{unknown}', '{ input }', 'x']);
  });
});

describe('countRows', () => {
  it('counts CSV and JSON Lines files with the runners’ rules', async () => {
    const dir = folder();
    for (const [i, c] of [...ROW_CASES, { name: 'jsonl over a chunk', format: 'jsonl' as const, ...bigJsonl() }].entries()) {
      const file = write(dir, `f${i}.${c.format}`, c.text);
      expect(await countRows(file, c.format), c.name).toEqual({ rows: c.rows, bytes: Buffer.byteLength(c.text) });
    }
    // A CSV over a chunk border: every newline counts, whichever chunk it falls in.
    const csv = `h\n${'0123456789abcdef\n'.repeat(100_000)}`;
    expect(await countRows(write(dir, 'big.csv', csv), 'csv')).toEqual({ rows: 100_000, bytes: csv.length });
  });
});

describe('runtimeArgv', () => {
  it('builds the python and node command lines', () => {
    const o = { runtimeDir: '/gh/runtime', source: '/gh/job/job.py', entrypoint: 'process', jobId: 'j1', python: 'python3', node: '/usr/bin/node', memoryMb: 1024 };
    expect(runtimeArgv('python', o)).toEqual(['python3', '-u', '/gh/runtime/python_runner.py', '--source', '/gh/job/job.py', '--entrypoint', 'process', '--job', 'j1']);
    expect(runtimeArgv('node', o)).toEqual(['/usr/bin/node', '--max-old-space-size=768', '/gh/runtime/node_runner.mjs', '--source', '/gh/job/job.py', '--entrypoint', 'process', '--job', 'j1']);
    expect(runtimeArgv('node', { ...o, memoryMb: 16 })[1]).toBe('--max-old-space-size=32');
    expect(runtimeArgv('python', { ...o, pythonCompiled: true })[2]).toBe('/gh/runtime/python_runner.pyc');
    expect(runtimeArgv('node', { ...o, pythonCompiled: true })[2]).toBe('/gh/runtime/node_runner.mjs');
  });
});

// ---- examples/ ----

/** The normaliser's rules, computed independently of both examples. */
function normalizeReference(word: string): string {
  return word.normalize('NFKC').toLowerCase().replace(/^[\p{P}\p{Z}\p{Cc}]+|[\p{P}\p{Z}\p{Cc}]+$/gu, '');
}

const ODD_WORDS: string[] = [
  'Hello,', '"Quoted"', '  spaced\t', 'Cafe\u0301', '«Bonjour»', '\uFB01ne', '\uFF26\uFF55\uFF4C\uFF4C', "don't", 'well-known!', '...',
  '', 'x, y', 'ΟΔΟΣ', '(paren', '\u00A0nbsp\u00A0', '“curly”', '$5', 'ÉCOLE.', 'plain',
];

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function wordsCsv(words: string[], transform: (w: string) => string): string {
  return `id,word,note\n${words.map((w, i) => [String(i + 1), transform(w), `n${i}, kept`].map(csvField).join(',')).join('\n')}\n`;
}

function wordsJsonl(words: string[], transform: (w: string) => string): string {
  return words.map((w, i) => `${JSON.stringify({ id: i + 1, word: transform(w), tags: ['a', 'é'] })}\n`).join('');
}

describe('examples', () => {
  const source = (name: string) => readFileSync(join(EXAMPLES, name), 'utf8');

  it('normalize_words.py matches the reference on CSV and JSON Lines, in a warm worker and standalone', async () => {
    const { worker, dir } = await warm('python', source('normalize_words.py'));
    const csvIn = write(dir, 'part-00000.csv', wordsCsv(ODD_WORDS, (w) => w));
    const jsonlIn = write(dir, 'part-00001.jsonl', wordsJsonl(ODD_WORDS, (w) => w));
    const csvTask = task(dir, 0, csvIn, 'csv');
    const jsonlTask = task(dir, 1, jsonlIn, 'jsonl');
    expect(await worker.run(csvTask)).toMatchObject({ ok: true, rows_out: ODD_WORDS.length });
    expect(await worker.run(jsonlTask)).toMatchObject({ ok: true, rows_out: ODD_WORDS.length });
    expect(readFileSync(csvTask.output, 'utf8')).toBe(wordsCsv(ODD_WORDS, normalizeReference));
    expect(readFileSync(jsonlTask.output, 'utf8')).toBe(wordsJsonl(ODD_WORDS, normalizeReference));

    const standalone = join(dir, 'standalone.jsonl');
    const run = spawnSync(PYTHON, [join(EXAMPLES, 'normalize_words.py'), jsonlIn, standalone], { env: ENV, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(standalone, 'utf8')).toBe(wordsJsonl(ODD_WORDS, normalizeReference));
  });

  it('normalize_words.mjs matches the same reference in a node worker', async () => {
    const { worker, dir } = await warm('node', source('normalize_words.mjs'));
    const csvTask = task(dir, 0, write(dir, 'part-00000.csv', wordsCsv(ODD_WORDS, (w) => w)), 'csv');
    const jsonlTask = task(dir, 1, write(dir, 'part-00001.jsonl', wordsJsonl(ODD_WORDS, (w) => w)), 'jsonl');
    expect(await worker.run(csvTask)).toMatchObject({ ok: true, rows_out: ODD_WORDS.length });
    expect(await worker.run(jsonlTask)).toMatchObject({ ok: true, rows_out: ODD_WORDS.length });
    expect(readFileSync(csvTask.output, 'utf8')).toBe(wordsCsv(ODD_WORDS, normalizeReference));
    expect(readFileSync(jsonlTask.output, 'utf8')).toBe(wordsJsonl(ODD_WORDS, normalizeReference));
  });

  it('score_transactions.py scores a partition and logs its flagged count', async () => {
    const { lines, sink } = collector();
    const { worker, dir } = await warm('python', source('score_transactions.py'), { sink });
    const input = write(
      dir,
      'part-00002.csv',
      'id,customer_id,amount,currency,merchant,category,ts\n' +
        't1,c1,12.50,EUR,Corner Grocer,groceries,2024-03-01T14:00:00Z\n' +
        't2,c2,2400.00,USD,ElectroWorld,electronics,2024-03-01T02:30:00Z\n' +
        't3,c3,-300.00,GBP,"Books, Maps & More",books,2024-03-01T03:00:00Z\n' +
        't4,c1,45.00,EUR,Fresh Market,groceries,2024-03-02T10:00:00Z\n',
    );
    const t = task(dir, 2, input);
    expect(await worker.run(t)).toMatchObject({ ok: true, rows_out: 4 });
    const out = readFileSync(t.output, 'utf8').trimEnd().split('\n').map((l) => l.split(','));
    expect(out[0]).toEqual(['id', 'customer_id', 'amount', 'score', 'flagged']);
    expect(out.slice(1).map(([id, , amount, , flagged]) => [id, amount, flagged])).toEqual([
      ['t1', '12.50', '0'],
      ['t2', '2400.00', '1'],
      ['t3', '-300.00', '1'],
      ['t4', '45.00', '0'],
    ]);
    for (const [, , , score, flagged] of out.slice(1)) {
      expect(Number(score)).toBeGreaterThan(0);
      expect(Number(score)).toBeLessThan(1);
      expect(Number(score) >= 0.5 ? '1' : '0').toBe(flagged);
    }
    expect(lines).toContainEqual({ partition: 2, stream: 'stderr', line: 'INFO partition 2: 2 of 4 payments flagged' });
    expect(existsSync(join(dir, '__pycache__'))).toBe(false);
  });
});

describe('a spare python runner (--spare: started before its job, jobs/spares.ts)', () => {
  const spareLaunch = (dir: string): WorkerLaunch => {
    const [file, ...args] = spareRuntimeArgv({ runtimeDir: dirname(runnerScript('python')), python: PYTHON });
    return { file: file!, args, env: ENV, cwd: dir };
  };

  it('loads nothing until it is told its job, then runs it as any worker; a second job is refused', async () => {
    const dir = folder();
    const sourceFile = write(dir, 'job.py', COPY_PY);
    const { lines, sink } = collector();
    const worker = WarmWorker.start(spareLaunch(dir), sink);
    workers.push(worker);
    worker.assign({ source: sourceFile, entrypoint: 'process', jobId: 'job-spare' });
    expect(() => worker.assign({ source: sourceFile, entrypoint: 'process', jobId: 'job-other' })).toThrow(/already has a job/);
    await worker.ready();
    const input = write(dir, 'in.csv', 'a\n1\n2\n');
    await expect(worker.run(task(dir, 0, input))).resolves.toMatchObject({ ok: true, rows_out: 2 });
    expect(readFileSync(join(dir, 'out-0.csv.a1'), 'utf8')).toBe('a\n1\n2\n');
    expect(lines).toEqual([]);
  });

  it('exits without loading anything when its first message is not its job (2), or is an exit (0)', async () => {
    const run = (first: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(PYTHON, spareLaunch(folder()).args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
        (child.stdio[3] as NodeJS.WritableStream).write(first);
        child.on('close', (code) => resolve({ code, stderr }));
      });
    const forged = await run(`${JSON.stringify({ op: 'run', partition: 0, attempt: 1, input: '/etc/passwd', output: '/tmp/x', format: 'csv' })}\n`);
    expect(forged.code).toBe(2);
    expect(forged.stderr).toContain('a spare expects its job first');
    const partial = await run(`${JSON.stringify({ op: 'job', source: '', entrypoint: 'process', job: 'j' })}\n`);
    expect(partial.code).toBe(2);
    expect((await run(`${JSON.stringify({ op: 'exit' })}\n`)).code).toBe(0);
  });
});
