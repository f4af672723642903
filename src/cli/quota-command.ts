// `gatehouse quota`: the caller's limits, what is in use, where each limit comes from (so a user
// knows whom to ask and which policy line to quote), and the jobs waiting for room.
import { structured } from './output.js';
import { QUOTA_LIMITS, type QuotaLimit } from '../policy/lean.js';
import { call, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { jobError } from './job-errors.js';
import { formatDuration } from './job-view.js';
import { printLine, visible } from './safe-text.js';
import { table } from './table.js';

export interface LimitValue {
  value: number;
  source: 'user' | 'role' | 'default' | 'built-in';
  /** The policy line that set it; null for built-in limits. */
  line: string | null;
}

/** The gateway's answer to GET /v1/quota. */
export interface Quota {
  user: string;
  policy_version: string;
  limits: Record<QuotaLimit, LimitValue>;
  usage: { running_jobs: number; cores: number; memory_mb: number; core_seconds_24h: number };
  /** `memory_mb` is per worker; `memory_mb_total` (cores × memory_mb) is what the job will hold. */
  pending: { id: string; name: string; reason: string; resources: { cores: number; memory_mb: number; time_limit_s: number }; memory_mb_total?: number; created_at: string }[];
}

const hours = (n: number) => n.toFixed(2);

/** Each limit's row label, its usage now, and how its values read. */
const ROWS: Record<QuotaLimit, { label: string; used: (q: Quota) => string; max: (n: number) => string }> = {
  max_concurrent_jobs: { label: 'running jobs', used: (q) => String(q.usage.running_jobs), max: String },
  max_cores: { label: 'cores', used: (q) => String(q.usage.cores), max: String },
  max_memory_mb: { label: 'memory (MB)', used: (q) => String(q.usage.memory_mb), max: String },
  max_job_runtime_s: { label: 'time per job', used: () => '-', max: formatDuration },
  core_hours_per_day: { label: 'core-hours / 24 h', used: (q) => hours(q.usage.core_seconds_24h / 3600), max: hours },
  // Counted at upload (datasets owned plus staging), not held by jobs: not shown as in use here.
  max_storage_mb: { label: 'storage (MB)', used: () => '-', max: String },
};

export async function quota(target: Target, json: boolean): Promise<number> {
  let answer: Quota;
  try {
    answer = await call<Quota>(target, 'GET', '/v1/quota', { token: await accessToken(target) });
  } catch (err) {
    throw jobError(err, { verb: 'quota' });
  }
  printLine(json ? structured(answer) : renderQuota(answer, Date.now()));
  return 0;
}

export function renderQuota(q: Quota, now: number): string {
  const limits = QUOTA_LIMITS.filter((name) => q.limits[name] !== undefined).map((name) => {
    const { value, source, line } = q.limits[name];
    const row = ROWS[name];
    return [row.label, row.used(q), row.max(value), line ? `${source}: ${line}` : source];
  });
  return [`quota for ${visible(q.user)} (policy ${visible(q.policy_version)})`, '', table(['limit', 'in use', 'max', 'from'], limits), '', renderPending(q, now)].join('\n');
}

function renderPending(q: Quota, now: number): string {
  if (q.pending.length === 0) return 'no pending jobs';
  const rows = q.pending.map((p) => [
    p.id,
    p.name,
    `${p.resources.cores} core${p.resources.cores === 1 ? '' : 's'} × ${p.resources.memory_mb} MB = ${p.memory_mb_total ?? p.resources.cores * p.resources.memory_mb} MB, ${formatDuration(p.resources.time_limit_s)}`,
    formatDuration((now - Date.parse(p.created_at)) / 1000),
    p.reason,
  ]);
  return `pending jobs:\n${table(['id', 'name', 'asks', 'waiting', 'reason'], rows)}`;
}
