// policy-*: one authorization decision by src/policy (its rule index, role closures cached per
// policy version) against stock Casbin 5.51 scanning every line, on the same generated model.conf
// and policy.csv (test/support/policy-generator.ts, the shipped model: keyMatch, g2 labels,
// deny-override) with the same request-time links, at 1,000, 10,000 and 100,000 lines; plus the
// decision cache and the load.
//
// Stock Casbin costs milliseconds to a tenth of a second a decision here, so it is sampled: a
// bounded number of decisions a round, each timed, and one round's timings feed three rows (the
// rate, the median and the p99 of that size), so the policy bench finishes in a couple of minutes.
// Ours decides OURS_PER_ROUND requests of the same mix a round, each timed for the latency rows.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decideUncached } from '../src/policy/decide.js';
import { decide, loadPolicy, type PolicySnapshot } from '../src/policy/index.js';
import { type GeneratedPolicy, generatePolicy, type PolicyRequest, RequestGenerator, type StockEnforcer, stockEnforcer, writePolicy } from '../test/support/policy-generator.js';
import type { Benchmark } from './measure.js';

const SEED = 1;
/** Distinct requests of the generator's mix; ours decides all of them each round. */
const OURS_PER_ROUND = 20_000;
/** Stock decisions timed a round: enough for a median, few enough for a few seconds a round. */
const STOCK_PER_ROUND: Record<number, number> = { 1000: 500, 10000: 60, 100000: 12 };
/** The cached rows repeat this many distinct requests (both sides warmed on them first). */
const CACHED_SET = 64;
const CACHED_CALLS = 200_000;

const label = (lines: number) => (lines >= 1000 ? `${lines / 1000}k` : String(lines));

interface Sample {
  /** Per-decision times in µs, in request order. */
  times: number[];
  totalUs: number;
}

/** One size: the files, both deciders and the requests, shared by that size's rows. */
interface World {
  lines: number;
  generated: GeneratedPolicy;
  policy: PolicySnapshot;
  stock: StockEnforcer;
  requests: PolicyRequest[];
  /** Stock samples by round (warm-up included), timed once and read by every row of the size. */
  stockRounds: Sample[];
}

// Only one size is alive at a time: the 100k world holds two full policies in memory.
let current: World | null = null;

