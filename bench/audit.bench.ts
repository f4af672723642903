// The audit trail (issue 7): durable appends under concurrent writers, queries and verify on a trail
// of 10 million events, each next to what a store or a log without our design does.
//
//   audit-append[-1m][-p50|-p99]  AuditTrail.record from 256 concurrent async writers for 3 s: events/s
//       and record latency; against the same trail file and TrailWriter committing each event in its
//       own transaction (one fsync per event) on a thread of its own, same writers and events. Each
//       round starts from an empty trail, or (-1m) from a copy of a 1-million-event trail, and ends
//       with the store's close (the round's tail put in the lookup tables, the WAL copied into
//       audit.db), which it pays for; the three rows of a trail read the same rounds.
//   audit-query-*  queryEvents on the cached 10M-event trail, every match (pages of 1 000 followed by
//       their cursors), median of 50 different targets a round; against grep over the same events
//       as JSON lines (30 daily files, grep -F, LC_ALL=C, the more selective pattern first), one
//       target a round; -vs-daily-log greps only that day's file, as with a log rotated daily.
//       grep's line count is checked against ours for every target it runs.
//   audit-verify-10m  verifyTrail (in its worker thread, as AuditTrail.verify runs it, no live head) over the
//       10M trail, events/s; against sha256sum of the JSON lines of the same events.
//
// The 10M trail (and the 1M one) is generated on first use into var/bench/ (minutes; printed, not
// measured) and reused while GENERATOR_VERSION and its spec are the same.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openCheckpoint } from '../src/audit/checkpoint.js';
import { hashRow } from '../src/audit/chain.js';
import type { AuditInput } from '../src/audit/event.js';
import { timeOrderedId } from '../src/http/request-id.js';
import { parseFilter, queryEvents } from '../src/audit/query.js';
import { type AuditRow, openAuditDb } from '../src/audit/schema.js';
import { type AuditSigningKey, loadAuditKey } from '../src/audit/signing-key.js';
import { AuditTrail } from '../src/audit/trail.js';
import { verifyInWorker } from '../src/audit/verify-thread.js';
import { PACKAGE_ROOT } from '../src/version.js';
import type { Benchmark } from './measure.js';
import { type CachedTrail, cachedTrail, currentLayout, dayOf, EventWorld, prng, type TrailSpec } from './support/audit-events.js';
import { PerEventStore } from './support/audit-per-event.js';

const CACHE = join(PACKAGE_ROOT, 'var', 'bench');
const START = Date.parse('2026-10-01T00:00:00Z');
const TEN_M: TrailSpec = { name: 'audit-10m', events: 10_000_000, days: 30, start: START, seed: 7, jsonl: true, bulkIndexes: true, checkpointMs: 5000 };
// Built row by row like a live trail (its indexes as full as a live trail's), so appends meet a real tree.
const ONE_M: TrailSpec = { name: 'audit-1m', events: 1_000_000, days: 3, start: START, seed: 8, jsonl: false, bulkIndexes: false, checkpointMs: 5000 };

// Enough closed-loop writers to fill the group commits (issue 21): with 256 a batch held at most 256
// events; GATEHOUSE_BENCH_AUDIT_WRITERS sets another number (the 256 figures in BENCHMARKS.md).
const WRITERS = Number(process.env.GATEHOUSE_BENCH_AUDIT_WRITERS ?? 1024);
const ROUND_MS = 3000;
const POOL = 65_536;
const TARGETS = 50;
const DAILY_PER_ROUND = 5;
const LIMIT = '1000';

const log = (line: string) => process.stderr.write(`  ${line}\n`);
const ms = (from: number) => performance.now() - from;

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

// --- appends -----------------------------------------------------------------------------------

interface AppendSample {
  rate: number;
  p50: number;
  p99: number;
  /** WAL frames the end-of-round checkpoint copied (for the log). */
  copied: number;
}

interface AppendWorld {
  key: AuditSigningKey;
  pool: AuditInput[];
  /** A trail to copy at the start of each round, or null for an empty trail. */
  template: string | null;
  ours: AppendSample[];
  base: AppendSample[];
}

