// The sandbox's face: how the engine isolates the tasks that run users' code (see ISOLATION.md).
export {
  type DetectOptions,
  type Isolation,
  type NamespaceTools,
  PRIVATE_TMP,
  type SandboxErrorCode,
  type SandboxMode,
  type SandboxTools,
  type UidRange,
  detectIsolation,
  findWorldWritable,
  type WorldWritable,
  WORLD_WRITABLE_PLACES,
  parseUidRange,
  SandboxError,
} from './isolation.js';
export { killUidProcesses, UidPool } from './uids.js';
export { installRuntime, secureDataRoot } from './data-root.js';
export {
  type JobArea,
  type TaskPaths,
  prepareJobArea,
  removeJobArea,
  SEALED_DIR,
  sealJobOutput,
  taskPaths,
  writeJobSource,
} from './job-area.js';
export { REMOVING_PREFIX, removeTree } from './safe-tree.js';
export { sweepUid } from './uid-sweep.js';
export { type TaskLimits, type WorkerLaunch, killTaskGroup, outOfMemoryMessage, taskLaunch } from './launch.js';
export { taskReachProblem } from './reach.js';
