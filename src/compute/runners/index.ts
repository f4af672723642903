// src/compute/runners' face: warm workers for the python and node runtimes, one process per
// partition for the command runtime, and the row counting all of them share. The runner scripts
// themselves (python_runner.py, node_runner.mjs) sit beside this file; runnerScript() finds them
// for the engine, which copies them where its tasks can read them.
export { runtimeArgv, type RuntimeArgvOptions, spareRuntimeArgv } from './argv.js';
export { type CommandResult, expandArgv, type PlaceholderValues, runCommand } from './command-task.js';
export { LAUNCHER_OPTIONS, launcherArgv, TaskLauncher, taskLauncher } from './launcher.js';
export { COMPILED_PYTHON_RUNNER, CompiledPythonRunner, compilePythonRunner, interpreterStamp } from './python-compiled.js';
export { countRows } from './rows.js';
export { RUNNER_FILES, runnerScript } from './runner-files.js';
export {
  type LineSink,
  OUTPUT_TURN_BYTES,
  type PartitionTask,
  QUEUE_MAX,
  type TaskResult,
  type TaskStarter,
  WarmWorker,
  type WorkerExit,
  type WorkerLaunch,
  WorkerStartError,
} from './warm-worker.js';
export { spawnTask, type TaskProcess } from './task-process.js';
