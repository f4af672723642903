// src/quota's face. Today the limits half: a user's limits from policy and the check of a request
// against them and current usage. The ledger, atomic admission and the pending queue come with the job path.
export { checkQuota, limitsFor, NO_USAGE, type QuotaCheck, type ResourceRequest, type Usage } from './limits.js';
