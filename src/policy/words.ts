// The words of the policy vocabulary the command line shows in its help and tables (actions, quota
// limits), as plain constants: printing them must not load the policy engine.
export const ACTIONS = ['read', 'write', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

/** The quota lines' limits. All but the last three are held at once across a user's running jobs (core_hours_per_day is a day's total, max_job_runtime_s a job's own, max_storage_mb the datasets one owns). */
export const QUOTA_LIMITS = ['max_concurrent_jobs', 'max_cores', 'max_memory_mb', 'max_job_runtime_s', 'core_hours_per_day', 'max_storage_mb'] as const;
export type QuotaLimit = (typeof QUOTA_LIMITS)[number];
