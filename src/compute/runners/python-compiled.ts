// The Python runner compiled once, at the engine's start, beside the copy tasks read. A script named
// on python's command line is compiled from source at every start (CPython keeps no cache for it):
// about 1.1 ms of CPU for python_runner.py, in every warm worker, two a job. Run from its .pyc the
// interpreter only unmarshals it (0.02 ms). Compiled by the interpreter the tasks run (engine.python),
// so its magic number is theirs; until it is written, or if it cannot be, workers run the source.
// An interpreter replaced while the engine runs (a package upgrade, perhaps to another minor version
// with another magic number: every worker would fail to start on the old .pyc) is seen at the next
// worker's start by its file's stamp: that worker runs the source, and the runner is compiled again.
import { execFile } from 'node:child_process';
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TASK_PATH } from '../sandbox/launch.js';
import { RUNNER_FILES } from './runner-files.js';

export const COMPILED_PYTHON_RUNNER = 'python_runner.pyc';

// -I -S: no environment variable, user site, site-packages (.pth files run code) or folder of the
// caller's on the path: only the standard library compiles the runner. Written through a temporary
// file and renamed (py_compile's own atomic write), the mode copied from the source (0644).
const COMPILE = 'import py_compile, sys\npy_compile.compile(sys.argv[1], cfile=sys.argv[2], dfile=sys.argv[3], doraise=True)';

/**
 * Compiles `<runtimeDir>/python_runner.py` into `python_runner.pyc` with `python`; null once written,
 * else why not. `shownDir` is the runtime folder as tasks see it: the name tracebacks give the runner.
 * A bare name is looked up on `path`, the tasks' own PATH by default: a .pyc of another interpreter
 * than the tasks run (another magic number) would fail every Python job.
 */
export async function compilePythonRunner(python: string, runtimeDir: string, shownDir: string, path = TASK_PATH): Promise<string | null> {
  const compiled = join(runtimeDir, COMPILED_PYTHON_RUNNER);
  // An older engine's, compiled from another runner: never left where a task could be pointed at it.
  await rm(compiled, { force: true });
  const args = ['-I', '-S', '-c', COMPILE, join(runtimeDir, RUNNER_FILES.python), compiled, join(shownDir, RUNNER_FILES.python)];
  return new Promise((resolve) => {
    execFile(python, args, { cwd: '/', env: { PATH: path }, timeout: 10_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      resolve(error === null ? null : `${stderr}${stdout}`.trim() || error.message);
    });
  });
}

/**
 * The file `python` names (a bare name: the first executable of that name on `path`, as exec finds it),
 * through its links, and what identifies that file's content: an upgrade replaces the file (another
 * inode) or repoints its link (another target). null when there is none.
 */
export function interpreterStamp(python: string, path = TASK_PATH): string | null {
  const candidates = python.includes('/') ? [python] : path.split(':').filter((dir) => dir !== '').map((dir) => join(dir, python));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      const real = realpathSync(candidate);
      const s = statSync(real);
      if (s.isFile()) return `${real}:${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      // not there or not executable: exec would look further too
    }
  }
  return null;
}

export interface CompiledRunnerOptions {
  python: string;
  runtimeDir: string;
  /** The runtime folder as tasks see it (tracebacks name the runner there). */
  shownDir: string;
  /** Where a bare `python` is looked up: the tasks' PATH. */
  path?: string;
  /** Told once for every compile that fails, and when the interpreter changed under the .pyc. */
  warn: (fields: Record<string, unknown>, message: string) => void;
  info: (message: string) => void;
}

/** The compiled runner, and whether a worker starting now may run it (usable). */
export class CompiledPythonRunner {
  /** The stamp of the interpreter the .pyc was compiled by; null while there is no usable .pyc. */
  private stamp: string | null = null;
  private compiling: Promise<void> | null = null;

  constructor(private readonly o: CompiledRunnerOptions) {}

  /** Compiles it (once at a time); settles when that compile is over, whatever its outcome. */
  compile(): Promise<void> {
    if (this.compiling !== null) return this.compiling;
    // Stamped before: an interpreter replaced during the compile is seen by the next usable().
    const stamp = interpreterStamp(this.o.python, this.o.path);
    this.compiling = compilePythonRunner(this.o.python, this.o.runtimeDir, this.o.shownDir, this.o.path).then((problem) => {
      this.compiling = null;
      if (problem === null && stamp !== null) {
        this.stamp = stamp;
        this.o.info('compiled the Python runner: workers run python_runner.pyc');
      } else this.o.warn({ python: this.o.python, problem: problem ?? 'the interpreter was not found' }, 'could not compile the Python runner: workers run it from source (about 1 ms more each)');
    });
    return this.compiling;
  }

  /** Whether a worker starting now runs the .pyc: compiled, by the interpreter that is still there. */
  usable(): boolean {
    if (this.stamp === null) return false;
    if (interpreterStamp(this.o.python, this.o.path) === this.stamp) return true;
    this.stamp = null;
    this.o.warn({ python: this.o.python }, 'the Python interpreter changed since the runner was compiled: workers run it from source until it is compiled again');
    void this.compile();
    return false;
  }

  /** Settles when no compile is running (the engine's close waits for it). */
  async settled(): Promise<void> {
    while (this.compiling !== null) await this.compiling;
  }
}
