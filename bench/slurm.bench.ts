// The Slurm path (issue 17): the gateway in this process over HTTPS with slurm.* set, its real Slurm
// backend submitting to a private single-node cluster (Debian's Slurm 22.05, started here; needs root),
// against the same runner and batch script on an identically prepared job folder submitted straight
// to Slurm as the same Unix account.
//   slurm-first-task      POST /v1/jobs → the job's command starts on the node, vs `sbatch --array` → same
//   slurm-array-wall      a 16-partition python job, POST → the gateway says succeeded (output committed),
//                         vs `sbatch --array` → Slurm says every task completed
//   slurm-gateway-submit  POST /v1/jobs answered vs one direct slurmrestd POST /job/submit answered
// Each job is left to end before the next, so both sides meet an idle cluster; one job on each side
// first (the cluster's first scheduling pass, the gateway's first connections), so no warm-up rounds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { removeJobFolder } from '../src/proxy/slurm/job-folder.js';
import type { JobSpec } from '../src/wire/index.js';
import { until } from '../test/support/until.js';
import { median, type Benchmark } from './measure.js';
import { prepareDirect, restHeaders, restSubmit, sbatch, slurmFinished } from './support/slurm-direct.js';
import { dropOutput, gatewayFinished, gatewaySubmit, MANY, MANY_PARTITIONS, ONE, releaseWorld, type SlurmWorld, useWorld } from './support/slurm-world.js';

const SUBMITS_PER_ROUND = 3;
/**
 * slurmctld starts array tasks on its scheduling passes, about one every 1-2 s here (its log shows
 * the allocations on that beat whoever submitted), not when a job arrives. Rounds of fixed length
 * would lock each side onto its own phase of that beat (one side always just before a pass, the other
 * just after: seen as a steady 0.6 s gap either way round). A random pause before each timed
 * submission makes both sides meet the beat at random phases.
 */
const SCHED_BEAT_MS = 2_000;
const offBeat = () => pause(Math.random() * SCHED_BEAT_MS);
const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const SBATCH = 'runuser -u gh-alice -- sbatch --array, same runner, script and job folder';

/** Seen beside the figure on either side, printed when the benchmark ends (where the time goes). */
const notes = new Map<string, number[]>();
const note = (what: string, ms: number) => notes.set(what, [...(notes.get(what) ?? []), ms]);
function printNotes(prefix: string): void {
  for (const [what, values] of notes) {
    if (what.startsWith(prefix)) process.stderr.write(`  ${what}: median ${median(values).toFixed(1)} ms of ${values.length}\n`);
  }
}

/** Why the world could not be built or warmed: every later benchmark fails with it at once. */
let broken: Error | null = null;
const warmed = new WeakMap<SlurmWorld, Promise<void>>();

/** The shared world, after one job through the gateway and one through sbatch. */
async function setup(): Promise<SlurmWorld> {
  if (broken !== null) throw broken;
  try {
    const w = await useWorld();
    let warm = warmed.get(w);
    if (warm === undefined) {
      warm = warmUp(w);
      warmed.set(w, warm);
    }
    await warm;
    return w;
  } catch (err) {
    broken = err as Error;
    await releaseWorld(); // measure() runs no teardown after a failed setup: nothing may stay running
    throw err;
  }
}

async function warmUp(w: SlurmWorld): Promise<void> {
  const s = spec(w, {});
  await gatewayFinished(w, await gatewaySubmit(w, s));
  await dropOutput(w, s.output);
  const job = await prepareDirect(w, spec(w, {}));
  await slurmFinished(w, await sbatch(w, job), job.tasks.length);
  await removeJobFolder(job.dir);
}

/** Notes where a first task's time went: until slurmctld allocated it, then until its command ran. */
function split(side: string, w: SlurmWorld, slurmJobId: number, t0: number, commandAt: number): void {
  const allocated = w.cluster.allocatedAt(slurmJobId);
  if (allocated === undefined) return;
  note(`${side}: submit → slurmctld allocated the task`, allocated - t0);
  note(`${side}: allocated → the command started (slurmstepd, gatehouse-task)`, commandAt - allocated);
}

function spec(w: SlurmWorld, o: Partial<JobSpec>): JobSpec {
  return { name: 'bench', backend: 'slurm', input: ONE, output: `scratch/slurm-out-${w.next()}`, runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 600 }, ...o };
}

/** A command that writes the time it starts (ns since the epoch) to a file in the cluster's work folder. */
function marking(w: SlurmWorld): { spec: JobSpec; mark: string } {
  const mark = join(w.cluster.workDir, `mark-${w.next()}`);
  return { mark, spec: spec(w, { argv: ['/bin/sh', '-c', `date +%s%N >> ${mark}; cp {input} {output}`] }) };
}

