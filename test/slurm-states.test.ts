// Slurm's view of a job array, mapped onto the gateway's job status: states with their reason and
// error, progress per partition, core-seconds from Slurm's elapsed × CPUs; and slurmrestd's answers,
// which fail whenever errors[] is non-empty, even with HTTP 200. Pure functions on a set clock.
import { describe, expect, it } from 'vitest';
import { GatehouseError } from '../src/wire/index.js';
import { arrayTaskIds, checkSlurmResponse, mapSlurmArray, type SlurmTask, slurmTasksOf } from '../src/proxy/slurm/states.js';

const NOW = 1_800_000_000; // seconds, the clock of every case
const iso = (s: number) => new Date(s * 1000).toISOString();

function task(id: number, state: string, extra: Partial<SlurmTask> = {}): SlurmTask {
  const started = !['PENDING'].includes(state);
  return { task_id: id, state, reason: null, start_time: started ? NOW - 100 : 0, end_time: 0, cpus: 2, exit_code: 0, restarts: 0, ...extra };
}
const done = (id: number, extra: Partial<SlurmTask> = {}) => task(id, 'COMPLETED', { start_time: NOW - 100, end_time: NOW - 40, ...extra });

describe('a Slurm array mapped onto a job status', () => {
  it('is queued, with Slurm’s reason in words, while every task is pending', () => {
    const view = mapSlurmArray([task(0, 'PENDING', { reason: 'Resources' }), task(1, 'PENDING', { reason: 'Resources' })], 2, NOW);
    expect(view).toEqual({
      state: 'queued',
      reason: 'waiting in Slurm for free resources (Resources)',
      error: null,
      partitions: { total: 2, done: 0, failed: 0, running: 0 },
      workers: 0,
      attempts: 0,
      started_at: null,
      finished_at: null,
      core_seconds: 0,
    });
    expect(mapSlurmArray([task(0, 'PENDING', { reason: 'Priority' })], 1, NOW).reason).toBe('waiting in Slurm behind jobs of higher priority (Priority)');
    expect(mapSlurmArray([task(0, 'PENDING', { reason: 'QOSMaxCpuPerUserLimit' })], 1, NOW).reason).toBe('waiting in Slurm (QOSMaxCpuPerUserLimit)');
    expect(mapSlurmArray([task(0, 'PENDING', { reason: null })], 1, NOW).reason).toBe('waiting in Slurm');
    // Nodes being readied for it: still waiting, not yet running.
    expect(mapSlurmArray([task(0, 'CONFIGURING')], 1, NOW)).toMatchObject({ state: 'queued', reason: 'waiting in Slurm for its nodes to be ready (CONFIGURING)' });
    // Requeued after a preemption or a node failure: waiting again.
    expect(mapSlurmArray([task(0, 'REQUEUED')], 1, NOW).state).toBe('queued');
  });

  it('is running while a task runs, with progress, workers and core-seconds from elapsed × CPUs', () => {
    const view = mapSlurmArray(
      [done(0), task(1, 'RUNNING', { start_time: NOW - 30, cpus: 4 }), task(2, 'COMPLETING', { start_time: NOW - 50, end_time: NOW - 5 }), task(3, 'PENDING', { reason: 'JobArrayTaskLimit' })],
      4,
      NOW,
    );
    expect(view).toEqual({
      state: 'running',
      reason: null,
      error: null,
      partitions: { total: 4, done: 1, failed: 0, running: 2 },
      workers: 2,
      attempts: 3,
      started_at: iso(NOW - 100),
      finished_at: null,
      // 60 s × 2 CPUs done, 30 s × 4 running (to now), 45 s × 2 completing (to its end)
      core_seconds: 120 + 120 + 90,
    });
  });

  it('counts a suspended task as started but not running, and keeps the job running', () => {
    const view = mapSlurmArray([task(0, 'SUSPENDED')], 1, NOW);
    expect(view).toMatchObject({ state: 'running', workers: 0, partitions: { total: 1, done: 0, failed: 0, running: 0 } });
  });

  it('succeeds when every partition completed, finishing at the last end', () => {
    const view = mapSlurmArray([done(0), done(1, { end_time: NOW - 10, cpus: 1 })], 2, NOW);
    expect(view).toMatchObject({ state: 'succeeded', error: null, reason: null, finished_at: iso(NOW - 10), core_seconds: 60 * 2 + 90 * 1, partitions: { total: 2, done: 2, failed: 0, running: 0 } });
  });

  it('prefers Slurm’s own elapsed when it reports one', () => {
    expect(mapSlurmArray([done(0, { elapsed: 7, cpus: 3 })], 1, NOW).core_seconds).toBe(21);
  });

  for (const [state, error] of [
    ['FAILED', /^partition 1 failed on Slurm \(FAILED, exit status 3\)$/],
    ['TIMEOUT', /^time limit reached on Slurm \(TIMEOUT\) for partition 1; the array was stopped$/],
    ['OUT_OF_MEMORY', /^partition 1 ran out of memory on Slurm \(OUT_OF_MEMORY\)$/],
    ['NODE_FAIL', /^a Slurm node failed while running partition 1 \(NODE_FAIL\)$/],
    ['BOOT_FAIL', /^a Slurm node failed to boot for partition 1 \(BOOT_FAIL\)$/],
    ['DEADLINE', /^partition 1 reached its deadline on Slurm \(DEADLINE\)$/],
    ['PREEMPTED', /^partition 1 was preempted on Slurm \(PREEMPTED\)$/],
  ] as const) {
    it(`fails when a task ends ${state}, naming it and the partition`, () => {
      const view = mapSlurmArray([done(0), task(1, state, { end_time: NOW - 1, exit_code: 3 << 8 }), task(2, 'CANCELLED', { end_time: NOW - 1 })], 3, NOW);
      expect(view.state).toBe('failed');
      expect(view.error).toMatch(error);
      expect(view.partitions).toEqual({ total: 3, done: 1, failed: 1, running: 0 });
      expect(view.finished_at).toBe(iso(NOW - 1));
    });
  }

  it('names the first failed partitions and how many more', () => {
    const tasks = [0, 1, 2, 3, 4].map((i) => task(i, 'FAILED', { end_time: NOW - 1, exit_code: 1 << 8 }));
    expect(mapSlurmArray(tasks, 5, NOW).error).toBe('partitions 0, 1, 2 and 2 more failed on Slurm (FAILED, exit status 1)');
  });

  it('reports a signal rather than an exit status', () => {
    expect(mapSlurmArray([task(0, 'FAILED', { end_time: NOW, exit_code: 9 })], 1, NOW).error).toBe('partition 0 failed on Slurm (FAILED, killed by signal 9)');
  });

  it('is cancelled when tasks were cancelled and none failed, with no error', () => {
    const view = mapSlurmArray([done(0), task(1, 'CANCELLED', { end_time: NOW - 2 }), task(2, 'CANCELLED', { start_time: 0, end_time: NOW - 2 })], 3, NOW);
    expect(view).toMatchObject({ state: 'cancelled', error: null, reason: null, partitions: { total: 3, done: 1, failed: 0, running: 0 }, attempts: 2 });
    // A cancelled task that never started costs nothing.
    expect(view.core_seconds).toBe(60 * 2 + 98 * 2);
  });

  it('stays running while one task is still ending, whatever the others did: a cancelled array leaves no task running', () => {
    expect(mapSlurmArray([task(0, 'CANCELLED', { end_time: NOW }), task(1, 'COMPLETING')], 2, NOW).state).toBe('running');
    expect(mapSlurmArray([task(0, 'TIMEOUT', { end_time: NOW }), task(1, 'RUNNING')], 2, NOW).state).toBe('running');
  });

  it('does not call a job finished while partitions are missing from Slurm’s answer', () => {
    expect(mapSlurmArray([done(0)], 2, NOW)).toMatchObject({ state: 'running', partitions: { total: 2, done: 1, failed: 0, running: 0 } });
    expect(mapSlurmArray([], 2, NOW)).toMatchObject({ state: 'queued' });
  });

  it('counts the retries Slurm made (restarts) in attempts', () => {
    expect(mapSlurmArray([done(0, { restarts: 2 })], 1, NOW).attempts).toBe(3);
  });

  it('treats an unknown state as still running rather than finished', () => {
    expect(mapSlurmArray([task(0, 'SOMETHING_NEW')], 1, NOW)).toMatchObject({ state: 'running' });
  });
});

