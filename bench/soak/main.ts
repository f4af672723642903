// `npm run soak -- [--minutes N | --seconds N] [--requests M] [--people K] [--seed S] [--json] [--keep]
// [--store-url postgres://... [--store-password-file FILE]]`: starts its own Gatehouse on 127.0.0.1
// (world.ts), on its embedded store or on the given empty PostgreSQL database, lets the demo users and
// K generated people work it at once (people.ts) until N minutes or M requests, whichever comes first,
// then stops the load and checks what must hold after any amount of use (checks.ts). Prints requests/s,
// p50/p99 per route and errors by kind; exits 1 when a check fails, 2 on a usage error.
import { resolve } from 'node:path';
import { Client, percentile, Recorder } from './client.js';
import { type Check, type JobLine, jobsEndedWell, noJobRanTwice, noServerErrors, onlyExpectedAnswers, trailVerifies, type Usage, usageDrained, usageMatchesJobs } from './checks.js';
import { type Budget, SimulatedPerson } from './people.js';
import { startWorld, type World } from './world.js';
import { isPostgresUrl, redactedUrl } from '../../src/store/postgres.js';
import { until } from '../../test/support/until.js';

const USAGE = 'usage: npm run soak -- [--minutes N | --seconds N] [--requests M] [--people K] [--seed S] [--json] [--keep] [--store-url postgres://... [--store-password-file FILE]]';
const SETTLE_TIMEOUT_MS = 120_000;

export interface Options {
  seconds: number;
  requests: number;
  /** Generated people beside the four demo users. */
  people: number;
  seed: number;
  json: boolean;
  keep: boolean;
  /** The gateway's store.url: empty for the embedded store. In a report, without its password. */
  storeUrl: string;
  /** Its store.password_file. */
  storePasswordFile: string;
}

export interface RouteStats {
  route: string;
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  statuses: Record<string, number>;
}

export interface Report {
  options: Options;
  people: number;
  requests: number;
  seconds: number;
  requests_per_s: number;
  routes: RouteStats[];
  errors: Record<string, number>;
  refusals: Record<string, number>;
  jobs: { submitted: number; succeeded: number; cancelled: number; failed: number };
  checks: Check[];
  ok: boolean;
}

export function parseOptions(argv: string[]): Options | string {
  const o: Options = { seconds: 60, requests: 100_000, people: 8, seed: 15, json: false, keep: false, storeUrl: '', storePasswordFile: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--store-url' || a === '--store-password-file') {
      const v = argv[++i];
      if (v === undefined || v === '') return `${a} needs a value`;
      // Never echoed: a URL may carry a password.
      if (a === '--store-url' && !isPostgresUrl(v)) return '--store-url needs a postgres:// URL';
      if (a === '--store-url') o.storeUrl = v;
      // The soak's configuration lives in a temporary folder: a relative path means one from here.
      else o.storePasswordFile = resolve(v);
    } else if (['--minutes', '--seconds', '--requests', '--people', '--seed'].includes(a)) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0 || (a !== '--minutes' && a !== '--seconds' && !Number.isInteger(v))) return `${a} needs a number, got ${argv[i] ?? 'nothing'}`;
      if (a === '--minutes') o.seconds = v * 60;
      else if (a === '--seconds') o.seconds = v;
      else if (a === '--requests') o.requests = v;
      else if (a === '--people') o.people = v;
      else o.seed = v;
    } else return `unknown argument ${a}`;
  }
  if (o.seconds <= 0 || o.requests <= 0) return '--minutes/--seconds and --requests must be above 0';
  if (o.people > 500) return '--people: at most 500';
  if (o.storePasswordFile !== '' && o.storeUrl === '') return '--store-password-file only with --store-url';
  return o;
}

