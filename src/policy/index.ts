// src/policy's face: load the files, and `decide(policy, subject, object, action)`.
export { type Decision, decide, type Subject } from './decide.js';
export { loadPolicy, PolicyError, type PolicySnapshot } from './load.js';
