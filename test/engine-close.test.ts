// JobEngine.close(), in process: it returns only once every worker loop has ended (awaited, not
// slept for), so when it returns no job holds a worker and no loop is left to write to the closed
// job database; the job stays running in the database and the next engine resumes it.
// Real engine as root: real task uids, real bubblewrap where it works.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionFile } from '../src/catalog/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { JobEngine, type JobEngineOptions } from '../src/compute/jobs/job-engine.js';
import { runnerScript } from '../src/compute/runners/index.js';
import { detectIsolation, installRuntime, secureDataRoot } from '../src/compute/sandbox/index.js';
import type { AdmissionClaims, JobSpec, JobStatus } from '../src/wire/index.js';
import { until } from './support/until.js';

const ROOT = process.getuid?.() === 0;
const UIDS = '233000-233099';
const PARTS = 3;

/** Whether this process holds `file` open. */
function openHere(file: string): boolean {
  return readdirSync('/proc/self/fd').some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // closed meanwhile
    }
  });
}

describe.skipIf(!ROOT)('closing the job engine', () => {
  let base = '';
  let options: JobEngineOptions;
  const problems: string[] = [];

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'gh-engine-close-'));
    await chmod(base, 0o711); // task uids walk down to the data root
    const dataRoot = join(base, 'data');
    await mkdir(dataRoot);
    await writeDataset(dataRoot, 'numbers', {
      format: 'csv',
      columns: ['n'],
      owner: 'alice',
      labels: [],
      produced_by: 'test',
      partitions: Array.from({ length: PARTS }, (_, p) => ({ text: `n\n${p}\n`, rows: 1 })),
    });
    const isolation = await detectIsolation({ mode: 'auto', taskUids: UIDS });
    const { stagingRoot } = await secureDataRoot(dataRoot, isolation);
    const runtimeDir = await installRuntime(stagingRoot, [runnerScript('python'), runnerScript('node')]);
    const note = (level: string) => (o: object, m: string) => {
      if (level === 'error') problems.push(`${m} ${JSON.stringify(o)}`);
    };
    options = {
      dataRoot,
      stateDir: join(base, 'state'),
      slots: PARTS,
      isolation,
      runtimeDir,
      python: '/usr/bin/python3',
      maxOutputBytes: 256 * 1024 * 1024,
      logMaxBytes: 256 * 1024,
      log: { info: note('info'), warn: note('warn'), error: note('error') },
    };
  }, 60_000);

  afterAll(async () => {
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('waits for a worker loop keeping a partition: the partition is recorded, not redone by the next engine', async () => {
    // One partition whose output takes the engine a while to count (50 million lines); the engine
    // is closed while it counts them (it holds the file open: this process is the engine).
    const spec: JobSpec = {
      name: 'long-count',
      input: 'numbers',
      output: 'numbers_counted',
      runtime: 'command',
      argv: ['/bin/sh', '-c', 'yes 1 | head -c 100000000 > "$0"', '{output}'],
      partitions: [0],
      max_attempts: 1,
      resources: { cores: 1, memory_mb: 256, time_limit_s: 120 },
    };
    const now = Math.floor(Date.now() / 1000);
    const claims: AdmissionClaims = { job: 'close-test', user: 'alice', spec: '', granted: spec.resources, jti: randomUUID(), exp: now + 60, iat: now };
    const engine = await JobEngine.open(options);
    let closed = false;
    try {
      await engine.submit(spec, claims);
      // A first attempt writes the partition's own name (no attempt file to rename).
      const attempt = join(options.dataRoot, '.staging', 'close-test', 'out', partitionFile(0, 'csv'));
      await until(async () => (openHere(attempt) ? true : undefined), 60_000, 'the engine counting the rows of the output');

      await engine.close();
      closed = true;
      // Nothing is polled here: close() itself waited for the loop, which recorded the partition
      // in the job database before it closed, and let go of its worker.
      expect(problems).toEqual([]);
      expect(engine.active()).toMatchObject([{ id: 'close-test', state: 'running', workers: 0 }]);

      // The job was left running; the next engine finds its one partition done and commits it.
      const again = await JobEngine.open(options);
      try {
        const finished = await new Promise<JobStatus>((resolve) => again.once('finished', resolve));
        expect(finished).toMatchObject({ id: 'close-test', state: 'succeeded', partitions: { total: 1, done: 1 }, rows_out: 49_999_999, attempts: 1 });
        const log = await readFile(again.logOf('close-test')!.file, 'utf8');
        expect(log).toContain('engine restarted: 1 of 1 partitions were committed');
      } finally {
        await again.close();
      }
    } finally {
      if (!closed) await engine.close();
    }
  }, 120_000);

  it('counts a partition redone after a restart once against engine.max_output_mb', async () => {
    // Partition 0 writes 600 KiB and is kept; partition 1 waits for `go` in the job's work folder. The
    // engine is closed meanwhile, partition 0's kept file removed (a hand-cleaned staging), and the next
    // engine redoes it: 600 KiB counted once is under the 1 MiB limit, counted twice it is over.
    const limited = { ...options, stateDir: join(base, 'state-limit'), maxOutputBytes: 1024 * 1024 };
    const spec: JobSpec = {
      name: 'redone',
      input: 'numbers',
      output: 'numbers_redone',
      runtime: 'command',
      argv: ['/bin/sh', '-c', 'if [ "$1" = 1 ]; then while [ ! -e go ]; do sleep 0.05; done; echo n > "$0"; else yes 1 | head -c 614400 > "$0"; fi', '{output}', '{partition}'],
      partitions: [0, 1],
      max_attempts: 1,
      resources: { cores: 1, memory_mb: 256, time_limit_s: 120 },
    };
    const now = Math.floor(Date.now() / 1000);
    const claims: AdmissionClaims = { job: 'redone-test', user: 'alice', spec: '', granted: spec.resources, jti: randomUUID(), exp: now + 60, iat: now };
    const engine = await JobEngine.open(limited);
    let closed = false;
    try {
      await engine.submit(spec, claims);
      await until(() => (engine.status('redone-test')?.partitions.done === 1 ? true : undefined), 60_000, 'partition 0 kept');
      await engine.close();
      closed = true;
    } finally {
      if (!closed) await engine.close();
    }
    await rm(join(limited.dataRoot, '.staging', 'redone-test', 'out', partitionFile(0, 'csv')));
    const again = await JobEngine.open(limited);
    try {
      const finished = new Promise<JobStatus>((resolve) => again.on('finished', (s: JobStatus) => s.id === 'redone-test' && resolve(s)));
      const work = join(limited.dataRoot, '.staging', 'redone-test', 'work');
      await until(() => (existsSync(work) ? true : undefined), 60_000, 'the job resumed');
      await writeFile(join(work, 'go'), '');
      const end = await finished;
      expect(end.error ?? null).toBeNull();
      expect(end).toMatchObject({ state: 'succeeded', partitions: { total: 2, done: 2 }, bytes_out: 614400 + 2 });
    } finally {
      await again.close();
    }
  }, 120_000);
});
