// One partition of a job, run outside the engine: what a Slurm array task runs, as the person's own
// account, on a cluster node (`node bin/gatehouse-task.js --job <dir> --partition N`). It reads
// partition N of the job's input from the data root through the shared catalog, runs the engine's
// own runners on it (a warm python/node worker for one partition, or the command), and leaves
//
//   <dir>/out/part-NNNNN.<format>    the output, NNNNN the input partition number
//   <dir>/done/part-NNNNN.json       {partition, rows, bytes, seconds}: written last, so it is there
//                                    only once the output is whole
//
// in the job folder the gateway wrote (<dir>/spec.json: {id, spec, granted, data_root}). Both are
// renamed into place, so a task Slurm runs again (a requeue) replaces its own output whole. No
// sandbox here: the task already runs as the person under Slurm's limits. The gateway commits the
// partitions as one dataset once every task is done.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { Value } from 'typebox/value';
import { DatasetError, openDataset, openRoot, partitionFile } from '../catalog/index.js';
import { DEFAULT_ENTRYPOINT, type JobSpec, JobSpecSchema, jobSpecProblem } from '../wire/index.js';
import { labelledLine } from './jobs/job-log.js';
import { SOURCE_FILE } from './jobs/task-workers.js';
import { countRows, expandArgv, type LineSink, runCommand, runnerScript, runtimeArgv, WarmWorker, type WorkerLaunch } from './runners/index.js';

/** The task cannot start: bad arguments, a job folder it cannot use, a partition the input lacks (exit 2). */
export class TaskUsageError extends Error {
  override readonly name = 'TaskUsageError';
}

/** The partition ran and failed: the job's code, its command or its output (exit 1). */
export class TaskFailedError extends Error {
  override readonly name = 'TaskFailedError';
}

export interface PartitionTaskOptions {
  jobDir: string;
  /** The input partition to run (Slurm's array task id). */
  partition: number;
  /** The python runtime's interpreter (engine.python). */
  python?: string;
  /** Where the task's own prints go (default: this process's stdout and stderr). */
  sink?: LineSink;
}

export interface PartitionDone {
  partition: number;
  rows: number;
  bytes: number;
  seconds: number;
}

interface JobFile {
  id: string;
  spec: JobSpec;
  memoryMb: number;
  dataRoot: string;
}

async function readJobFile(jobDir: string): Promise<JobFile> {
  const path = join(jobDir, 'spec.json');
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new TaskUsageError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing (is --job the job folder?)' : `unreadable: ${(err as Error).message}`}`);
  }
  if (typeof value !== 'object' || value === null) throw new TaskUsageError(`${path}: not a JSON object`);
  const { id, spec, granted, data_root: dataRoot } = value as { id?: unknown; spec?: unknown; granted?: { memory_mb?: unknown }; data_root?: unknown };
  if (typeof id !== 'string' || id === '') throw new TaskUsageError(`${path}: id: expected the job id`);
  if (typeof dataRoot !== 'string' || !isAbsolute(dataRoot)) throw new TaskUsageError(`${path}: data_root: expected an absolute path`);
  if (!Value.Check(JobSpecSchema, spec)) throw new TaskUsageError(`${path}: spec: not a valid job spec`);
  const problem = jobSpecProblem(spec);
  if (problem !== null) throw new TaskUsageError(`${path}: spec.${problem}`);
  const memoryMb = granted?.memory_mb ?? spec.resources.memory_mb;
  if (typeof memoryMb !== 'number' || !Number.isSafeInteger(memoryMb) || memoryMb <= 0) throw new TaskUsageError(`${path}: granted.memory_mb: expected a whole number of MB`);
  return { id, spec, memoryMb, dataRoot };
}

/**
 * The job's own lines, labelled as the bundled engine's log labels them: under Slurm both streams
 * end in one log file (log-N.txt), where `stderr:` is the only way to tell them apart.
 */
const printTo: LineSink = (_partition, stream, line) => {
  (stream === 'stdout' ? process.stdout : process.stderr).write(`${labelledLine(stream, line)}\n`);
};

