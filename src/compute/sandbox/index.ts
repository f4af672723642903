// The sandbox's face: how the engine isolates the tasks that run users' code (see ISOLATION.md).
export { type DetectOptions, type Isolation, type SandboxMode, type SandboxTools, detectIsolation } from './isolation.js';
export type { NamespaceTools } from './namespaces.js';
export { type SandboxErrorCode, SandboxError } from './sandbox-error.js';
export { type UidRange, parseUidRange } from './uid-range.js';
export { findWorldWritable, PRIVATE_TMP, type WorldWritable, WORLD_WRITABLE_PLACES } from './world-writable.js';
export { killUidProcesses, UidPool } from './uids.js';
export { installRuntime, secureDataRoot } from './data-root.js';
export {
  type JobArea,
  type TaskPaths,
  prepareJobArea,
  removeJobArea,
  SANDBOX_PATHS,
  SEALED_DIR,
  sealJobOutput,
  taskPaths,
  writeJobSource,
} from './job-area.js';
export { REMOVING_PREFIX, removeTree } from './safe-tree.js';
export { adoptSpareArea, makeSpareArea, SPARE_PREFIX, spareId } from './spare-area.js';
export { jobInputLinks } from './job-area.js';
export { sweepUid } from './uid-sweep.js';
export { killRangeLeftovers } from './uid-leftovers.js';
export { TASK_PATH, type TaskLimits, type WorkerLaunch, killTaskGroup, outOfMemoryMessage, taskLaunch } from './launch.js';
export { taskReachProblem } from './reach.js';
export { unidleUid } from './idle.js';
export { closeInheritedDescriptors } from './inherited-fds.js';
