// src/policy's face. `decide(identity, object, action)` arrives with the governance issue.
export { loadPolicy, PolicyError, type PolicySnapshot } from './load.js';
