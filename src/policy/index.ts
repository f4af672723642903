// src/policy's face: load and check the files, decide, explain, and the tools IT runs on them.
export { decide, policyAuthorizer } from './decide.js';
export { explain, type Explanation, type MatchedRule, resolveQuota } from './explain.js';
export { type LintResult, lintFiles, lintPolicy, loadPolicy, MODEL_FILE, POLICY_FILE, type PolicyFiles, policyVersion, readPolicyFiles } from './load.js';
export { formatProblem, PolicyError, type PolicyProblem } from './problems.js';
export { BUILT_IN_LIMITS, type Limits, type ResolvedLimit, type ResolvedQuota } from './quotas.js';
export { PolicySnapshot } from './snapshot.js';
export { ACTIONS, type Action, objectProblem, QUOTA_LIMITS, type QuotaLimit } from './vocabulary.js';
export { forbidden } from './authorize.js';
export { writablePatterns } from './writable.js';
export { accessProblem, type AuthorizationStageOptions, describeAccess, installAuthorization, isPolicyNeed, requireDeclaredAccess } from './stage.js';
export { PolicyReloader, type ReloadDiff, type ReloadOutcome, type ReloadTrigger } from './reloader.js';
export { PolicyVersions, type StoredVersion } from './versions.js';
export { auditReload, installPolicyRoutes, outcomeBody, POLICY_OBJECT, type PolicyRouteOptions } from './routes.js';
export { type AccessChange, diffPolicies, type PolicyDiff, type QuotaChange } from './diff.js';
export { parsePolicyTests, type PolicyTestCase, type PolicyTestResult, readPolicyTests, runPolicyTests, TESTS_FILE } from './policy-tests.js';
