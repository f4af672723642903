// The limits half of admission: a user's limits (from policy, through their roles) against what a
// job asks for and what they already hold. The ledger and the pending queue (the job path) call
// this with usage they keep atomically; here is only the arithmetic and the words for it.
import type { Subject } from '../identity/index.js';
import { type Limits, type PolicySnapshot, type QuotaLimit, resolveQuota, type ResolvedQuota } from '../policy/index.js';

/** What one job asks for: up to `cores` workers at once, each with `memory_mb`. */
export interface ResourceRequest {
  cores: number;
  /** Per worker (the engine gives each worker process this much), not per job. */
  memory_mb: number;
  time_limit_s: number;
}

/**
 * The memory a job really holds: the engine runs up to `cores` workers of a job at once and gives
 * each `memory_mb`, so a 4-core job at 256 MB a worker holds 1024 MB of max_memory_mb.
 */
export function heldMemoryMb(r: Pick<ResourceRequest, 'cores' | 'memory_mb'>): number {
  return r.cores * r.memory_mb;
}

/** `2 workers × 768 MB = 1536 MB`: how a job's memory reads in refusals. */
export function memoryWords(r: Pick<ResourceRequest, 'cores' | 'memory_mb'>): string {
  return `${r.cores} worker${r.cores === 1 ? '' : 's'} × ${r.memory_mb} MB = ${heldMemoryMb(r)} MB`;
}

/** What a user holds now (memory summed over every worker of every job), and has used in the last 24 hours. */
export interface Usage {
  running_jobs: number;
  cores: number;
  memory_mb: number;
  core_seconds_24h: number;
}

export const NO_USAGE: Usage = { running_jobs: 0, cores: 0, memory_mb: 0, core_seconds_24h: 0 };

export type QuotaCheck =
  | { verdict: 'fits' }
  /** Fits the limits but not what is in use now: the job waits in the pending queue. */
  | { verdict: 'wait'; limit: QuotaLimit; used: number; requested: number; max: number; reason: string }
  /** Could never fit, or the day's budget is spent: refused at once (403 quota_exceeded). */
  | { verdict: 'refuse'; limit: QuotaLimit; used: number; requested: number; max: number; reason: string };

export function limitsFor(policy: PolicySnapshot, subject: Subject): { limits: Limits; detail: ResolvedQuota; policyVersion: string } {
  return { ...resolveQuota(policy, subject), policyVersion: policy.version };
}

/** How a held resource is named in a pending job's reason. */
const HELD: Partial<Record<QuotaLimit, string>> = { max_concurrent_jobs: 'jobs', max_cores: 'cores', max_memory_mb: 'memory MB' };

/** Checks a request against limits and usage; the first limit that stops it decides. */
export function checkQuota(limits: Limits, usage: Usage, request: ResourceRequest): QuotaCheck {
  const refuse = (limit: QuotaLimit, used: number, requested: number, why: string): QuotaCheck => ({ verdict: 'refuse', limit, used, requested, max: limits[limit], reason: `quota: ${why}` });
  const wait = (limit: QuotaLimit, used: number, requested: number): QuotaCheck => ({ verdict: 'wait', limit, used, requested, max: limits[limit], reason: `quota: ${HELD[limit]} ${used}/${limits[limit]} in use` });

  // Never fits, whatever else ends.
  if (limits.max_concurrent_jobs < 1) return refuse('max_concurrent_jobs', usage.running_jobs, 1, 'no jobs allowed (max_concurrent_jobs is 0)');
  if (request.cores > limits.max_cores) return refuse('max_cores', usage.cores, request.cores, `${request.cores} cores requested, the limit is ${limits.max_cores}`);
  const memory = heldMemoryMb(request);
  if (memory > limits.max_memory_mb) return refuse('max_memory_mb', usage.memory_mb, memory, `${memoryWords(request)} requested, the limit is ${limits.max_memory_mb} MB`);
  if (request.time_limit_s > limits.max_job_runtime_s) return refuse('max_job_runtime_s', 0, request.time_limit_s, `a time limit of ${request.time_limit_s} s requested, the longest allowed is ${limits.max_job_runtime_s} s`);
  if (usage.core_seconds_24h >= limits.core_hours_per_day * 3600) {
    const hours = Math.floor((usage.core_seconds_24h / 3600) * 100) / 100; // shown, never compared
    return refuse('core_hours_per_day', hours, 0, `${hours} of ${limits.core_hours_per_day} core-hours used in the last 24 h`);
  }

  // Fits the limits; waits until enough is free.
  if (usage.running_jobs + 1 > limits.max_concurrent_jobs) return wait('max_concurrent_jobs', usage.running_jobs, 1);
  if (usage.cores + request.cores > limits.max_cores) return wait('max_cores', usage.cores, request.cores);
  if (usage.memory_mb + memory > limits.max_memory_mb) return wait('max_memory_mb', usage.memory_mb, memory);
  return { verdict: 'fits' };
}
