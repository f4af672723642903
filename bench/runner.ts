// `npm run bench [-- <name>...] [--json]`: finds every *.bench.js next to this file, runs the
// benchmarks asked for one after another (never two at once: they would measure each other) and
// prints one table, or JSON for tools. Progress goes to stderr so stdout stays the result alone.
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Benchmark, measure, type Result } from './measure.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SUFFIX = '.bench.js';
const USAGE = 'usage: npm run bench [-- [<name> ...] [--json]]';

interface Found {
  file: string; // "healthz.bench", what `npm run bench -- healthz.bench` selects
  bench: Benchmark;
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const unknown = argv.find((a) => a.startsWith('-') && a !== '--json');
  if (unknown) return fail(`unknown option ${unknown}; ${USAGE}`);
  const names = argv.filter((a) => !a.startsWith('-'));

  let all: Found[];
  try {
    all = await discover();
  } catch (err) {
    return fail((err as Error).message);
  }
  if (all.length === 0) return fail(`no *${SUFFIX} files in ${HERE}`);
  const matches = (f: Found, n: string) => f.bench.name === n || f.file === n;
  const missing = names.filter((n) => !all.some((f) => matches(f, n)));
  if (missing.length > 0) {
    const known = all.map((f) => `${f.bench.name} (${f.file})`).join(', ');
    return fail(`no benchmark named ${missing.map((n) => `"${n}"`).join(', ')}; known: ${known}`);
  }
  const selected = names.length === 0 ? all : all.filter((f) => names.some((n) => matches(f, n)));

  const results: Result[] = [];
  const failures: string[] = [];
  const skipped: string[] = [];
  for (const { bench } of selected) {
    const why = bench.skip?.();
    if (why) {
      process.stderr.write(`${bench.name}: skipped (${why})\n`);
      skipped.push(`${bench.name}: ${why}`);
      continue;
    }
    process.stderr.write(`${bench.name}: ${bench.unit} vs ${bench.baseline}\n`);
    try {
      results.push(
        await measure(bench, {
          onRound: (r) =>
            process.stderr.write(
              `  ${r.warmup ? 'warm-up' : 'round'} ${r.index}/${r.of}: ${fmt(r.candidate)} vs ${fmt(r.baseline)} ${bench.unit}\n`,
            ),
        }),
      );
    } catch (err) {
      // One line, so a CI log says which benchmark broke and why without a stack to scroll.
      failures.push(`${bench.name}: ${oneLine(err)}`);
    }
  }

  if (json) process.stdout.write(`${JSON.stringify(results)}\n`);
  else if (results.length > 0) process.stdout.write(table(results));
  // Under the table, on stdout: a reader of the results must see which rows are missing and why.
  if (!json) for (const line of skipped) process.stdout.write(`skipped  ${line}\n`);
  for (const line of failures) process.stderr.write(`gatehouse-bench: ${line}\n`);
  return failures.length > 0 ? 1 : 0;
}

/** Every *.bench.js here, in file order; each must export `benchmarks: Benchmark[]`. */
async function discover(): Promise<Found[]> {
  // dist/ is never cleaned: a compiled file whose bench/*.bench.ts was deleted must not run.
  const sources = join(HERE, '..', '..', 'bench');
  const files = readdirSync(HERE)
    .filter((f) => f.endsWith(SUFFIX))
    .filter((f) => !existsSync(sources) || existsSync(join(sources, f.replace(/\.js$/, '.ts'))))
    .sort();
  const found: Found[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(HERE, f)).href)) as { benchmarks?: unknown };
    if (!Array.isArray(mod.benchmarks)) throw new Error(`${f} does not export benchmarks: Benchmark[]`);
    for (const bench of mod.benchmarks as Benchmark[]) {
      const clash = found.find((x) => x.bench.name === bench.name);
      if (clash) throw new Error(`benchmark name ${bench.name} is used by both ${clash.file} and ${basename(f, '.js')}`);
      found.push({ file: basename(f, '.js'), bench });
    }
  }
  return found;
}

const COLUMNS = ['name', 'value', 'unit', 'baseline', 'baseline value', 'ratio'] as const;

function table(results: Result[]): string {
  const rows = results.map((r) => [r.name, fmt(r.value), r.unit, r.baseline, fmt(r.baseline_value), Math.abs(r.ratio) >= 0.1 ? r.ratio.toFixed(3) : r.ratio.toPrecision(3)]);
  const numeric = new Set([1, 4, 5]); // right-aligned, so digits line up
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(COLUMNS), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}

/** Enough digits to compare, no more: 4321, 43.21, 0.0432. */
function fmt(n: number): string {
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

function fail(message: string): number {
  process.stderr.write(`gatehouse-bench: ${message}\n`);
  return 2;
}
