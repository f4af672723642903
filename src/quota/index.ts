// src/quota's face: `admit(identity, request) → Admission` through AdmissionControl (limits from
// policy, the usage ledger, the pending queue), and the limits arithmetic it rests on.
export { type Admission, AdmissionControl, BACKEND_SLOTS, type AdmissionRequest, type Drained, type PendingJob } from './admission.js';
export { UsageLedger } from './ledger.js';
export { checkQuota, heldMemoryMb, limitsFor, memoryWords, NO_USAGE, type QuotaCheck, type ResourceRequest, type Usage } from './limits.js';
