// A CLI that answers at once (issue 21): the `gatehouse` command through its launcher (the build
// check, then the compiled CLI), against `node -e 0`, the floor any Node.js command pays, in the same
// run. Each round is the median of several runs of one process each; the client verbs are pointed at
// a port where nothing listens, so they do all their own work (parse, resolve the gateway, read the
// login) and fail at connect, without a gateway's time in the figure.
//   cli-help     gatehouse --help
//   cli-whoami   gatehouse whoami
//   cli-jobs     gatehouse jobs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/version.js';
import { type Benchmark, median } from './measure.js';

const LAUNCHER = join(PACKAGE_ROOT, 'bin', 'gatehouse.js');
const RUNS_PER_ROUND = 9;
const NOWHERE = 'https://127.0.0.1:9';

interface Ctx {
  home: string;
}

/** Median wall milliseconds of RUNS_PER_ROUND runs of `node ...args` from a folder with no configuration. */
function ms(ctx: Ctx, args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS_PER_ROUND; i++) {
    const t0 = performance.now();
    const run = spawnSync(process.execPath, args, { cwd: ctx.home, env: { PATH: process.env.PATH, HOME: ctx.home }, stdio: 'ignore' });
    times.push(performance.now() - t0);
    if (run.error) throw run.error;
  }
  return median(times);
}

function row(name: string, verb: string[]): Benchmark<Ctx> {
  return {
    name,
    unit: 'ms',
    baseline: 'node -e 0 (the start of any Node.js command)',
    setup: async () => ({ home: mkdtempSync(join(tmpdir(), 'gatehouse-bench-cli-')) }),
    candidate: async (ctx) => ms(ctx, [LAUNCHER, ...verb]),
    baselineRun: async (ctx) => ms(ctx, ['-e', '0']),
    teardown: async (ctx) => rmSync(ctx.home, { recursive: true, force: true }),
  };
}

export const benchmarks: Benchmark[] = [
  row('cli-help', ['--help']) as Benchmark,
  row('cli-whoami', ['whoami', '--url', NOWHERE]) as Benchmark,
  row('cli-jobs', ['jobs', '--url', NOWHERE]) as Benchmark,
];
