import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../src/cli/client/api.js';
import { JobLog } from '../src/compute/jobs/job-log.js';
import { jobError, quotaLine } from '../src/cli/job-errors.js';
import { parseMemoryMb, parsePartitions, parseTimeLimit, splitCommand } from '../src/cli/job-flags.js';
import { renderJobList, renderStatus } from '../src/cli/job-report.js';
import { buildSpec, type SubmitArgs } from '../src/cli/job-spec.js';
import type { Files } from '../src/cli/job-spec-file.js';
import type { Job } from '../src/cli/job-view.js';
import { describeProgress, exitCodeFor, renderProgress, summarize } from '../src/cli/progress.js';
import { type Quota, renderQuota } from '../src/cli/quota-command.js';
import { runCli } from './support/gatehouse.js';

const CLEAN_PY = 'def process(rows):\n    return rows\n';
const WORDS_MJS = 'export function process(rows) { return rows; }\n';

/** Files in memory; records which paths were read, so tests see how relative paths resolved. */
function memoryFiles(files: Record<string, string>): Files & { read: string[] } {
  const read: string[] = [];
  return {
    read,
    readText(path) {
      read.push(path);
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return text;
    },
  };
}

/** The UsageError message a build fails with. */
function problem(args: SubmitArgs, files: Files = memoryFiles({})): string {
  try {
    buildSpec(args, files);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected buildSpec to refuse the spec');
}

const T0 = Date.parse('2025-03-01T10:00:00Z');

function job(over: Partial<Job> = {}): Job {
  return {
    id: 'j-7f3a',
    name: 'clean',
    user: 'alice',
    state: 'running',
    input: 'transactions',
    output: 'transactions_norm',
    runtime: 'python',
    backend: 'bundled',
    resources: { cores: 4, memory_mb: 1024, time_limit_s: 3600 },
    partitions: { total: 12, done: 3, failed: 0, running: 4 },
    workers: 4,
    rows_in: 1_234_567,
    rows_out: 1_200_000,
    bytes_in: 5 << 20,
    bytes_out: 4 << 20,
    created_at: new Date(T0 - 10_000).toISOString(),
    started_at: new Date(T0).toISOString(),
    finished_at: null,
    core_seconds: 96.5,
    attempts: 7,
    error: null,
    reason: null,
    ...over,
  };
}

describe('job.yaml', () => {
  it('reads python: relative to the job file and names the job after the source file', () => {
    const files = memoryFiles({
      'jobs/job.yaml': 'input: transactions\noutput: transactions_norm\npython: src/clean_words.py\n',
      'jobs/src/clean_words.py': CLEAN_PY,
    });
    const spec = buildSpec({ file: 'jobs/job.yaml' }, files);
    expect(files.read).toEqual(['jobs/job.yaml', 'jobs/src/clean_words.py']);
    expect(spec).toEqual({
      name: 'clean_words',
      input: 'transactions',
      output: 'transactions_norm',
      runtime: 'python',
      source: CLEAN_PY,
      resources: { cores: 1, memory_mb: 1024, time_limit_s: 3600 },
    });
  });

  it('takes node:, sizes with units and partition ranges', () => {
    const files = memoryFiles({
      'job.yaml': 'input: events\noutput: events_out\nnode: words.mjs\nentrypoint: transform\nresources:\n  cores: 2\n  memory_mb: 2g\n  time_limit_s: 30m\npartitions: 0,2-4\nlabels: pii, derived\n',
      'words.mjs': WORDS_MJS,
    });
    const spec = buildSpec({ file: 'job.yaml' }, files);
    expect(spec).toMatchObject({ runtime: 'node', source: WORDS_MJS, entrypoint: 'transform', partitions: [0, 2, 3, 4], labels: ['pii', 'derived'] });
    expect(spec.resources).toEqual({ cores: 2, memory_mb: 2048, time_limit_s: 1800 });
  });

  it('reads source_file: with runtime:, or infers the runtime from the extension', () => {
    const files = memoryFiles({ 'a/job.yaml': 'input: x\noutput: y\nsource_file: ../lib/step.py\n', 'lib/step.py': CLEAN_PY, 'b/job.yaml': 'input: x\noutput: y\nruntime: command\nsource_file: filter.awk\nargv: [awk, -f, "{source}", "{input}"]\n', 'b/filter.awk': '{ print }' });
    expect(buildSpec({ file: 'a/job.yaml' }, files)).toMatchObject({ runtime: 'python', source: CLEAN_PY, name: 'step' });
    expect(buildSpec({ file: 'b/job.yaml' }, files)).toMatchObject({ runtime: 'command', source: '{ print }', argv: ['awk', '-f', '{source}', '{input}'], name: 'filter' });
  });

  it('takes command: as a command line or a list of words', () => {
    const files = memoryFiles({ 'line.yaml': 'input: x\noutput: y\ncommand: sort -o "{output}" {input}\n', 'list.yaml': 'input: x\noutput: y\ncommand: [sort, -o, "{output}", "{input}"]\n' });
    const expected = { runtime: 'command', argv: ['sort', '-o', '{output}', '{input}'], name: 'sort' };
    expect(buildSpec({ file: 'line.yaml' }, files)).toMatchObject(expected);
    expect(buildSpec({ file: 'list.yaml' }, files)).toMatchObject(expected);
  });

  it('refuses an unknown key with the closest known one, at the top and in resources', () => {
    expect(problem({ file: 'job.yaml' }, memoryFiles({ 'job.yaml': 'inptu: x\n' }))).toBe('job.yaml: unknown key "inptu" (did you mean "input"?)');
    expect(problem({ file: 'job.yaml' }, memoryFiles({ 'job.yaml': 'input: x\nresources:\n  memory: 4g\n' }))).toBe('job.yaml: unknown key "resources.memory" (did you mean "resources.memory_mb"?)');
    expect(problem({ file: 'job.yaml' }, memoryFiles({ 'job.yaml': 'zzzzzzzz: 1\n' }))).toMatch(/^job\.yaml: unknown key "zzzzzzzz" \(known keys: name, input, output, runtime, /);
  });

  it('refuses contradictions and files it cannot read, naming them', () => {
    const files = memoryFiles({ 'two.yaml': 'python: a.py\nnode: b.mjs\n', 'clash.yaml': 'runtime: node\npython: a.py\n', 'missing.yaml': 'python: gone.py\n', 'list.yaml': '- input\n' });
    expect(problem({ file: 'two.yaml' }, files)).toBe('two.yaml: python and node: give one of python, node, command, source_file');
    expect(problem({ file: 'clash.yaml' }, files)).toBe('clash.yaml: python: sets the runtime python, but runtime: says node');
    expect(problem({ file: 'missing.yaml' }, files)).toBe('cannot read python: gone.py (ENOENT)');
    expect(problem({ file: 'nope.yaml' }, files)).toBe('cannot read the job file nope.yaml (ENOENT)');
    expect(problem({ file: 'list.yaml' }, files)).toBe('list.yaml: expected a mapping of job fields (input, output, python, resources, ...)');
  });

  it('reads a job folder from disk relative to the file, wherever the command runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-job-'));
    try {
      mkdirSync(join(dir, 'steps'));
      writeFileSync(join(dir, 'job.yaml'), 'input: transactions\noutput: out\npython: steps/normalize.py\n');
      writeFileSync(join(dir, 'steps', 'normalize.py'), CLEAN_PY);
      expect(buildSpec({ file: join(dir, 'job.yaml') })).toMatchObject({ name: 'normalize', source: CLEAN_PY });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('submit flags', () => {
  it('parse memory in MB, m and g', () => {
    expect(parseMemoryMb('1024')).toBe(1024);
    expect(parseMemoryMb('512m')).toBe(512);
    expect(parseMemoryMb('4g')).toBe(4096);
    expect(parseMemoryMb('1.5G')).toBe(1536);
    for (const bad of ['4x', '', '-1', '0', '0.3g']) expect(() => parseMemoryMb(bad)).toThrow(`--memory ${bad}: expected megabytes (1024) or a size such as 512m or 4g`);
  });

  it('parse time limits in seconds and durations', () => {
    expect(parseTimeLimit('3600')).toBe(3600);
    expect(parseTimeLimit('30m')).toBe(1800);
    expect(parseTimeLimit('2h')).toBe(7200);
    for (const bad of ['2y', '0', '1h30m', 'soon']) expect(() => parseTimeLimit(bad)).toThrow(`--time ${bad}: expected seconds (3600) or a duration such as 30m or 2h`);
  });

  it('parse partitions as numbers and ranges, sorted without repeats', () => {
    expect(parsePartitions('0,1,5-9')).toEqual([0, 1, 5, 6, 7, 8, 9]);
    expect(parsePartitions('7, 3-4,3')).toEqual([3, 4, 7]);
    expect(() => parsePartitions('1,a')).toThrow('--partitions 1,a: expected partition numbers and ranges such as 0,1,5-9');
    expect(() => parsePartitions('9-5')).toThrow('--partitions 9-5: the range 9-5 goes down; write it low-high (5-9)');
    expect(() => parsePartitions('0-100000')).toThrow('--partitions 0-100000: partition numbers go up to 9999');
  });

  it('split --command like a shell, without running one', () => {
    expect(splitCommand(`grep -v "^#" '{input}'`)).toEqual(['grep', '-v', '^#', '{input}']);
    expect(splitCommand(`echo a\\ b "c \\"d\\"" ''`)).toEqual(['echo', 'a b', 'c "d"', '']);
    expect(splitCommand('wc -l | sort')).toEqual(['wc', '-l', '|', 'sort']);
    expect(() => splitCommand(`sed 's/a/b`)).toThrow(`--command sed 's/a/b: a ' quote is not closed`);
    expect(() => splitCommand('  ')).toThrow(`--command: expected a program and its arguments, such as 'sort -o {output} {input}'`);
  });

  it('build a whole spec without a job file', () => {
    const files = memoryFiles({ 'scripts/my words!.py': CLEAN_PY });
    const spec = buildSpec({ input: 'a', output: 'b', python: 'scripts/my words!.py', cores: '8', memory: '4g', time: '2h', partitions: '0-2', overwrite: true, labels: 'x,y', backend: 'bundled', entrypoint: 'run' }, files);
    expect(spec).toEqual({
      name: 'my-words-',
      input: 'a',
      output: 'b',
      runtime: 'python',
      source: CLEAN_PY,
      entrypoint: 'run',
      backend: 'bundled',
      resources: { cores: 8, memory_mb: 4096, time_limit_s: 7200 },
      partitions: [0, 1, 2],
      labels: ['x', 'y'],
      mode: 'overwrite',
    });
  });

  it('take a source file as the argument, as examples/README.md shows, with --runtime or by its extension', () => {
    const files = memoryFiles({ 'examples/normalize_words.py': CLEAN_PY, 'examples/step.txt': CLEAN_PY });
    expect(buildSpec({ file: 'examples/normalize_words.py', input: 'words', output: 'words_norm' }, files)).toMatchObject({ name: 'normalize_words', runtime: 'python', source: CLEAN_PY });
    expect(buildSpec({ file: 'examples/step.txt', runtime: 'python', input: 'words', output: 'w2' }, files)).toMatchObject({ name: 'step', runtime: 'python' });
    expect(problem({ file: 'examples/step.txt', runtime: 'pyhton', input: 'words', output: 'w2' }, files)).toBe('--runtime pyhton: expected python, node, command (did you mean python?)');
    expect(problem({ file: 'examples/step.txt', python: 'examples/normalize_words.py', input: 'words', output: 'w2' }, files)).toBe('examples/step.txt and --python: give the source once');
  });

  it('override the job file field by field, and replace its program as a whole', () => {
    const files = memoryFiles({
      'job.yaml': 'name: nightly\ninput: events\noutput: events_out\nnode: words.mjs\nentrypoint: transform\nresources:\n  cores: 2\n  memory_mb: 2048\n',
      'words.mjs': WORDS_MJS,
      'other.py': CLEAN_PY,
    });
    const cores = buildSpec({ file: 'job.yaml', cores: '6', output: 'events_v2' }, files);
    expect(cores).toMatchObject({ name: 'nightly', input: 'events', output: 'events_v2', runtime: 'node', source: WORDS_MJS });
    expect(cores.resources).toEqual({ cores: 6, memory_mb: 2048, time_limit_s: 3600 });
    const python = buildSpec({ file: 'job.yaml', python: 'other.py', name: 'rerun' }, files);
    expect(python).toMatchObject({ name: 'rerun', runtime: 'python', source: CLEAN_PY, entrypoint: 'transform' });
    const yamlWithoutEntrypoint = memoryFiles({ 'job.yaml': 'input: events\noutput: events_out\nnode: words.mjs\n', 'words.mjs': WORDS_MJS });
    const command = buildSpec({ file: 'job.yaml', command: 'sort {input}' }, yamlWithoutEntrypoint);
    expect(command).toMatchObject({ runtime: 'command', argv: ['sort', '{input}'] });
    expect(command.source).toBeUndefined();
  });

  it('refuse a bad spec before sending, naming the field', () => {
    const files = memoryFiles({ 'a.py': CLEAN_PY, 'b.mjs': WORDS_MJS });
    expect(problem({ output: 'b', python: 'a.py' }, files)).toBe('input: missing (--input NAME, or input: in the job file)');
    expect(problem({ input: 'a', output: 'b' }, files)).toBe("runtime: missing (--python FILE, --node FILE or --command 'argv...', or the same keys in the job file)");
    expect(problem({ input: 'a', output: 'b', python: 'a.py', node: 'b.mjs' }, files)).toBe("--python and --node: choose one of --python FILE, --node FILE or --command 'argv...'");
    expect(problem({ input: 'a', output: 'b', python: 'a.py', memory: '10' }, files)).toBe('resources.memory_mb: must be >= 64, got 10');
    expect(problem({ input: 'a', output: 'b', python: 'a.py', cores: '5000' }, files)).toBe('resources.cores: must be <= 1024, got 5000');
    expect(problem({ input: 'Sales', output: 'b', python: 'a.py' }, files)).toBe('input: dataset name "Sales" has upper-case letters; names are lower case');
    expect(problem({ input: 'a', output: 'b', python: 'a.py', name: '-x' }, files)).toBe(`name: "-x": letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128`);
    expect(problem({ input: 'a', output: 'a', python: 'a.py' }, files)).toBe('output: a job cannot write the dataset it reads');
    expect(problem({ input: 'a', output: 'b', command: 'sort', entrypoint: 'run' }, files)).toBe('entrypoint: the command runtime runs argv; entrypoint is for python and node');
    expect(problem({ input: 'a', output: 'b', cores: '0' }, files)).toBe('--cores 0: expected a whole number of cores, at least 1');
  });
});

describe('job progress', () => {
  const now = T0 + 60_000;

  it('shows partitions, percentage, rows, elapsed time and an ETA from the partition rate', () => {
    const line = renderProgress(job(), now);
    // 3 of 12 in 60 s: 20 s each, 9 left → 3 minutes.
    expect(line).toBe('[######..................] 3/12 partitions 25%  rows 1,234,567  elapsed 1m00s  ETA 3m00s  running');
  });

  it('has no ETA before the first partition finishes, and a full bar at the end', () => {
    expect(renderProgress(job({ partitions: { total: 12, done: 0, failed: 0, running: 4 } }), now)).toContain('0/12 partitions 0%  rows 1,234,567  elapsed 1m00s  ETA ?  running');
    const finished = job({ state: 'succeeded', partitions: { total: 12, done: 12, failed: 0, running: 0 }, finished_at: new Date(T0 + 90_000).toISOString() });
    expect(renderProgress(finished, now + 3_600_000)).toBe('[########################] 12/12 partitions 100%  rows 1,234,567  elapsed 1m30s  succeeded');
  });

  it('shows why a pending job waits, and for how long', () => {
    const pending = job({ state: 'pending', started_at: null, reason: 'quota: cores 8/8 in use', partitions: { total: 0, done: 0, failed: 0, running: 0 } });
    // Not yet at the engine: no partitions to count, so none are shown (not "0/0").
    expect(describeProgress(pending, now)).toBe('pending: quota: cores 8/8 in use (waiting 1m10s)');
    expect(renderProgress(pending, now)).not.toContain('0/0');
    const queued = job({ state: 'queued', started_at: null, reason: null, partitions: { total: 12, done: 0, failed: 0, running: 0 } });
    expect(describeProgress(queued, now)).toBe('0/12 partitions 0%  queued (waiting 1m10s)');
  });

  it('summarizes the end in one line, with the error when the job failed', () => {
    const failed = job({ state: 'failed', partitions: { total: 12, done: 10, failed: 2, running: 0 }, rows_out: 1_100_000, finished_at: new Date(T0 + 3_725_000).toISOString(), error: 'partition 4: ValueError: bad row 17' });
    expect(summarize(failed)).toBe('failed: 10/12 partitions (2 failed), rows 1,234,567 → 1,100,000, elapsed 1h02m, 96.5 core-seconds; error: partition 4: ValueError: bad row 17');
  });

  it('maps the end state to the exit code scripts branch on', () => {
    expect(exitCodeFor('succeeded')).toBe(0);
    expect(exitCodeFor('failed')).toBe(1);
    expect(exitCodeFor('cancelled')).toBe(3);
    for (const state of ['pending', 'queued', 'running'] as const) expect(exitCodeFor(state)).toBeUndefined();
  });
});

describe('job listings', () => {
  const now = T0 + 60_000;

  it('status shows the progress of a running job, the reason of a pending one and the error of a failed one', () => {
    const running = renderStatus(job(), now);
    expect(running).toContain('state       running\nprogress    [######');
    expect(running).toContain('rows        1,234,567 in → 1,200,000 out');
    expect(running).toContain('bytes       5.0 MiB in → 4.0 MiB out');
    expect(renderStatus(job({ state: 'pending', started_at: null, reason: 'quota: cores 8/8 in use' }), now)).toContain('reason      quota: cores 8/8 in use');
    const failed = renderStatus(job({ state: 'failed', error: 'boom', finished_at: new Date(T0 + 5000).toISOString() }), now);
    expect(failed).toContain('error       boom');
    expect(failed).not.toContain('progress');
    // An ended job has nothing running, whatever the engine's last count said.
    const cancelled = renderStatus(job({ state: 'cancelled', finished_at: new Date(T0 + 5000).toISOString() }), now);
    expect(cancelled).toContain('partitions  3/12 done, 0 failed');
    expect(cancelled).not.toContain('running');
  });

  it('a multi-line error stays on its row, its lines joined, cut to the column', () => {
    const error = 'partition 2 failed after 2 attempts: Traceback (most recent call last):\n  File "job.py", line 3, in process\n    raise ValueError(\'bad row 17\')\nValueError: bad row 17\n';
    const lines = renderJobList([job({ state: 'failed', error })], now, false).split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/ {2}partition 2 failed after 2 attempts: Traceback \(most recent call last\): ⏎ File …$/);
    expect(lines[1]!.slice(lines[1]!.indexOf('partition 2')).length).toBeLessThanOrEqual(80);
  });

  it('the list shows the user column only for --all, and why pending jobs wait', () => {
    const jobs = [job(), job({ id: 'j-2', user: 'bob', state: 'pending', started_at: null, reason: 'quota: cores 8/8 in use' })];
    const mine = renderJobList(jobs, now, false).split('\n');
    expect(mine[0]).toBe('id      name   state    parts  input → output                    cores  age    elapsed  note');
    expect(mine[1]).toBe('j-7f3a  clean  running  3/12   transactions → transactions_norm  4      1m10s  1m00s');
    expect(mine[2]).toBe('j-2     clean  pending  3/12   transactions → transactions_norm  4      1m10s  -        quota: cores 8/8 in use');
    expect(renderJobList(jobs, now, true).split('\n')[2]).toMatch(/^j-2\s+bob\s+clean\s+pending/);
  });

  it('quota shows core-hours with two decimals, where each limit comes from, and the pending jobs', () => {
    const quota: Quota = {
      user: 'alice',
      policy_version: 'v3',
      limits: {
        max_concurrent_jobs: { value: 4, source: 'default', line: 'p, quota, default, max_concurrent_jobs, 4' },
        max_cores: { value: 8, source: 'role', line: 'p, quota, role:analyst, max_cores, 8' },
        max_memory_mb: { value: 16384, source: 'built-in', line: null },
        max_job_runtime_s: { value: 7200, source: 'default', line: 'p, quota, default, max_job_runtime_s, 7200' },
        core_hours_per_day: { value: 100, source: 'user', line: 'p, quota, user:alice, core_hours_per_day, 100' },
        max_storage_mb: { value: 1024, source: 'default', line: 'p2, default, max_storage_mb, 1024' },
      },
      usage: { running_jobs: 1, cores: 4, memory_mb: 4096, core_seconds_24h: 12_345 },
      pending: [],
    };
    const text = renderQuota(quota, now);
    expect(text).toContain('core-hours / 24 h  3.43    100.00  user: p, quota, user:alice, core_hours_per_day, 100');
    expect(text).toContain('cores              4       8       role: p, quota, role:analyst, max_cores, 8');
    expect(text).toContain('memory (MB)        4096    16384   built-in');
    expect(text.endsWith('no pending jobs')).toBe(true);
    const waiting = renderQuota({ ...quota, pending: [{ id: 'j-9', name: 'big', reason: 'quota: cores 8/8 in use', resources: { cores: 8, memory_mb: 1024, time_limit_s: 3600 }, created_at: new Date(T0).toISOString() }] }, now);
    expect(waiting).toContain('j-9  big   8 cores × 1024 MB = 8192 MB, 1h00m  1m00s    quota: cores 8/8 in use');
  });
});

describe('job logs', () => {
  it('show ctx.log lines by their level, other stderr lines labelled stderr, never with an alarm mark', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-joblog-'));
    try {
      const log = JobLog.forJob(dir, 'j1', 64 * 1024);
      log.partition(0, 'stdout', 'plain print');
      log.partition(0, 'stderr', 'INFO partition 0 starting');
      log.partition(1, 'stderr', 'WARNING 3 rows skipped');
      log.partition(1, 'stderr', 'Traceback (most recent call last):');
      log.end();
      expect(readFileSync(join(dir, 'j1.log'), 'utf8')).toBe('[p0] plain print\n[p0] INFO partition 0 starting\n[p1] WARNING 3 rows skipped\n[p1] stderr: Traceback (most recent call last):\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('job errors', () => {
  it('a quota refusal reads as one line with what was asked and allowed', () => {
    expect(quotaLine({ error: 'quota_exceeded', limit: 'max_cores', used: 0, requested: 16, max: 8 })).toBe('quota: 16 cores requested, the limit is 8 (quota_exceeded: max_cores, used 0, requested 16, max 8)');
    expect(quotaLine({ limit: 'max_job_runtime_s', used: 0, requested: 86400, max: 7200 })).toBe('quota: a time limit of 1d00h requested, the limit is 2h00m (quota_exceeded: max_job_runtime_s, used 0, requested 86400, max 7200)');
    expect(quotaLine({ limit: 'core_hours_per_day', used: 95.5, requested: 8, max: 100 })).toBe('quota: 8 core-hours requested with 95.5 in use, the limit is 100 a day (quota_exceeded: core_hours_per_day, used 95.5, requested 8, max 100)');
  });

  it('an unknown job is "no job <id>", and other errors pass unchanged', () => {
    const notFound = jobError(new ApiError(404, 'not_found', 'not found', { error: 'not_found' }), { verb: 'status', id: 'j-1' }) as ApiError;
    expect(notFound.message).toBe('no job j-1');
    expect(notFound.status).toBe(404);
    const forbidden = new ApiError(403, 'forbidden', 'no rule grants alice read on dataset:hr', {});
    expect(jobError(forbidden, { verb: 'submit' })).toBe(forbidden);
  });

  it('a second cancel says once that the job ended; an existing output names --overwrite', () => {
    const again = jobError(new ApiError(409, 'conflict', 'job j-1 has already been cancelled', {}), { verb: 'cancel', id: 'j-1' }) as ApiError;
    expect(again.message).toBe('job j-1 has already been cancelled');
    const other = jobError(new ApiError(409, 'conflict', 'cancelled elsewhere', {}), { verb: 'cancel', id: 'j-1' }) as ApiError;
    expect(other.message).toBe('job j-1 has already ended: cancelled elsewhere');
    const exists = jobError(new ApiError(409, 'conflict', 'dataset scratch/x exists; submit with "mode": "overwrite" to replace it', {}), { verb: 'submit' }) as ApiError;
    expect(exists.message).toBe('dataset scratch/x exists; add --overwrite (mode: overwrite in a job file) to replace it');
  });
});

describe('gatehouse submit', () => {
  it('refuses a bad value with one line and exit code 2, before looking for a login', async () => {
    const result = await runCli(['submit', '--input', 'a', '--output', 'b', '--command', 'sort', '--memory', '4x'], { env: { XDG_CONFIG_HOME: tmpdir() } });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('gatehouse submit: --memory 4x: expected megabytes (1024) or a size such as 512m or 4g\n');
  });
});
