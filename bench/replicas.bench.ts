// Admission on PostgreSQL and with several gateways (issue 18, Measure). Two Gatehouses as real
// processes (engine, development IdP, gateways: bench/support/replicas-world.ts): one on the embedded
// SQLite store, one on a private PostgreSQL server (initdb/pg_ctl, test/support/postgres.ts) with two
// gateways over it. Every submission is a real HTTPS POST /v1/jobs with a token from a device login.
//   replicas-admit-postgres      decisions/s, one gateway on PostgreSQL vs one on SQLite
//   replicas-admit-two           decisions/s with the load split across two gateways vs one, same database
//   replicas-submit-p50-postgres median latency of one submission at a time, PostgreSQL vs SQLite
//   replicas-submit-p95-postgres the 95th percentile of the same
//
// The workload: 20 users (benchNN, analysts) each hold one long job and have max_concurrent_jobs 1,
// so every submission is decided `pending` (201). That is a whole admission decision: the user's lock
// (an advisory lock in PostgreSQL), the user's records read back from the store, the quota check, a
// submission number drawn, job.submit and quota.pending on the audit trail, the job record written;
// everything but the handover to the engine. Jobs that ran (even ones that finish at once) would
// add the engine starting a Python task per job, on the same two cores, and measure that instead; a
// quota refusal writes no record, and skips the store's writes that make PostgreSQL differ. The
// round's pending jobs are cancelled after its clock stops (not counted), so every round meets queues
// of the same length. Twenty users submit at once, each alone, so the per-user lock never makes one
// wait for another: what is measured is what the gateways and the database can decide.
//
// Not hidden: the leader drains every user with pending jobs each jobs.poll_ms (a lock and a read per
// user), on both stores, as a gateway does whenever people have jobs waiting; the second gateway runs
// (idle) while one gateway is measured alone; the cancelled jobs stay as ended records, so each user's
// rows grow through the run; and the bench's own client shares the machine. After every throughput
// round the bench prints the cores each process used meanwhile and how busy the whole machine was
// (bench/support/replicas-cpu.ts): on a small machine that, not the lock, is what two gateways meet.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startPostgres, type Postgres } from '../test/support/postgres.js';
import { median, type Benchmark } from './measure.js';
import { CpuClock } from './support/replicas-cpu.js';
import { percentile, type RoundResult, submitRound } from './support/replicas-load.js';
import { type Gateway, World } from './support/replicas-world.js';

const USERS = 20;
/** As many in flight as users: each user alone at a time (see above). */
const CONCURRENCY = USERS;
const SUBMISSIONS_PER_ROUND = 300;
const LATENCY_SUBMISSIONS_PER_ROUND = 100;
const ROUND_LIMIT_MS = 120_000;

interface Both {
  pg: Postgres;
  sqlite: World;
  postgres: World;
  /** The PostgreSQL world's first gateway, and both. */
  one: Gateway[];
  two: Gateway[];
  cpu: CpuClock;
}

let both: Promise<Both> | null = null;
let users = 0;
/**
 * The runner tears each benchmark down before it sets up the next: the worlds (a PostgreSQL, six
 * processes, forty device logins) stay a moment for the next benchmark of this file to take over,
 * and are stopped when none does.
 */
let stopping: NodeJS.Timeout | null = null;
const KEEP_MS = 2_000;

async function build(): Promise<Both> {
  const pg = await startPostgres();
  const started: World[] = [];
  try {
    // Task uids of their own: two engines on one machine (and a bench beside the tests) never share one.
    const sqlite = await World.start({ users: USERS, taskUids: '393000-393499', sockets: CONCURRENCY });
    started.push(sqlite);
    const postgres = await World.start({ users: USERS, taskUids: '393500-393999', sockets: CONCURRENCY, postgres: pg });
    started.push(postgres);
    await postgres.addGateway('b');
    const cpu = new CpuClock(() => ({ trees: { ...prefixed('sqlite', sqlite.processes()), ...prefixed('pg', postgres.processes()), postgres: postmaster(pg) } }));
    return { pg, sqlite, postgres, one: postgres.gateways.slice(0, 1), two: postgres.gateways.slice(0, 2), cpu };
  } catch (err) {
    await Promise.all(started.map((w) => w.stop()));
    await pg.stop();
    throw err;
  }
}