describe('Slurm job records read from slurmrestd', () => {
  it('reads v0.0.38 records: one per started task, and the pending rest as one record with a task string', () => {
    const jobs = [
      { job_id: 11, array_job_id: 10, array_task_id: 0, job_state: 'COMPLETED', state_reason: 'None', start_time: NOW - 100, end_time: NOW - 40, cpus: 2, exit_code: 0, restart_cnt: 0 },
      { job_id: 12, array_job_id: 10, array_task_id: 1, job_state: 'RUNNING', state_reason: 'None', start_time: NOW - 10, end_time: NOW + 3590, cpus: 2, exit_code: 0, restart_cnt: 1 },
      { job_id: 10, array_job_id: 10, array_task_string: '2-4,6%2', job_state: 'PENDING', state_reason: 'JobArrayTaskLimit', start_time: 0, end_time: 0, cpus: 2, exit_code: 0 },
      { job_id: 99, array_job_id: 98, array_task_id: 0, job_state: 'RUNNING', start_time: NOW, end_time: 0, cpus: 1 },
    ];
    const tasks = slurmTasksOf(jobs, 10);
    expect(tasks.map((t) => [t.task_id, t.state])).toEqual([
      [0, 'COMPLETED'],
      [1, 'RUNNING'],
      [2, 'PENDING'],
      [3, 'PENDING'],
      [4, 'PENDING'],
      [6, 'PENDING'],
    ]);
    expect(tasks[0]).toEqual({ task_id: 0, state: 'COMPLETED', reason: null, start_time: NOW - 100, end_time: NOW - 40, cpus: 2, exit_code: 0, restarts: 0 });
    // A running task's end_time is when its limit would end it: the mapping counts to now.
    expect(mapSlurmArray(tasks, 6, NOW)).toMatchObject({ state: 'running', partitions: { total: 6, done: 1, failed: 0, running: 1 }, core_seconds: 60 * 2 + 10 * 2, attempts: 3 });
    expect(tasks[2]?.reason).toBe('JobArrayTaskLimit');
  });

  it('reads the newer shapes too: states as a list, numbers as {set, number}', () => {
    const jobs = [
      {
        job_id: 21,
        array_job_id: { set: true, infinite: false, number: 20 },
        array_task_id: { set: true, infinite: false, number: 3 },
        job_state: ['FAILED'],
        state_reason: 'NonZeroExitCode',
        start_time: { set: true, number: NOW - 5 },
        end_time: { set: true, number: NOW },
        cpus: { set: true, number: 1 },
        exit_code: { status: ['EXITED'], return_code: { set: true, number: 2 } },
      },
    ];
    const [only] = slurmTasksOf(jobs, 20);
    expect(only).toEqual({ task_id: 3, state: 'FAILED', reason: 'NonZeroExitCode', start_time: NOW - 5, end_time: NOW, cpus: 1, exit_code: 2 << 8, restarts: 0 });
  });

  it('expands array task strings with throttles, ranges and steps', () => {
    expect(arrayTaskIds('0-3%2')).toEqual([0, 1, 2, 3]);
    expect(arrayTaskIds('1,5,7-8')).toEqual([1, 5, 7, 8]);
    expect(arrayTaskIds('0-10:5')).toEqual([0, 5, 10]);
    expect(arrayTaskIds('')).toEqual([]);
    expect(arrayTaskIds('garbage')).toEqual([]);
    expect(arrayTaskIds('0-99999999')).toEqual([]); // never a runaway expansion
  });
});

