// The Python runner compiled once, at the engine's start, beside the copy tasks read. A script named
// on python's command line is compiled from source at every start (CPython keeps no cache for it):
// about 1.1 ms of CPU for python_runner.py, in every warm worker, two a job. Run from its .pyc the
// interpreter only unmarshals it (0.02 ms). Compiled by the interpreter the tasks run (engine.python),
// so its magic number is theirs; until it is written, or if it cannot be, workers run the source.
// Not handled: an interpreter replaced by another minor version while the engine runs (a distribution
// upgrade) has another magic number, and Python workers fail to start until the engine restarts.
import { execFile } from 'node:child_process';
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
