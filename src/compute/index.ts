// src/compute's face: the engine process, and the demo datasets `gatehouse up` creates. The
// scheduler and runners arrive with the rest of the engine issue.
export { buildEngine, type EngineOptions } from './server.js';
export { startEngine } from './start.js';
export { closeInheritedDescriptors } from './sandbox/index.js';
export { ensureDemoData } from './demo-data.js';
export { type PartitionDone, type PartitionTaskOptions, runPartitionTask, TaskFailedError, taskMain, TaskUsageError } from './partition-task.js';