const prefixed = (prefix: string, pids: Record<string, number>) => Object.fromEntries(Object.entries(pids).map(([k, v]) => [`${prefix} ${k}`, v]));

/** The server's pid, from its data folder beside the password file (test/support/postgres.ts lays them out so); 0 when unreadable. */
function postmaster(pg: Postgres): number {
  try {
    return Number(readFileSync(join(dirname(pg.passwordFile), 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return 0;
  }
}

async function setup(): Promise<Both> {
  users += 1;
  if (stopping !== null) clearTimeout(stopping);
  stopping = null;
  both ??= build();
  return both;
}

async function teardown(): Promise<void> {
  if (both === null || --users > 0) return;
  const b = both;
  stopping = setTimeout(() => {
    if (both !== b) return;
    both = null;
    stopping = null;
    void stopAll(b).catch((err: Error) => process.stderr.write(`replicas bench: stopping its worlds failed: ${err.message}\n`));
  }, KEEP_MS);
}

async function stopAll(pending: Promise<Both>): Promise<void> {
  const b = await pending.catch(() => null); // a failed build stopped what it started
  if (b === null) return;
  await Promise.all([b.sqlite.stop(), b.postgres.stop()]);
  await b.pg.stop();
}

/** A throughput round; where the CPU went during it goes to stderr under the runner's progress. */
async function load(b: Both, world: World, gateways: Gateway[], what: string): Promise<RoundResult> {
  const result = await submitRound(world, gateways, { submissions: SUBMISSIONS_PER_ROUND, concurrency: CONCURRENCY, limitMs: ROUND_LIMIT_MS, window: b.cpu });
  process.stderr.write(`    ${what}: ${result.perSecond.toFixed(0)} decisions/s; ${b.cpu.describe()}\n`);
  return result;
}

const alone = (world: World, gateways: Gateway[]): Promise<RoundResult> => submitRound(world, gateways, { submissions: LATENCY_SUBMISSIONS_PER_ROUND, concurrency: 1, limitMs: ROUND_LIMIT_MS });

const admitPostgres: Benchmark<Both> = {
  name: 'replicas-admit-postgres',
  unit: 'decisions/s',
  baseline: 'one gateway on the embedded SQLite store',
  setup,
  candidate: async (b) => (await load(b, b.postgres, b.one, 'postgres, one gateway')).perSecond,
  baselineRun: async (b) => (await load(b, b.sqlite, b.sqlite.gateways, 'sqlite, one gateway')).perSecond,
  teardown,
};

const p50Postgres: Benchmark<Both> = {
  name: 'replicas-submit-p50-postgres',
  unit: 'ms',
  baseline: 'one gateway on SQLite (submissions one at a time)',
  setup,
  candidate: async (b) => median((await alone(b.postgres, b.one)).latencies),
  baselineRun: async (b) => median((await alone(b.sqlite, b.sqlite.gateways)).latencies),
  teardown,
};

const p95Postgres: Benchmark<Both> = {
  name: 'replicas-submit-p95-postgres',
  unit: 'ms',
  baseline: 'one gateway on SQLite (submissions one at a time)',
  setup,
  candidate: async (b) => percentile((await alone(b.postgres, b.one)).latencies, 95),
  baselineRun: async (b) => percentile((await alone(b.sqlite, b.sqlite.gateways)).latencies, 95),
  teardown,
};

const admitTwo: Benchmark<Both> = {
  name: 'replicas-admit-two',
  unit: 'decisions/s',
  baseline: 'one gateway on the same PostgreSQL (goal: 1.6x)',
  setup,
  candidate: async (b) => (await load(b, b.postgres, b.two, 'postgres, two gateways')).perSecond,
  baselineRun: async (b) => (await load(b, b.postgres, b.one, 'postgres, one gateway')).perSecond,
  teardown,
};

// The two throughput figures first, while both databases hold the fewest ended jobs (see BENCHMARKS.md).
export const benchmarks: Benchmark[] = [admitPostgres as Benchmark, admitTwo as Benchmark, p50Postgres as Benchmark, p95Postgres as Benchmark];