/** A small seeded generator (mulberry32), so the same seed makes the same choices. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const options = parseOptions(argv);
  if (typeof options === 'string') {
    process.stderr.write(`gatehouse-soak: ${options}\n${USAGE}\n`);
    return 2;
  }
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const store = options.storeUrl === '' ? 'its embedded store' : redactedUrl(options.storeUrl);
  say(`soak: starting Gatehouse on 127.0.0.1 (engine, development IdP, gateway) over ${store} with ${4 + options.people} people…`);
  let world: World;
  try {
    world = await startWorld({ generated: options.people, keep: options.keep, ...(options.storeUrl !== '' ? { store: { url: options.storeUrl, password_file: options.storePasswordFile } } : {}) });
  } catch (err) {
    say(`gatehouse-soak: ${(err as Error).message}`);
    return 1;
  }
  if (options.keep) say(`soak: the stack's folder is ${world.dir} (kept)`);
  try {
    const report = await soak(world, options, say);
    // On stderr too: with --json a failed check's finding would otherwise be only in the report.
    for (const c of report.checks.filter((c) => !c.ok)) say(`soak: check failed: ${c.name}: ${c.detail}`);
    process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : text(report));
    return report.ok ? 0 : 1;
  } catch (err) {
    say(`gatehouse-soak: ${(err as Error).stack ?? (err as Error).message}\n${world.output()}`);
    return 1;
  } finally {
    await world.stop();
  }
}

async function soak(world: World, o: Options, say: (line: string) => void): Promise<Report> {
  const recorder = new Recorder();
  const client = new Client(world.gateway, world.ca, recorder, world.people.length + 4);
  const random = seeded(o.seed);
  const deadline = performance.now() + o.seconds * 1000;
  const budget: Budget = { spent: () => performance.now() >= deadline || recorder.count >= o.requests, random };
  const people = world.people.map((p) => new SimulatedPerson(p, client, budget));
  say(`soak: ${people.length} people at work for ${o.seconds} s or ${o.requests} requests, whichever comes first…`);
  recorder.startedAt = performance.now();
  const progress = setInterval(() => say(`soak: ${recorder.count} requests, ${recorder.serverErrors} 5xx, ${[...recorder.errors.values()].reduce((a, b) => a + b, 0)} unexpected`), 10_000);
  try {
    await Promise.all(people.map((p) => p.run()));
  } finally {
    clearInterval(progress);
  }
  const seconds = (performance.now() - recorder.startedAt) / 1000;
  const loadStatuses = recorder.samples.map((s) => s.status);
  const routes = routeStats(recorder);
  const errors = Object.fromEntries(recorder.errors);
  const refusals = Object.fromEntries(recorder.refusals);
  say(`soak: load stopped after ${recorder.count} requests in ${seconds.toFixed(1)} s; checking…`);

  // Checks read the gateway as each person (their own token), with a fresh login where one ended.
  const checker = new Client(world.gateway, world.ca, new Recorder(), 4);
  try {
    for (const p of people) if (!p.token) await p.login();
    const checks: Check[] = [noServerErrors(loadStatuses), onlyExpectedAnswers(recorder.errors)];
    const carol = people.find((p) => p.person.name === 'carol') ?? people.find((p) => p.role === 'auditor');
    checks.push(await usageNow(checker, people));
    // Then every job still in flight is cancelled and waited for; the ledger must then hold nothing.
    const submitted = people.flatMap((p) => p.jobs);
    for (const p of people) {
      for (const j of p.jobs.filter((j) => !['succeeded', 'failed', 'cancelled'].includes(j.state))) {
        const answer = await checker.call('DELETE', `/v1/jobs/${j.id}`, { token: p.token, expect: [200, 409] });
        if (answer.status === 200) j.cancelled = true;
      }
    }
    await settle(checker, people);
    checks.push(jobsEndedWell(submitted));
    const drained = [];
    for (const p of people) {
      const q = (await checker.call('GET', '/v1/quota', { token: p.token })).json<{ usage: Usage; pending: unknown[] }>();
      drained.push({ user: p.person.name, usage: q.usage, pending: q.pending?.length ?? 0 });
    }
    checks.push(usageDrained(drained));
    if (carol) {
      const verify = await checker.call('GET', '/v1/audit/verify', { token: carol.token });
      checks.push(trailVerifies(verify.status === 200 ? verify.json() : { status: verify.status, body: verify.body.slice(0, 200) }));
      const exported = await checker.call('GET', '/v1/audit/export?action=job.start', { token: carol.token });
      const events = exported.body
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as { action: string; object: string });
      const started = new Set(submitted.map((j) => `job:${j.id}`));
      const ran = submitted.filter((j) => j.state === 'succeeded').length;
      const check = noJobRanTwice(events);
      // A job that succeeded must have started, on the record.
      const unrecorded = submitted.filter((j) => j.state === 'succeeded' && !events.some((e) => e.object === `job:${j.id}`));
      if (unrecorded.length > 0) {
        check.ok = false;
        check.detail += `; ${unrecorded.length} succeeded jobs have no job.start (${unrecorded.slice(0, 3).map((j) => j.id).join(', ')})`;
      } else check.detail += ` (${events.filter((e) => started.has(e.object)).length} of the soak's, ${ran} succeeded)`;
      checks.push(check);
    } else checks.push({ name: 'the trail verifies', ok: false, detail: 'no auditor among the people' });
    const jobs = {
      submitted: submitted.length,
      succeeded: submitted.filter((j) => j.state === 'succeeded').length,
      cancelled: submitted.filter((j) => j.state === 'cancelled').length,
      failed: submitted.filter((j) => j.state === 'failed').length,
    };
    return { options: { ...o, storeUrl: o.storeUrl === '' ? '' : redactedUrl(o.storeUrl) }, people: people.length, requests: recorder.count, seconds, requests_per_s: recorder.count / seconds, routes, errors, refusals, jobs, checks, ok: checks.every((c) => c.ok) };
  } finally {
    client.close();
    checker.close();
  }
}

/**
 * Quota usage against the job lists, each user read as: jobs, quota, jobs again. A job that moved
 * between the two lists makes that reading inconclusive, and it is taken again (a few times).
 */