async function world(lines: number): Promise<World> {
  if (current?.lines === lines) return current;
  current = null;
  const generated = generatePolicy({ lines, seed: SEED, model: 'shipped' });
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-policy-'));
  try {
    await writePolicy(dir, generated);
    const policy = await loadPolicy(dir);
    const stock = await stockEnforcer(dir, generated);
    const requests = new RequestGenerator(generated, SEED).take(OURS_PER_ROUND);
    current = { lines, generated, policy, stock, requests, stockRounds: [] };
    return current;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const now = () => process.hrtime.bigint();
const us = (from: bigint, to: bigint) => Number(to - from) / 1000;

/** The k-th round's stock sample: the next STOCK_PER_ROUND requests, each timed. */
function stockSample(w: World, round: number): Sample {
  let s = w.stockRounds[round];
  if (!s) {
    const n = STOCK_PER_ROUND[w.lines]!;
    const times: number[] = [];
    const started = now();
    for (let i = 0; i < n; i++) {
      const r = w.requests[(round * n + i) % w.requests.length]!;
      const t = now();
      w.stock.enforceSync(`user:${r.user}`, r.object, r.action);
      times.push(us(t, now()));
    }
    s = { times, totalUs: us(started, now()) };
    w.stockRounds[round] = s;
  }
  return s;
}

function oursTimed(w: World): number[] {
  const times: number[] = new Array(w.requests.length);
  for (let i = 0; i < w.requests.length; i++) {
    const r = w.requests[i]!;
    const t = now();
    decideUncached(w.policy, { user: r.user, groups: r.groups }, r.object, r.action, r.labels);
    times[i] = us(t, now());
  }
  return times;
}

/** Nearest rank: the value below which `q` of the sample lies (for 12 values, p99 is the largest). */
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

interface Ctx {
  w: World;
  /** This row's baseline round, to read the shared stock sample. */
  round: number;
}

function decisionRows(lines: number): Benchmark<Ctx>[] {
  const n = STOCK_PER_ROUND[lines]!;
  const size = label(lines);
  const setup = async (): Promise<Ctx> => ({ w: await world(lines), round: 0 });
  const sampled = `stock Casbin enforceSync, same files + links, ${n} sampled decisions a round`;
  return [
    {
      name: `policy-uncached-${size}`,
      unit: 'decisions/s',
      baseline: sampled,
      setup,
      async candidate({ w }) {
        const started = now();
        for (const r of w.requests) decideUncached(w.policy, { user: r.user, groups: r.groups }, r.object, r.action, r.labels);
        return w.requests.length / (us(started, now()) / 1e6);
      },
      async baselineRun(ctx) {
        const s = stockSample(ctx.w, ctx.round++);
        return s.times.length / (s.totalUs / 1e6);
      },
    },
    {
      name: `policy-median-${size}`,
      unit: 'µs',
      baseline: `${sampled} (median)`,
      setup,
      candidate: async ({ w }) => quantile(oursTimed(w), 0.5),
      baselineRun: async (ctx) => quantile(stockSample(ctx.w, ctx.round++).times, 0.5),
    },
    {
      name: `policy-p99-${size}`,
      unit: 'µs',
      baseline: `${sampled} (p99${n < 100 ? ', i.e. the slowest' : ''})`,
      setup,
      candidate: async ({ w }) => quantile(oursTimed(w), 0.99),
      baselineRun: async (ctx) => quantile(stockSample(ctx.w, ctx.round++).times, 0.99),
    },
    {
      name: `policy-cached-${size}`,
      unit: 'decisions/s',
      baseline: `stock Casbin CachedEnforcer.enforce (async), same ${CACHED_SET} repeated requests`,
      async setup() {
        const ctx = await setup();
        // Both caches warm on the same working set first; the rounds then only hit.
        for (const r of ctx.w.requests.slice(0, CACHED_SET)) {
          decide(ctx.w.policy, { user: r.user, groups: r.groups }, r.object, r.action, { labels: r.labels });
          await ctx.w.stock.enforce(`user:${r.user}`, r.object, r.action);
        }
        return ctx;
      },
      async candidate({ w }) {
        const started = now();
        for (let i = 0; i < CACHED_CALLS; i++) {
          const r = w.requests[i % CACHED_SET]!;
          decide(w.policy, { user: r.user, groups: r.groups }, r.object, r.action, { labels: r.labels });
        }
        return CACHED_CALLS / (us(started, now()) / 1e6);
      },
      async baselineRun({ w }) {
        const started = now();
        for (let i = 0; i < CACHED_CALLS; i++) {
          const r = w.requests[i % CACHED_SET]!;
          await w.stock.enforce(`user:${r.user}`, r.object, r.action);
        }
        return CACHED_CALLS / (us(started, now()) / 1e6);
      },
    },
  ];
}

interface LoadCtx {
  dir: string;
  generated: GeneratedPolicy;
}

// Loading 100,000 lines: our loadPolicy (parse, lint every line, build the index) against stock
// newEnforcer plus the links it needs to decide the same (each person's groups, the manifests'
// labels). Stock takes seconds, so no warm-up round and three counted rounds.
const load: Benchmark<LoadCtx> = {
  name: 'policy-load-100k',
  unit: 'ms',
  baseline: 'stock Casbin newEnforcer + request-time links (addGroupingPolicy each), same files',
  warmup: 0,
  rounds: 3,
  async setup() {
    const generated = current?.lines === 100_000 ? current.generated : generatePolicy({ lines: 100_000, seed: SEED, model: 'shipped' });
    current = null; // the decision rows are done: free their two policies before loading more
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-policy-load-'));
    await writePolicy(dir, generated);
    return { dir, generated };
  },
  async candidate({ dir }) {
    const started = now();
    await loadPolicy(dir);
    return us(started, now()) / 1000;
  },
  async baselineRun({ dir, generated }) {
    const started = now();
    await stockEnforcer(dir, generated);
    return us(started, now()) / 1000;
  },
  async teardown({ dir }) {
    rmSync(dir, { recursive: true, force: true });
  },
};

export const benchmarks: Benchmark[] = [...decisionRows(1_000), ...decisionRows(10_000), ...decisionRows(100_000), load];