const appendWorlds = new Map<string, AppendWorld>();

function appendWorld(kind: 'empty' | '1m'): AppendWorld {
  let w = appendWorlds.get(kind);
  if (!w) {
    mkdirSync(CACHE, { recursive: true });
    const world = new EventWorld(11);
    const cached = kind === '1m' ? cachedTrail(CACHE, ONE_M, log) : null;
    // A copy moved once to the current layout (issue 21's lookup tables), not each round.
    const template = cached ? join(currentLayout(cached.trailDir, log, join(CACHE, `${ONE_M.name}-current`)), 'audit.db') : null;
    // The copy's checkpoints are signed by the cached trail's key: the writer refuses a trail whose
    // newest checkpoint no key it knows has signed, so the rounds on a copy sign with that key.
    const key = cached ? cached.key : loadAuditKey(join(CACHE, 'audit-append-certs'));
    w = { key, pool: Array.from({ length: POOL }, () => world.event(Date.now())), template, ours: [], base: [] };
    appendWorlds.set(kind, w);
  }
  return w;
}

/** A fresh trail folder for one round: empty, or a copy of the template. */
function roundDir(w: AppendWorld): string {
  const dir = mkdtempSync(join(CACHE, 'audit-append-'));
  if (w.template) copyFileSync(w.template, join(dir, 'audit.db'));
  return dir;
}

/**
 * WRITERS closed-loop writers for ROUND_MS, each recording its next event as soon as the last is
 * durable; then `finish` (the store's close), which the round also pays for.
 */
async function drive(record: (input: AuditInput) => Promise<unknown>, pool: AuditInput[], dir: string, finish: () => Promise<void>): Promise<AppendSample> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + ROUND_MS;
  const writer = async () => {
    while (performance.now() < deadline) {
      const pooled = pool[next++ % pool.length]!;
      // A fresh request id per event, made as the gateway makes them (time-ordered), not the pool's.
      const input = pooled.request_id === null ? pooled : { ...pooled, request_id: timeOrderedId() };
      const t = performance.now();
      await record(input);
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  // The round also pays for what its writes left for later: closing fills the lookup tables for the
  // round's un-indexed tail and copies the WAL into audit.db (then whatever WAL is left, none after
  // a close). A longer wal_autocheckpoint or INDEX_BATCH would otherwise push that work past the end
  // of a 3 s round and look faster than it is (session 35).
  await finish();
  const copied = checkpointWal(dir);
  return { rate: latencies.length / (ms(started) / 1000), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), copied };
}

/** Checkpoints the round's WAL into audit.db (all of it: nothing else writes now); the frames copied. */
function checkpointWal(dir: string): number {
  const db = new Database(join(dir, 'audit.db'));
  try {
    db.pragma('busy_timeout = 5000');
    const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    if (!r || r.busy !== 0) throw new Error(`the round's WAL could not be checkpointed: ${JSON.stringify(r)}`);
    return r.checkpointed;
  } finally {
    db.close();
  }
}

