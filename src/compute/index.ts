// src/compute's face: the engine process. Datasets, the scheduler and runners arrive with the engine issue.
export { buildEngine, type EngineOptions } from './server.js';
export { startEngine } from './start.js';
