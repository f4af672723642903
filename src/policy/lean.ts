// The policy room's second face, for the command line: the words its help and tables show, without
// the policy engine.
export { ACTIONS, type Action, QUOTA_LIMITS, type QuotaLimit } from './words.js';