describe('slurmrestd answers', () => {
  it('passes an answer with an empty errors list', () => {
    expect(checkSlurmResponse(200, { errors: [], job_id: 5 })).toEqual({ errors: [], job_id: 5 });
    expect(checkSlurmResponse(200, { jobs: [] })).toEqual({ jobs: [] });
  });

  it('fails on a non-empty errors list even with HTTP 200, quoting Slurm', () => {
    const err = (() => {
      try {
        checkSlurmResponse(200, { errors: [{ error: 'Invalid partition name specified', errno: 2015 }], job_id: 0 });
      } catch (e) {
        return e as GatehouseError;
      }
      throw new Error('expected a failure');
    })();
    expect(err).toBeInstanceOf(GatehouseError);
    expect(err.code).toBe('not_ready');
    expect(err.message).toBe('Slurm refused the request: Invalid partition name specified (error 2015)');
    expect(err.details).toEqual({ slurm_errors: [{ error: 'Invalid partition name specified', error_number: 2015 }] });
  });

  it('reads the newer error shape (description, error_number) and joins several', () => {
    expect(() =>
      checkSlurmResponse(200, {
        errors: [
          { description: 'Batch job submission failed', error_number: 2072, error: 'Invalid job array specification', source: 'slurm_submit_batch_job()' },
          { error: 'second' },
        ],
      }),
    ).toThrow('Slurm refused the request: Batch job submission failed: Invalid job array specification (error 2072); second');
  });

  it('reads the number v0.0.38 puts in error_code', () => {
    expect(() => checkSlurmResponse(200, { errors: [{ error_code: 2042, error: 'Job is in held state, pending scheduler release' }], job_id: 3 })).toThrow(
      'Slurm refused the request: Job is in held state, pending scheduler release (error 2042)',
    );
  });

  it('fails on an HTTP error without errors, and on a body that is not a JSON object', () => {
    expect(() => checkSlurmResponse(500, { errors: [] })).toThrow('slurmrestd answered HTTP 500');
    expect(() => checkSlurmResponse(200, 'oops')).toThrow('slurmrestd answered something that is not a JSON object');
    expect(() => checkSlurmResponse(200, null)).toThrow('slurmrestd answered something that is not a JSON object');
    expect(() => checkSlurmResponse(200, { errors: 'bad' })).toThrow('slurmrestd answered an errors field that is not a list');
  });

  it('answers 403 forbidden when Slurm refuses the person’s token, so no job runs as someone else', () => {
    for (const error of ['Authentication failure', 'Unable to authenticate user', 'Invalid user id']) {
      let caught: unknown = null;
      try {
        checkSlurmResponse(500, { errors: [{ error, errno: 1 }] });
      } catch (e) {
        caught = e;
      }
      expect((caught as GatehouseError).code, error).toBe('forbidden');
      expect((caught as GatehouseError).status).toBe(403);
    }
  });

  it('keeps control characters from Slurm out of the message', () => {
    expect(() => checkSlurmResponse(200, { errors: [{ error: 'bad\u001b[31m\nline\u202e' }] })).toThrow('Slurm refused the request: bad [31m line');
  });
});
