// What the soak asserts once the load stops, as pure functions over what it read back from the
// gateway, so each can be shown to fail on a bad input (test/security/soak.test.ts does).

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface JobLine {
  id: string;
  state: string;
  user: string;
}

export interface Usage {
  running_jobs: number;
  cores: number;
  memory_mb: number;
}

const ACTIVE = ['queued', 'running'];

/** No answer of the gateway was a 5xx. */
export function noServerErrors(statuses: readonly number[]): Check {
  const bad = statuses.filter((s) => s >= 500);
  return { name: 'no 5xx', ok: bad.length === 0, detail: `${bad.length} of ${statuses.length} answers were 5xx` };
}

/** Every answer was one the scenario expects (no unexpected 4xx, no network failure, no timeout). */
export function onlyExpectedAnswers(errors: ReadonlyMap<string, number>): Check {
  const total = [...errors.values()].reduce((a, b) => a + b, 0);
  const first = [...errors.entries()].sort((a, b) => b[1] - a[1])[0];
  return { name: 'only expected answers', ok: total === 0, detail: total === 0 ? 'every answer was one the scenario allows' : `${total} unexpected, most often ${first![1]}× ${first![0]}` };
}

/**
 * The quota ledger holds exactly the jobs that run: for each user, usage.running_jobs equals the
 * number of their jobs the gateway lists as queued (admitted, handed to the engine) or running.
 */
export function usageMatchesJobs(users: readonly { user: string; usage: Usage; jobs: readonly JobLine[] }[]): Check {
  const problems: string[] = [];
  let running = 0;
  for (const u of users) {
    const active = u.jobs.filter((j) => j.user === u.user && ACTIVE.includes(j.state)).length;
    running += active;
    if (u.usage.running_jobs !== active) problems.push(`${u.user}: quota says ${u.usage.running_jobs} running, the job list ${active}`);
    if (active === 0 && (u.usage.cores !== 0 || u.usage.memory_mb !== 0)) problems.push(`${u.user}: nothing runs but ${u.usage.cores} cores and ${u.usage.memory_mb} MB are held`);
  }
  return { name: 'quota usage equals what runs', ok: problems.length === 0, detail: problems.length === 0 ? `${users.length} users, ${running} jobs running` : problems.slice(0, 5).join('; ') };
}

/** Once everything ended, nobody holds anything. */
export function usageDrained(users: readonly { user: string; usage: Usage; pending: number }[]): Check {
  const held = users.filter((u) => u.usage.running_jobs !== 0 || u.usage.cores !== 0 || u.usage.memory_mb !== 0 || u.pending !== 0);
  return {
    name: 'usage back to zero when every job ended',
    ok: held.length === 0,
    detail: held.length === 0 ? `${users.length} users hold nothing` : held.slice(0, 5).map((u) => `${u.user}: ${JSON.stringify(u.usage)}, ${u.pending} pending`).join('; '),
  };
}

/** GET /v1/audit/verify said ok. */
export function trailVerifies(report: unknown): Check {
  const r = (report ?? {}) as { ok?: unknown; events?: unknown; problems?: unknown };
  const ok = r.ok === true;
  const events = typeof r.events === 'number' ? `${r.events} events` : 'intact';
  return { name: 'the trail verifies', ok, detail: ok ? events : `verify answered ${JSON.stringify(report).slice(0, 300)}` };
}

/** Each job id has at most one job.start event in the trail. */
export function noJobRanTwice(events: readonly { action: string; object: string }[]): Check {
  const starts = new Map<string, number>();
  for (const e of events) if (e.action === 'job.start') starts.set(e.object, (starts.get(e.object) ?? 0) + 1);
  const twice = [...starts.entries()].filter(([, n]) => n > 1);
  return {
    name: 'no job ran twice',
    ok: twice.length === 0,
    detail: twice.length === 0 ? `${starts.size} jobs started, each once` : twice.slice(0, 5).map(([job, n]) => `${job} started ${n} times`).join('; '),
  };
}

/** Every job the soak submitted reached an end, and none that it let run failed. */
export function jobsEndedWell(jobs: readonly { id: string; state: string; cancelled: boolean }[]): Check {
  const open = jobs.filter((j) => !['succeeded', 'failed', 'cancelled'].includes(j.state));
  const failed = jobs.filter((j) => j.state === 'failed');
  const problems = [...open.map((j) => `${j.id} still ${j.state}`), ...failed.map((j) => `${j.id} failed`)];
  return { name: 'every job ended, none failed', ok: problems.length === 0, detail: problems.length === 0 ? `${jobs.length} jobs ended` : problems.slice(0, 5).join('; ') };
}
