// src/compute's third face, for `gatehouse up`: the demo datasets written into the data root before the
// engine starts, without the engine itself (its server, job database and runners load in the engine's process).
export { ensureDemoData } from './demo-data.js';
