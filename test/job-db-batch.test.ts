// The engine writes partition bookkeeping in batches on a timer. A database error there (a full or
// read-only disk) has no caller to go to: it must neither end the engine nor lose the updates, which
// are written once the database takes them again, and a direct flush reports the error to its caller.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobDb } from '../src/compute/jobs/job-db.js';
import type { JobSpec } from '../src/wire/index.js';

const spec: JobSpec = { name: 'j', input: 'words', output: 'scratch/o', runtime: 'python', source: 'def process(i, o, ctx):\n    pass\n', resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } };
const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fresh(): { jobs: JobDb; readOnly(on: boolean): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gh-jobdb-'));
  dirs.push(dir);
  const jobs = new JobDb(join(dir, 'jobs.db'));
  jobs.insertJob({ id: 'j1', user: 'alice', spec, granted: spec.resources, created_at: new Date(0).toISOString() }, [{ input_idx: 0, rows: 1, bytes: 4 }]);
  const db = (jobs as unknown as { db: { pragma(s: string): unknown } }).db;
  return { jobs, readOnly: (on) => void db.pragma(`query_only = ${on ? 'ON' : 'OFF'}`) };
}

describe("the engine's batched partition bookkeeping", () => {
  it('survives a failed write on its timer and writes the update once the database takes it', () => {
    vi.useFakeTimers();
    const { jobs, readOnly } = fresh();
    readOnly(true);
    jobs.partitionDone('j1', 0, { rows_out: 1, bytes_out: 4, seconds: 0.1 });
    expect(() => vi.advanceTimersByTime(1000)).not.toThrow();
    readOnly(false);
    vi.advanceTimersByTime(1000);
    readOnly(true); // nothing left to write: a read now needs no write
    expect(jobs.partitions('j1')[0]).toMatchObject({ state: 'done', rows_out: 1 });
    jobs.close();
  });

  it('reports the error to a direct caller and keeps the update for the next flush', () => {
    const { jobs, readOnly } = fresh();
    readOnly(true);
    jobs.partitionDone('j1', 0, { rows_out: 1, bytes_out: 4, seconds: 0.1 });
    expect(() => jobs.flush()).toThrow();
    readOnly(false);
    jobs.flush();
    expect(jobs.partitions('j1')[0]).toMatchObject({ state: 'done', rows_out: 1 });
    jobs.close();
  });

  it('returns the partition rows it inserted as the database holds them (a new run starts from those)', () => {
    const { jobs } = fresh();
    const parts = jobs.insertJob({ id: 'j2', user: 'bob', spec, granted: spec.resources, created_at: new Date(0).toISOString() }, [
      { input_idx: 3, rows: 10, bytes: 40 },
      { input_idx: 1, rows: 2, bytes: 8 },
    ]);
    expect(parts).toEqual(jobs.partitions('j2'));
    expect(parts.map((p) => [p.idx, p.input_idx, p.state])).toEqual([
      [0, 3, 'todo'],
      [1, 1, 'todo'],
    ]);
    jobs.close();
  });

  it("writes a partition's start and end waiting in one batch as one update, its attempt still counted", () => {
    const { jobs } = fresh();
    jobs.partitionRunning('j1', 0);
    jobs.partitionDone('j1', 0, { rows_out: 1, bytes_out: 4, seconds: 0.1 });
    jobs.flush();
    expect(jobs.partitions('j1')[0]).toMatchObject({ state: 'done', attempts: 1, rows_out: 1, bytes_out: 4 });
    // Started in one batch and kept in the next: the same row.
    jobs.partitionTodo('j1', 0);
    jobs.partitionRunning('j1', 0);
    jobs.flush();
    expect(jobs.partitions('j1')[0]).toMatchObject({ state: 'running', attempts: 2 });
    jobs.partitionDone('j1', 0, { rows_out: 2, bytes_out: 8, seconds: 0.2 });
    jobs.flush();
    expect(jobs.partitions('j1')[0]).toMatchObject({ state: 'done', attempts: 2, rows_out: 2, bytes_out: 8 });
    jobs.close();
  });
});