async function usageNow(client: Client, people: SimulatedPerson[]): Promise<Check> {
  const readings: { user: string; usage: Usage; jobs: JobLine[] }[] = [];
  for (const p of people) {
    for (let attempt = 0; ; attempt++) {
      const list = async () => (await client.call('GET', '/v1/jobs?limit=1000', { token: p.token })).json<{ jobs: JobLine[] }>().jobs;
      const before = await list();
      const usage = (await client.call('GET', '/v1/quota', { token: p.token })).json<{ usage: Usage }>().usage;
      const after = await list();
      const key = (jobs: JobLine[]) => jobs.map((j) => `${j.id}:${j.state}`).sort().join(',');
      if (key(before) === key(after) || attempt >= 20) {
        readings.push({ user: p.person.name, usage, jobs: after });
        break;
      }
    }
  }
  return usageMatchesJobs(readings);
}

/** Waits until every job the soak submitted is final (the cancels above were asked for). */
async function settle(client: Client, people: SimulatedPerson[]): Promise<void> {
  const allFinal = async () => {
    let open = 0;
    for (const p of people) {
      for (const j of p.jobs.filter((j) => !['succeeded', 'failed', 'cancelled'].includes(j.state))) {
        const answer = await client.call('GET', `/v1/jobs/${j.id}`, { token: p.token });
        if (answer.status === 200) j.state = answer.json<{ state: string }>().state;
        if (!['succeeded', 'failed', 'cancelled'].includes(j.state)) open++;
      }
    }
    return open === 0;
  };
  // Past the deadline the jobs still open are left for the checks to report.
  await until(allFinal, SETTLE_TIMEOUT_MS, 'every soak job final', 250).catch(() => undefined);
}

function routeStats(recorder: Recorder): RouteStats[] {
  const byRoute = new Map<string, { ms: number[]; statuses: Record<string, number> }>();
  for (const s of recorder.samples) {
    const r = byRoute.get(s.route) ?? { ms: [], statuses: {} };
    r.ms.push(s.ms);
    r.statuses[String(s.status)] = (r.statuses[String(s.status)] ?? 0) + 1;
    byRoute.set(s.route, r);
  }
  return [...byRoute.entries()]
    .map(([route, r]) => {
      const sorted = r.ms.sort((a, b) => a - b);
      return { route, count: sorted.length, p50_ms: round(percentile(sorted, 50)), p99_ms: round(percentile(sorted, 99)), max_ms: round(sorted[sorted.length - 1] ?? 0), statuses: r.statuses };
    })
    .sort((a, b) => b.count - a.count);
}

const round = (n: number) => Math.round(n * 10) / 10;

function text(r: Report): string {
  const lines: string[] = [];
  lines.push(`soak: ${r.people} people, ${r.requests} requests in ${r.seconds.toFixed(1)} s = ${r.requests_per_s.toFixed(1)} requests/s`);
  lines.push(`jobs: ${r.jobs.submitted} submitted, ${r.jobs.succeeded} succeeded, ${r.jobs.cancelled} cancelled, ${r.jobs.failed} failed`);
  lines.push('');
  const header = ['route', 'count', 'p50 ms', 'p99 ms', 'max ms', 'statuses'];
  const rows = r.routes.map((s) => [s.route, String(s.count), s.p50_ms.toFixed(1), s.p99_ms.toFixed(1), s.max_ms.toFixed(1), Object.entries(s.statuses).map(([k, v]) => `${k}×${v}`).join(' ')]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 1 && i <= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line));
  lines.push('');
  const errors = Object.entries(r.errors).sort((a, b) => b[1] - a[1]);
  lines.push(errors.length === 0 ? 'errors: none' : 'errors by kind:');
  for (const [kind, n] of errors) lines.push(`  ${String(n).padStart(6)}  ${kind}`);
  const refusals = Object.entries(r.refusals).sort((a, b) => b[1] - a[1]);
  if (refusals.length > 0) lines.push('expected refusals:');
  for (const [kind, n] of refusals) lines.push(`  ${String(n).padStart(6)}  ${kind}`);
  lines.push('');
  lines.push('checks:');
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
  return `${lines.join('\n')}\n`;
}
