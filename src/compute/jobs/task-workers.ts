// The worker a slot runs for a job: a warm runner (python, node) that loads the job's source once, or,
// for a command job, the command started once per partition. Apart because it is the one place that
// turns a job's spec into task launches in its sandbox.
import { join } from 'node:path';
import { DEFAULT_ENTRYPOINT } from '../../wire/index.js';
import { expandArgv, runCommand, runtimeArgv, taskLauncher, WarmWorker, WorkerStartError } from '../runners/index.js';
import { taskLaunch, taskPaths } from '../sandbox/index.js';
import type { JobEngineOptions } from './engine-context.js';
import type { JobRun, TaskOutcome, TaskWorker } from './job-run.js';

/** The user's source in the job's work/, by runtime. */
export const SOURCE_FILE = { python: 'job.py', node: 'job.mjs', command: 'job.src' } as const;

export function newWorker(o: JobEngineOptions, run: JobRun): TaskWorker {
  const { spec, granted, id } = run.row;
  const area = run.area!;
  const paths = taskPaths(o.isolation, area, o.runtimeDir);
  const source = join(paths.work, SOURCE_FILE[spec.runtime]);
  const limits = { memoryMb: granted.memory_mb, addressSpace: spec.runtime !== 'node', maxFileBytes: o.maxOutputBytes };
  const sink = (partition: number | null, stream: 'stdout' | 'stderr', line: string) => run.log.partition(partition, stream, line);
  if (spec.runtime === 'command') {
    const launchFor = (task: { input: string; output: string; partition: number }) =>
      taskLaunch(o.isolation, area, o.runtimeDir, expandArgv(spec.argv!, { ...task, partition: String(task.partition), source }), limits);
    return new CommandWorker(launchFor, sink);
  }
  const argv = runtimeArgv(spec.runtime, {
    runtimeDir: paths.runtime,
    source,
    entrypoint: spec.entrypoint ?? DEFAULT_ENTRYPOINT,
    jobId: id,
    python: o.python,
    pythonCompiled: o.pythonCompiled?.() ?? false,
    memoryMb: granted.memory_mb,
    node: process.execPath,
  });
  // No GATEHOUSE_PDEATHSIG: the launch itself ends the worker with the engine (setpriv --pdeathsig,
  // then bubblewrap's --die-with-parent or unshare's --kill-child and the pid namespace; the sandbox
  // tests kill an engine -9 in each mode). The runner's own prctl only repeated it, and its ctypes
  // import was about 1.5 ms of CPU in every worker's start.
  // Started by the engine's launcher process: a spawn here would fork the whole engine on its thread.
  const launcher = taskLauncher(o.isolation.tools.setpriv);
  const fresh = () => WarmWorker.start(taskLaunch(o.isolation, area, o.runtimeDir, argv, limits), sink, (launch) => launcher.start(launch));
  // A spare sandbox's runner first (spares.ts): started before the job, told it now, in this same area.
  const spare = spec.runtime === 'python' ? run.spareRunners.shift() : undefined;
  let warm: WarmWorker;
  let ready: Promise<void>;
  if (spare !== undefined) {
    spare.sink = sink;
    warm = spare.worker;
    warm.assign({ source, entrypoint: spec.entrypoint ?? DEFAULT_ENTRYPOINT, jobId: id });
    ready = warm.ready().catch((err: unknown) => {
      // Gone before it said ready, not for the job's source: not the job's failure; a fresh worker instead.
      if (err instanceof WorkerStartError || run.stopped) throw err;
      warm = fresh();
      return warm.ready();
    });
  } else {
    warm = fresh();
    ready = warm.ready();
  }
  ready.catch(() => undefined); // asked by the worker loop; never an unhandled rejection
  return {
    // Counted from now (core seconds): a spare's wait before its job is not the job's.
    startedAt: Date.now(),
    get depth() {
      return warm.depth;
    },
    ready: () => ready,
    run: async (task) => {
      const result = await warm.run(task);
      return result.ok ? result : { ok: false, error: result.error, oom: result.oom, ...(result.unanswered ? { unanswered: true } : {}) };
    },
    finish: () => warm.finish(),
    stop: () => warm.stop(),
    kill: () => warm.kill(),
  };
}

/** A slot that runs the command once per partition. */
class CommandWorker implements TaskWorker {
  readonly startedAt = Date.now();
  readonly depth = 1;
  private readonly abort = new AbortController();

  constructor(
    private readonly launchFor: (task: { input: string; output: string; partition: number }) => ReturnType<typeof taskLaunch>,
    private readonly sink: (partition: number | null, stream: 'stdout' | 'stderr', line: string) => void,
  ) {}

  async ready(): Promise<void> {}

  async run(task: { partition: number; input: string; output: string }): Promise<TaskOutcome> {
    const result = await runCommand(this.launchFor(task), task.partition, this.sink, this.abort.signal);
    return result.ok ? { ok: true, rows_out: null, bytes_out: null, seconds: result.seconds } : { ok: false, error: result.error, oom: result.oom };
  }

  async stop(): Promise<void> {}

  kill(): void {
    this.abort.abort();
  }
}
