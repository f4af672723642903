// The benchmark API: every figure is measured next to its baseline, in the same process, in the
// same run, so a slow machine or a noisy neighbour moves both numbers and the ratio stays honest.

/**
 * One figure and the baseline it is read against. setup() builds what both sides need (servers,
 * clients, data) once; candidate() and baselineRun() each do one round of work and return the
 * figure in `unit`; teardown() always runs, even after a failure.
 */
export interface Benchmark<Context = unknown> {
  /** Unique, kebab-case: what `npm run bench -- <name>` selects. */
  name: string;
  /** The unit both sides return, e.g. "req/s" or "ms". */
  unit: string;
  /** What the baseline is, in words, e.g. "bare node:https server, same TLS and body". */
  baseline: string;
  /** Rounds for this benchmark when the caller gives none (a slow baseline may want fewer). */
  warmup?: number;
  rounds?: number;
  /**
   * Why this row cannot run on this machine (its baseline is not installed: say what installs it),
   * or undefined. A skipped row is listed with its reason; the other rows of its file still run.
   */
  skip?(): string | undefined;
  setup?(): Promise<Context>;
  candidate(ctx: Context): Promise<number>;
  baselineRun(ctx: Context): Promise<number>;
  teardown?(ctx: Context): Promise<void>;
}

/** One row of the report; the shape `npm run bench -- --json` prints. */
export interface Result {
  name: string;
  value: number;
  unit: string;
  baseline: string;
  baseline_value: number;
  ratio: number;
}

export interface MeasureOptions {
  /** Rounds thrown away first: JIT, TLS handshakes and connection pools warm up here. */
  warmup?: number;
  /** Rounds that count; odd, so the median is one real observation. */
  rounds?: number;
  /** Called after every round with both figures; the runner prints progress with it. */
  onRound?: (round: Round) => void;
}

export interface Round {
  /** 1-based within its phase: warm-up rounds count 1..warmup, then the counted rounds 1..rounds. */
  index: number;
  of: number;
  warmup: boolean;
  candidate: number;
  baseline: number;
}

export const DEFAULT_WARMUP = 1;
export const DEFAULT_ROUNDS = 7;

/**
 * Runs the benchmark interleaved, one pair a round, so drift over the run (thermal, GC, other load)
 * lands on both sides; and which side goes first alternates (candidate then baseline, then baseline
 * then candidate, ...), so what one side leaves behind as the next starts (its processes exiting,
 * its files being removed, a warm cache) is not always met by the same side. Medians, not means, so
 * one hiccup does not move the figure.
 */
export async function measure<Context>(bench: Benchmark<Context>, options: MeasureOptions = {}): Promise<Result> {
  const warmup = options.warmup ?? bench.warmup ?? DEFAULT_WARMUP;
  const rounds = options.rounds ?? bench.rounds ?? DEFAULT_ROUNDS;
  const candidates: number[] = [];
  const baselines: number[] = [];
  const ctx = (bench.setup ? await bench.setup() : undefined) as Context;
  try {
    for (let i = 0; i < warmup + rounds; i++) {
      let candidate: number;
      let baseline: number;
      if (i % 2 === 0) {
        candidate = checked(bench.unit, 'candidate', await bench.candidate(ctx));
        baseline = checked(bench.unit, 'baseline', await bench.baselineRun(ctx));
      } else {
        baseline = checked(bench.unit, 'baseline', await bench.baselineRun(ctx));
        candidate = checked(bench.unit, 'candidate', await bench.candidate(ctx));
      }
      const isWarmup = i < warmup;
      if (!isWarmup) {
        candidates.push(candidate);
        baselines.push(baseline);
      }
      options.onRound?.({ index: isWarmup ? i + 1 : i - warmup + 1, of: isWarmup ? warmup : rounds, warmup: isWarmup, candidate, baseline });
    }
  } finally {
    await bench.teardown?.(ctx);
  }
  const value = median(candidates);
  const baselineValue = median(baselines);
  return {
    name: bench.name,
    value: round3(value),
    unit: bench.unit,
    baseline: bench.baseline,
    baseline_value: round3(baselineValue),
    ratio: roundRatio(value / baselineValue),
  };
}

export function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** Three decimals, or three significant digits below 0.1, so 1/9000 does not print as 0. */
export function roundRatio(value: number): number {
  return Math.abs(value) >= 0.1 ? round3(value) : Number(value.toPrecision(3));
}

// A NaN or a zero would turn the ratio into nonsense silently; say which side produced it instead.
function checked(unit: string, side: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${side} returned ${String(value)} ${unit}; expected a positive finite number`);
  }
  return value;
}
