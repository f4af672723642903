
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../src/policy/index.js';
import { checkQuota, limitsFor, NO_USAGE } from '../src/quota/index.js';
import { TEST_POLICIES } from './support/gatehouse.js';

const policy = await loadPolicy(TEST_POLICIES);
const analyst = limitsFor(policy, { user: 'alice', groups: ['analysts'] });
const job = { cores: 4, memory_mb: 4096, time_limit_s: 3600 };

describe('limits for a user', () => {
  it('come from the most generous of their roles and name the policy version', () => {
    expect(analyst.limits).toEqual({ max_concurrent_jobs: 4, max_cores: 8, max_memory_mb: 16384, max_job_runtime_s: 14400, core_hours_per_day: 64, max_storage_mb: 10240 });
    expect(analyst.policyVersion).toBe(policy.version);
    expect(limitsFor(policy, { user: 'dave', groups: ['contractors'] }).limits).toMatchObject({ max_cores: 4, max_concurrent_jobs: 2 });
  });
});

describe('a request against limits and usage', () => {
  it('fits when there is room', () => {
    expect(checkQuota(analyst.limits, NO_USAGE, job)).toEqual({ verdict: 'fits' });
  });

  it('waits, with the reason people read, when the limits allow it but usage does not', () => {
    expect(checkQuota(analyst.limits, { ...NO_USAGE, running_jobs: 2, cores: 8 }, job)).toEqual({ verdict: 'wait', limit: 'max_cores', used: 8, requested: 4, max: 8, reason: 'quota: cores 8/8 in use' });
    expect(checkQuota(analyst.limits, { ...NO_USAGE, running_jobs: 4, cores: 4 }, { ...job, cores: 1 })).toMatchObject({ verdict: 'wait', reason: 'quota: jobs 4/4 in use' });
    expect(checkQuota(analyst.limits, { ...NO_USAGE, running_jobs: 1, cores: 1, memory_mb: 14000 }, job)).toMatchObject({ verdict: 'wait', limit: 'max_memory_mb', reason: 'quota: memory MB 14000/16384 in use' });
  });

  it('refuses at once what could never fit, and a spent day', () => {
    expect(checkQuota(analyst.limits, NO_USAGE, { ...job, cores: 16 })).toEqual({ verdict: 'refuse', limit: 'max_cores', used: 0, requested: 16, max: 8, reason: 'quota: 16 cores requested, the limit is 8' });
    expect(checkQuota(analyst.limits, NO_USAGE, { ...job, time_limit_s: 20_000 })).toMatchObject({ verdict: 'refuse', limit: 'max_job_runtime_s' });
    expect(checkQuota(analyst.limits, NO_USAGE, { ...job, memory_mb: 32_768 })).toMatchObject({ verdict: 'refuse', limit: 'max_memory_mb' });
    expect(checkQuota(analyst.limits, { ...NO_USAGE, core_seconds_24h: 64 * 3600 }, job)).toMatchObject({ verdict: 'refuse', limit: 'core_hours_per_day', used: 64, max: 64 });
    expect(checkQuota(analyst.limits, { ...NO_USAGE, core_seconds_24h: 64 * 3600 - 18 }, job)).toEqual({ verdict: 'fits' }); // 63.995 h: not yet spent
    expect(checkQuota({ ...analyst.limits, max_concurrent_jobs: 0 }, NO_USAGE, job)).toMatchObject({ verdict: 'refuse', limit: 'max_concurrent_jobs' });
  });
});