async function oursSample(w: AppendWorld, round: number): Promise<AppendSample> {
  if (!w.ours[round]) {
    const dir = roundDir(w);
    try {
      const trail = await AuditTrail.open({ dir, key: w.key, checkpointMs: 5000 });
      try {
        w.ours[round] = await drive((i) => trail.record(i), w.pool, dir, () => trail.close());
      } finally {
        await trail.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return w.ours[round]!;
}

async function baseSample(w: AppendWorld, round: number): Promise<AppendSample> {
  if (!w.base[round]) {
    const dir = roundDir(w);
    try {
      const store = await PerEventStore.open(dir, w.key);
      try {
        w.base[round] = await drive((i) => store.record(i), w.pool, dir, () => store.close());
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return w.base[round]!;
}

interface AppendCtx {
  w: AppendWorld;
  ours: number;
  base: number;
}

function appendRows(kind: 'empty' | '1m'): Benchmark<AppendCtx>[] {
  const name = kind === 'empty' ? 'audit-append' : 'audit-append-1m';
  const from = kind === 'empty' ? 'empty trail each round' : 'each round on a copy of a 1M-event trail';
  const baseline = `same file + TrailWriter, one transaction (fsync) per event, ${WRITERS} writers, ${from}`;
  const setup = async (): Promise<AppendCtx> => ({ w: appendWorld(kind), ours: 0, base: 0 });
  const row = (suffix: string, unit: string, what: string, field: keyof AppendSample): Benchmark<AppendCtx> => ({
    name: `${name}${suffix}`,
    unit,
    baseline: `${baseline}${what}`,
    setup,
    candidate: async (ctx) => (await oursSample(ctx.w, ctx.ours++))[field],
    baselineRun: async (ctx) => (await baseSample(ctx.w, ctx.base++))[field],
  });
  return [row('', 'events/s', '', 'rate'), row('-p50', 'ms', ' (p50 record latency)', 'p50'), row('-p99', 'ms', ' (p99 record latency)', 'p99')];
}

// --- queries on 10M ----------------------------------------------------------------------------

interface Target {
  /** The query as an auditor writes it (GET /v1/audit's querystring). */
  query: Record<string, string>;
  /** The same question to grep: the patterns, most selective first, and the files to scan. */
  patterns: string[];
  /** That day's file only (what grep scans when the log is rotated daily). */
  dayFile: string;
}

interface QueryWorld {
  trail: CachedTrail;
  db: Database.Database;
  targets: Record<'user' | 'object' | 'action', Target[]>;
  /** Matches per target, from ours (grep's count is checked against it). */
  counts: Map<Target, number>;
  /** Candidate rounds so far, by row name (for the log). */
  calls: Map<string, number>;
}

let queryWorld: QueryWorld | null = null;

function theQueryWorld(): QueryWorld {
  if (queryWorld?.db.open) return queryWorld;
  mkdirSync(CACHE, { recursive: true });
  const trail = cachedTrail(CACHE, TEN_M, log);
  currentLayout(trail.trailDir, log); // in place: a 10M trail cached before the lookup tables is moved once
  const db = openAuditDb(trail.trailDir, { readonly: true });
  const world = new EventWorld(TEN_M.seed); // the same people and datasets as the trail
  const r = prng(99);
  const day = () => Math.floor(r() * TEN_M.days);
  const file = (d: number) => trail.jsonlFiles[d]!;
  const next = (d: number) => dayOf(START, d + 1);
  const targets = {
    // One of the 100 most active people after the service accounts: a few hundred to a few thousand events a day.
    user: Array.from({ length: TARGETS }, (): Target => {
      const user = world.user(5 + Math.floor(r() * 100));
      const d = day();
      return { query: { user, since: dayOf(START, d), until: next(d) }, patterns: [`"actor":{"user":"${user}"`, `"time":"${dayOf(START, d)}T`], dayFile: file(d) };
    }),
    // Any of the 500 datasets, by its exact name.
    object: Array.from({ length: TARGETS }, (): Target => {
      const object = `dataset:${world.datasets[Math.floor(r() * world.datasets.length)]}`;
      const d = day();
      return { query: { object, since: dayOf(START, d), until: next(d) }, patterns: [`"object":"${object}"`, `"time":"${dayOf(START, d)}T`], dayFile: file(d) };
    }),
    // Every job event (job.submit, job.start, job.finish, job.list, job.cancel) in one hour.
    action: Array.from({ length: TARGETS }, (): Target => {
      const d = day();
      const h = String(Math.floor(r() * 24)).padStart(2, '0');
      const at = `${dayOf(START, d)}T${h}`;
      return { query: { action: 'job.', since: `${at}:00:00Z`, until: new Date(Date.parse(`${at}:00:00Z`) + 3_600_000).toISOString() }, patterns: [`"time":"${at}:`, '"action":"job.'], dayFile: file(d) };
    }),
  };
  queryWorld = { trail, db, targets, counts: new Map(), calls: new Map() };
  return queryWorld;
}

const NOW = Date.parse('2026-11-01T00:00:00Z');

/** Every match: page after page of LIMIT, as an auditor's client follows next_cursor. */
function queryAll(db: Database.Database, query: Record<string, string>): number {
  let n = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = queryEvents(db, parseFilter({ ...query, limit: LIMIT, ...(cursor ? { cursor } : {}) }, NOW));
    n += page.events.length;
    if (!page.next_cursor) return n;
    cursor = page.next_cursor;
  }
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs a shell pipeline; resolves with its wall time and the lines it printed. */
function run(command: string): Promise<{ ms: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('sh', ['-c', command], { env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let lines = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const took = ms(started);
      // grep exits 1 when nothing matched: still an answer.
      if (code !== 0 && code !== 1) reject(new Error(`${command.slice(0, 120)}... exited ${code}`));
      else resolve({ ms: took, lines });
    });
  });
}

function grepCommand(patterns: string[], files: string[]): string {
  const [first, ...rest] = patterns;
  return [`grep -hF ${quote(first!)} ${files.map(quote).join(' ')}`, ...rest.map((p) => `grep -F ${quote(p)}`)].join(' | ');
}

async function checkedGrep(q: QueryWorld, t: Target, command: string): Promise<number> {
  const { ms: took, lines } = await run(command);
  const ours = countOf(q, t);
  if (lines !== ours) throw new Error(`grep found ${lines} lines for ${JSON.stringify(t.query)}, queryEvents ${ours} events`);
  return took;
}

function countOf(q: QueryWorld, t: Target): number {
  let n = q.counts.get(t);
  if (n === undefined) q.counts.set(t, (n = queryAll(q.db, t.query)));
  return n;
}

interface QueryCtx {
  q: QueryWorld;
  base: number;
}

function queryRows(kind: 'user' | 'object' | 'action', name: string, what: string): Benchmark<QueryCtx>[] {
  const setup = async (): Promise<QueryCtx> => ({ q: theQueryWorld(), base: 0 });
  const candidate = async ({ q }: QueryCtx) => {
    const times: number[] = [];
    const counts: number[] = [];
    for (const t of q.targets[kind]) {
      const started = performance.now();
      const n = queryAll(q.db, t.query);
      times.push(ms(started));
      counts.push(n);
      q.counts.set(t, n);
    }
    // The first round meets whatever the page cache holds (the rows before may have pushed the
    // trail out of it); the second is warm. Both are printed, with the spread the median hides.
    const call = (q.calls.get(name) ?? 0) + 1;
    q.calls.set(name, call);
    if (call === 1) log(`${name}: ${what}; matches per target: median ${quantile(counts, 0.5)}, min ${Math.min(...counts)}, max ${Math.max(...counts)}`);
    if (call <= 2) log(`${name}: ${call === 1 ? 'first round' : 'a warm round'}: ms median ${quantile(times, 0.5).toFixed(2)}, p90 ${quantile(times, 0.9).toFixed(2)}, max ${Math.max(...times).toFixed(2)}`);
    return quantile(times, 0.5);
  };
  const rows: Benchmark<QueryCtx>[] = [
    {
      name,
      unit: 'ms',
      baseline: `grep over the same events as JSON lines (30 days, ${TEN_M.events / 1e6}M lines), one target a round`,
      warmup: 1,
      rounds: 5,
      setup,
      candidate,
      baselineRun: async (ctx) => {
        const t = ctx.q.targets[kind][ctx.base++ % TARGETS]!;
        return checkedGrep(ctx.q, t, grepCommand(t.patterns, ctx.q.trail.jsonlFiles));
      },
    },
  ];
  if (kind === 'user') {
    rows.push({
      name: `${name}-vs-daily-log`,
      unit: 'ms',
      baseline: `grep over that day's file only (a log rotated daily), ${DAILY_PER_ROUND} targets a round`,
      setup,
      candidate,
      baselineRun: async (ctx) => {
        const times: number[] = [];
        for (let i = 0; i < DAILY_PER_ROUND; i++) {
          const t = ctx.q.targets[kind][ctx.base++ % TARGETS]!;
          times.push(await checkedGrep(ctx.q, t, grepCommand(t.patterns.slice(0, 1), [t.dayFile])));
        }
        return quantile(times, 0.5);
      },
    });
  }
  return rows;
}

// --- verify ------------------------------------------------------------------------------------

const verifyRow: Benchmark<QueryWorld> = {
  name: 'audit-verify-10m',
  unit: 'events/s',
  baseline: 'sha256sum of the same events as JSON lines (the 30 daily files)',
  // Minutes a round: no warm-up (generation or the query rows have read the files), three rounds.
  warmup: 0,
  rounds: 3,
  async setup() {
    const q = theQueryWorld();
    // Where verify's time goes, from samples (printed, not part of the figure).
    const rows = q.db.prepare('select * from audit_events where id <= 200000 order by id').all() as AuditRow[];
    let t = performance.now();
    for (const row of q.db.prepare('select * from audit_events where id <= 200000 order by id').iterate()) void row;
    const read = ms(t) / rows.length;
    t = performance.now();
    for (const row of rows) {
      const { hash: _hash, ...content } = row;
      hashRow(content);
    }
    const hashed = ms(t) / rows.length;
    const jws = q.db.prepare('select jws from audit_checkpoints limit 20000').all() as { jws: string }[];
    const keys = new Map([[q.trail.key.kid, q.trail.key.publicKey]]);
    t = performance.now();
    for (const { jws: s } of jws) openCheckpoint(s, keys);
    const perCheckpoint = ms(t) / jws.length;
    const { n: checkpoints } = q.db.prepare('select count(*) as n from audit_checkpoints').get() as { n: number };
    log(
      `audit-verify-10m: per event, reading the row ${(read * 1000).toFixed(2)} µs, canonical JSON + SHA-256 ${(hashed * 1000).toFixed(2)} µs; ` +
        `${checkpoints} checkpoints at ${(perCheckpoint * 1000).toFixed(0)} µs each (${((checkpoints * perCheckpoint) / 1000).toFixed(1)} s of a run)`,
    );
    return q;
  },
  async candidate(q) {
    const started = performance.now();
    const report = await verifyInWorker(fileURLToPath(new URL('../src/audit/verify-worker.js', import.meta.url)), q.trail.trailDir, new Map([[q.trail.key.kid, q.trail.key.publicKey]]), null);
    const seconds = ms(started) / 1000;
    if (!report.ok || report.events !== TEN_M.events) throw new Error(`verify of the 10M trail: ok ${report.ok}, ${report.events} events, ${report.problems.length} problems (${report.problems[0]?.message ?? ''})`);
    log(`audit-verify-10m: ${report.events} events, ${report.checkpoints} checkpoints, ${seconds.toFixed(1)} s (the report's elapsed_ms: ${report.elapsed_ms})`);
    return report.events / seconds;
  },
  async baselineRun(q) {
    const { ms: took, lines } = await run(`sha256sum ${q.trail.jsonlFiles.map(quote).join(' ')}`);
    if (lines !== q.trail.jsonlFiles.length) throw new Error(`sha256sum printed ${lines} lines for ${q.trail.jsonlFiles.length} files`);
    return TEN_M.events / (took / 1000);
  },
  async teardown(q) {
    q.db.close();
    queryWorld = null;
  },
};

export const benchmarks: Benchmark[] = [
  ...appendRows('empty'),
  ...appendRows('1m'),
  ...queryRows('user', 'audit-query-user-day', 'one of the 100 most active people over one day'),
  ...queryRows('object', 'audit-query-object-day', 'object=dataset:<any of 500> over one day'),
  ...queryRows('action', 'audit-query-action-hour', 'action=job. (prefix) over one hour'),
  verifyRow,
] as Benchmark[];