/** When the first task's command started, in ms since the epoch (the clock Date.now() reads). */
function markedAt(mark: string): Promise<number> {
  return until(
    () => {
      let text: string;
      try {
        text = readFileSync(mark, 'utf8');
      } catch {
        return undefined;
      }
      const first = text.split('\n')[0];
      return text.includes('\n') && first ? Number(BigInt(first) / 1000n) / 1000 : undefined;
    },
    60_000,
    `the job's command started (${mark})`,
    5,
  );
}

const firstTask: Benchmark<SlurmWorld> = {
  name: 'slurm-first-task',
  unit: 'ms',
  baseline: SBATCH,
  warmup: 0,
  rounds: 7,
  setup,
  async candidate(w) {
    const { spec: s, mark } = marking(w);
    await offBeat();
    const t0 = Date.now();
    const id = await gatewaySubmit(w, s);
    note('slurm-first-task: POST /v1/jobs answered', Date.now() - t0);
    const at = await markedAt(mark);
    const done = await gatewayFinished(w, id);
    await dropOutput(w, s.output);
    split('slurm-first-task', w, Number(done.backend_job_id), t0, at);
    return at - t0;
  },
  async baselineRun(w) {
    const { spec: s, mark } = marking(w);
    const job = await prepareDirect(w, s);
    await offBeat();
    const t0 = Date.now();
    const id = await sbatch(w, job);
    note('slurm-first-task (baseline): sbatch returned', Date.now() - t0);
    const at = await markedAt(mark);
    await slurmFinished(w, id, job.tasks.length);
    await removeJobFolder(job.dir);
    split('slurm-first-task (baseline)', w, id, t0, at);
    return at - t0;
  },
  async teardown() {
    printNotes('slurm-first-task');
    await releaseWorld();
  },
};

const manySpec = (w: SlurmWorld): JobSpec => spec(w, { input: MANY, runtime: 'python', source: COPY, argv: undefined, resources: { cores: 2, memory_mb: 256, time_limit_s: 600 } });

const arrayWall: Benchmark<SlurmWorld> = {
  name: 'slurm-array-wall',
  unit: 's',
  baseline: SBATCH,
  warmup: 0,
  rounds: 3,
  setup,
  async candidate(w) {
    const s = manySpec(w);
    await offBeat();
    const t0 = Date.now();
    const id = await gatewaySubmit(w, s);
    note(`slurm-array-wall: POST /v1/jobs answered (${MANY_PARTITIONS} partitions staged)`, Date.now() - t0);
    const done = await gatewayFinished(w, id);
    const wall = (Date.now() - t0) / 1000;
    if (done.partitions.done !== MANY_PARTITIONS) throw new Error(`job ${id} did ${done.partitions.done} of ${MANY_PARTITIONS} partitions`);
    await dropOutput(w, s.output);
    return wall;
  },
  async baselineRun(w) {
    const job = await prepareDirect(w, manySpec(w));
    await offBeat();
    const t0 = Date.now();
    const id = await sbatch(w, job);
    await slurmFinished(w, id, job.tasks.length);
    const wall = (Date.now() - t0) / 1000;
    await removeJobFolder(job.dir);
    return wall;
  },
  async teardown() {
    printNotes('slurm-array-wall');
    await releaseWorld();
  },
};

const gatewaySubmitBench: Benchmark<SlurmWorld> = {
  name: 'slurm-gateway-submit',
  unit: 'ms',
  baseline: "one POST /job/submit straight to slurmrestd as the account (the backend's body, not held)",
  warmup: 0,
  rounds: 3,
  setup,
  async candidate(w) {
    const times: number[] = [];
    for (let i = 0; i < SUBMITS_PER_ROUND; i++) {
      const s = spec(w, {});
      const t0 = performance.now();
      const id = await gatewaySubmit(w, s);
      times.push(performance.now() - t0);
      await gatewayFinished(w, id);
      await dropOutput(w, s.output);
    }
    return median(times);
  },
  async baselineRun(w) {
    const times: number[] = [];
    for (let i = 0; i < SUBMITS_PER_ROUND; i++) {
      const job = await prepareDirect(w, spec(w, {}));
      const headers = await restHeaders(w);
      const t0 = performance.now();
      const id = await restSubmit(w, job, headers);
      times.push(performance.now() - t0);
      await slurmFinished(w, id, job.tasks.length);
      await removeJobFolder(job.dir);
    }
    return median(times);
  },
  teardown: releaseWorld,
};

export const benchmarks: Benchmark[] = [firstTask as Benchmark, arrayWall as Benchmark, gatewaySubmitBench as Benchmark];