/** Runs one partition into the job folder; rejects TaskUsageError or TaskFailedError. */
export async function runPartitionTask(o: PartitionTaskOptions): Promise<PartitionDone> {
  const { partition } = o;
  const job = await readJobFile(o.jobDir);
  const { spec } = job;
  if (spec.partitions !== undefined && !spec.partitions.includes(partition)) throw new TaskUsageError(`partition ${partition}: not one of the job's partitions (${spec.partitions.join(', ')})`);
  let input: Awaited<ReturnType<typeof openDataset>>;
  try {
    input = await openDataset(await openRoot(job.dataRoot), spec.input);
  } catch (err) {
    if (err instanceof DatasetError) throw new TaskUsageError(`input ${spec.input}: ${err.message}`);
    throw err;
  }
  const count = input.manifest.partitions.length;
  if (partition >= count) throw new TaskUsageError(`partition ${partition}: ${spec.input} has ${count === 0 ? 'no partitions' : `partitions 0 to ${count - 1}`}`);

  const inputFile = join(input.dir, input.manifest.partitions[partition]!.file);
  const format = input.manifest.format;
  const outputFormat = spec.output_format ?? format;
  const file = partitionFile(partition, outputFormat);
  const outDir = join(o.jobDir, 'out');
  const doneDir = join(o.jobDir, 'done');
  const doneFile = join(doneDir, partitionFile(partition, outputFormat).replace(/\.(csv|jsonl)$/, '.json'));
  // A task run again starts clean: its earlier end no longer counts, its scratch is fresh.
  await rm(doneFile, { force: true });
  const work = join(o.jobDir, 'work', `part-${partition}`);
  await rm(work, { recursive: true, force: true });
  await Promise.all([mkdir(work, { recursive: true, mode: 0o700 }), mkdir(outDir, { recursive: true }), mkdir(doneDir, { recursive: true })]);
  const source = join(work, SOURCE_FILE[spec.runtime]);
  if (spec.source !== undefined) await writeFile(source, spec.source, { mode: 0o600 });
  const attempt = join(outDir, `.${file}.${process.pid}`);
  await rm(attempt, { force: true });

  const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: work, TMPDIR: work, LANG: 'C.UTF-8', PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' };
  const sink = o.sink ?? printTo;
  const launch = (argv: string[], extra: Record<string, string> = {}): WorkerLaunch => ({ file: argv[0]!, args: argv.slice(1), env: { ...env, ...extra }, cwd: work });
  try {
    let rows: number;
    let seconds: number;
    if (spec.runtime === 'command') {
      const result = await runCommand(launch(expandArgv(spec.argv!, { input: inputFile, output: attempt, partition: String(partition), source })), partition, sink);
      if (!result.ok) throw new TaskFailedError(`partition ${partition}: ${result.error}`);
      seconds = result.seconds;
      try {
        rows = (await countRows(attempt, outputFormat)).rows;
      } catch (err) {
        throw new TaskFailedError(`partition ${partition}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the command wrote nothing to its output' : `its output cannot be read: ${(err as Error).message}`}`);
      }
    } else {
      const argv = runtimeArgv(spec.runtime, {
        runtimeDir: dirname(runnerScript(spec.runtime)),
        source,
        entrypoint: spec.entrypoint ?? DEFAULT_ENTRYPOINT,
        jobId: job.id,
        python: o.python ?? 'python3',
        node: process.execPath,
        memoryMb: job.memoryMb,
      });
      const worker = WarmWorker.start(launch(argv, { GATEHOUSE_PDEATHSIG: '1' }), sink);
      try {
        await worker.ready();
        const result = await worker.run({ partition, attempt: 1, input: inputFile, output: attempt, format });
        if (!result.ok) throw new TaskFailedError(`partition ${partition}: ${result.error}`);
        rows = result.rows_out;
        seconds = result.seconds;
      } catch (err) {
        if (err instanceof TaskFailedError) throw err;
        throw new TaskFailedError(`the ${spec.runtime} source failed to load: ${(err as Error).message}`);
      } finally {
        await worker.stop();
      }
    }
    // The runners count rows; the bytes are the file's, whatever its writer said.
    const bytes = (await countRows(attempt, outputFormat)).bytes;
    await rename(attempt, join(outDir, file));
    const done: PartitionDone = { partition, rows, bytes, seconds };
    await writeFile(`${doneFile}.${process.pid}`, `${JSON.stringify(done)}\n`);
    await rename(`${doneFile}.${process.pid}`, doneFile);
    return done;
  } finally {
    await rm(attempt, { force: true });
    await rm(work, { recursive: true, force: true });
  }
}

const USAGE = 'usage: gatehouse-task --job <job folder> --partition <N> [--python <interpreter>]';

/** The command line: 0 done, 1 the partition failed, 2 it could not start. Messages go to stderr. */
export async function taskMain(argv: readonly string[]): Promise<number> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (!['--job', '--partition', '--python'].includes(flag) || value === undefined) {
      process.stderr.write(`gatehouse-task: ${value === undefined && flag.startsWith('--') ? `${flag} needs a value` : `unknown argument ${JSON.stringify(flag)}`}\n${USAGE}\n`);
      return 2;
    }
    flags.set(flag, value);
  }
  const jobDir = flags.get('--job');
  const partitionText = flags.get('--partition');
  if (jobDir === undefined || partitionText === undefined) {
    process.stderr.write(`gatehouse-task: ${jobDir === undefined ? '--job' : '--partition'} is required\n${USAGE}\n`);
    return 2;
  }
  if (!/^(0|[1-9][0-9]{0,8})$/.test(partitionText)) {
    process.stderr.write(`gatehouse-task: --partition: expected a partition number (0, 1, ...), got ${JSON.stringify(partitionText)}\n`);
    return 2;
  }
  try {
    const python = flags.get('--python');
    const done = await runPartitionTask({ jobDir, partition: Number(partitionText), ...(python !== undefined ? { python } : {}) });
    process.stderr.write(`gatehouse-task: partition ${done.partition} done: ${done.rows} rows, ${done.bytes} bytes in ${done.seconds.toFixed(2)} s\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`gatehouse-task: ${(err as Error).message}\n`);
    return err instanceof TaskFailedError ? 1 : err instanceof TaskUsageError ? 2 : 1;
  }
}
