// The argv that starts a warm worker for a job's runtime, with paths as the task sees them.
import { posix } from 'node:path';
import { COMPILED_PYTHON_RUNNER } from './python-compiled.js';
import { RUNNER_FILES } from './runner-files.js';

export interface RuntimeArgvOptions {
  /** Where the engine copied python_runner.py and node_runner.mjs, as the task sees it. */
  runtimeDir: string;
  /** The job's source file, as the task sees it. */
  source: string;
  entrypoint: string;
  jobId: string;
  /** The Python interpreter and the Node binary to run. */
  python: string;
  node: string;
  /** The job's memory per task; Node's heap is sized from it. */
  memoryMb: number;
  /** python_runner.pyc is in runtimeDir, compiled by this python (python-compiled.ts): run it, not the source. */
  pythonCompiled?: boolean;
}

/** V8's heap is only part of a Node process's memory: leave a quarter for code, buffers and the rest. */
const NODE_HEAP_SHARE = 0.75;
const NODE_MIN_HEAP_MB = 32;

export function runtimeArgv(runtime: 'python' | 'node', o: RuntimeArgvOptions): string[] {
  const job = ['--source', o.source, '--entrypoint', o.entrypoint, '--job', o.jobId];
  if (runtime === 'python') return [o.python, '-u', posix.join(o.runtimeDir, o.pythonCompiled === true ? COMPILED_PYTHON_RUNNER : RUNNER_FILES.python), ...job];
  const heap = Math.max(NODE_MIN_HEAP_MB, Math.floor(o.memoryMb * NODE_HEAP_SHARE));
  return [o.node, `--max-old-space-size=${heap}`, posix.join(o.runtimeDir, RUNNER_FILES.node), ...job];
}

/**
 * A spare python worker's argv (sandbox/ISOLATION.md, spare sandboxes): the runner with no job, which
 * it is sent over its channel (WarmWorker.assign) once a job takes it.
 */
export function spareRuntimeArgv(o: Pick<RuntimeArgvOptions, 'runtimeDir' | 'python' | 'pythonCompiled'>): string[] {
  return [o.python, '-u', posix.join(o.runtimeDir, o.pythonCompiled === true ? COMPILED_PYTHON_RUNNER : RUNNER_FILES.python), '--spare'];
}
