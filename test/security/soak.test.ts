// The soak (`npm run soak`, bench/soak/): a short bounded run end to end — its own stack on
// 127.0.0.1, the demo users and generated people at work, and every check after it passed — and
// each check shown to fail on what it exists to catch.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobsEndedWell, noJobRanTwice, noServerErrors, onlyExpectedAnswers, trailVerifies, usageDrained, usageMatchesJobs } from '../../bench/soak/checks.js';
import { routeOf } from '../../bench/soak/client.js';
import type { Report } from '../../bench/soak/main.js';
import { parseOptions } from '../../bench/soak/main.js';
import { cleanEnv, ROOT } from '../support/gatehouse.js';
import { storeConfig } from '../support/test-store.js';

const REQUESTS = 200;
const PEOPLE = 3;

function soak(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'gatehouse-soak.js'), ...args], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // A soak that does not end by itself is a failure the test must report, not wait out.
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function reportOf(stdout: string): Report | undefined {
  try {
    return JSON.parse(stdout) as Report;
  } catch {
    return undefined;
  }
}

describe('npm run soak', () => {
  it(`runs ${REQUESTS} requests of ${4 + PEOPLE} people on its own stack and passes every check`, async () => {
    // The run's store: in the postgres project a fresh database, so the ledger is checked under load there too.
    const { store } = storeConfig();
    const onStore = store ? ['--store-url', store.url, '--store-password-file', store.password_file] : [];
    const run = await soak(['--requests', String(REQUESTS), '--seconds', '30', '--people', String(PEOPLE), '--json', ...onStore]);
    // The failed checks first (their findings are in the report, not on stderr), then the exit code.
    const report = reportOf(run.stdout);
    expect(report?.checks.filter((c) => !c.ok) ?? 'no report on stdout', run.stderr.slice(-4000)).toEqual([]);
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
    if (report === undefined) throw new Error('unreachable: checked above');
    expect(report.checks.map((c) => c.name)).toEqual([
      'no 5xx',
      'only expected answers',
      'quota usage equals what runs',
      'every job ended, none failed',
      'usage back to zero when every job ended',
      'the trail verifies',
      'no job ran twice',
    ]);
    expect(report.ok).toBe(true);
    // On the store it was given, and the report does not repeat a password a URL may carry.
    expect(report.options.storeUrl).toBe(store?.url ?? '');
    expect(report.people).toBe(4 + PEOPLE);
    // Bounded: the budget is checked before each action, and an action is at most a login's few requests.
    expect(report.requests).toBeGreaterThan(0);
    expect(report.requests).toBeLessThanOrEqual(REQUESTS + report.people * 5);
    expect(report.errors).toEqual({});
    // Everyone logged in, and the load touched the job path end to end.
    const routes = Object.fromEntries(report.routes.map((r) => [r.route, r]));
    expect(routes['POST /v1/auth/device/token']?.statuses['200']).toBeGreaterThanOrEqual(report.people);
    for (const route of ['GET /v1/datasets', 'POST /v1/jobs', 'GET /v1/jobs/:id']) {
      expect(routes[route]?.count, route).toBeGreaterThan(0);
      expect(routes[route]!.p99_ms).toBeGreaterThanOrEqual(routes[route]!.p50_ms);
    }
    expect(report.jobs.submitted).toBeGreaterThan(0);
    expect(report.jobs.failed).toBe(0);
  }, 180_000);

  it('refuses arguments it does not know, with exit 2 and the usage line', async () => {
    const run = await soak(['--minutes', 'soon']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--minutes needs a number');
    expect(run.stderr).toContain('usage: npm run soak');
  });
});

describe('the soak checks catch what they are for', () => {
  it('parses its bounds: minutes or seconds, requests, people; refuses the rest', () => {
    expect(parseOptions(['--minutes', '2', '--requests', '500'])).toMatchObject({ seconds: 120, requests: 500 });
    expect(parseOptions(['--seconds', '20', '--people', '0', '--json'])).toMatchObject({ seconds: 20, people: 0, json: true });
    expect(parseOptions(['--requests', '1.5'])).toMatch(/--requests needs a number/);
    expect(parseOptions(['--seconds', '0'])).toMatch(/above 0/);
    expect(parseOptions(['--people', '501'])).toMatch(/at most 500/);
    expect(parseOptions(['--host', '0.0.0.0'])).toMatch(/unknown argument --host/);
    expect(parseOptions(['--store-url', 'postgres://soak@db:5432/soak', '--store-password-file', 'pw'])).toMatchObject({ storeUrl: 'postgres://soak@db:5432/soak', storePasswordFile: join(process.cwd(), 'pw') });
    expect(parseOptions(['--store-url', 'mysql://soak:secret@db/soak'])).toBe('--store-url needs a postgres:// URL');
    expect(parseOptions(['--store-password-file', 'pw'])).toBe('--store-password-file only with --store-url');
    expect(parseOptions(['--store-url'])).toBe('--store-url needs a value');
  });

  it('folds ids out of routes, so p50/p99 are per route', () => {
    expect(routeOf('GET', '/v1/jobs/j0123456789ab/logs?follow=1')).toBe('GET /v1/jobs/:id/logs');
    expect(routeOf('DELETE', '/v1/jobs/j0123456789ab')).toBe('DELETE /v1/jobs/:id');
    expect(routeOf('GET', '/v1/jobs?all=1')).toBe('GET /v1/jobs');
    expect(routeOf('DELETE', '/v1/certs/0A1B')).toBe('DELETE /v1/certs/:serial');
    expect(routeOf('GET', '/v1/certs/crl')).toBe('GET /v1/certs/crl');
  });

  it('no 5xx and only expected answers', () => {
    expect(noServerErrors([200, 201, 403, 409]).ok).toBe(true);
    expect(noServerErrors([200, 503, 200])).toMatchObject({ ok: false, detail: '1 of 3 answers were 5xx' });
    expect(onlyExpectedAnswers(new Map()).ok).toBe(true);
    expect(onlyExpectedAnswers(new Map([['unexpected GET /v1/jobs/:id 404 not_found', 3]]))).toMatchObject({ ok: false, detail: expect.stringContaining('3× unexpected GET /v1/jobs/:id 404') });
  });

  it('quota usage equals what runs, per user', () => {
    const usage = (running_jobs: number, cores = running_jobs, memory_mb = 256 * running_jobs) => ({ running_jobs, cores, memory_mb });
    const jobs = [
      { id: 'a', state: 'running', user: 'alice' },
      { id: 'b', state: 'queued', user: 'alice' },
      { id: 'c', state: 'pending', user: 'alice' },
      { id: 'd', state: 'succeeded', user: 'alice' },
    ];
    expect(usageMatchesJobs([{ user: 'alice', usage: usage(2), jobs }]).ok).toBe(true);
    // A release that never happened (a leak) and a job running off the books (a double release).
    expect(usageMatchesJobs([{ user: 'alice', usage: usage(3), jobs }])).toMatchObject({ ok: false, detail: 'alice: quota says 3 running, the job list 2' });
    expect(usageMatchesJobs([{ user: 'alice', usage: usage(1), jobs }]).ok).toBe(false);
    expect(usageMatchesJobs([{ user: 'bob', usage: usage(0, 4, 0), jobs: [] }])).toMatchObject({ ok: false, detail: expect.stringContaining('nothing runs but 4 cores') });
    expect(usageDrained([{ user: 'alice', usage: usage(0), pending: 0 }]).ok).toBe(true);
    expect(usageDrained([{ user: 'alice', usage: usage(0, 0, 256), pending: 0 }]).ok).toBe(false);
    expect(usageDrained([{ user: 'alice', usage: usage(0), pending: 1 }]).ok).toBe(false);
  });

  it('the trail verifies, and no job ran twice', () => {
    expect(trailVerifies({ ok: true, events: 12 })).toMatchObject({ ok: true, detail: '12 events' });
    expect(trailVerifies({ ok: false, problems: [{ kind: 'hash_mismatch' }] }).ok).toBe(false);
    expect(trailVerifies({ status: 403 }).ok).toBe(false);
    const start = (job: string) => ({ action: 'job.start', object: `job:${job}` });
    expect(noJobRanTwice([start('a'), start('b'), { action: 'job.finish', object: 'job:a' }]).ok).toBe(true);
    expect(noJobRanTwice([start('a'), start('b'), start('a')])).toMatchObject({ ok: false, detail: 'job:a started 2 times' });
  });

  it('every job ended, none failed', () => {
    expect(jobsEndedWell([{ id: 'a', state: 'succeeded', cancelled: false }, { id: 'b', state: 'cancelled', cancelled: true }]).ok).toBe(true);
    expect(jobsEndedWell([{ id: 'a', state: 'running', cancelled: false }])).toMatchObject({ ok: false, detail: 'a still running' });
    expect(jobsEndedWell([{ id: 'a', state: 'failed', cancelled: false }])).toMatchObject({ ok: false, detail: 'a failed' });
  });
});

