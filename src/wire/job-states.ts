// The job vocabulary as plain constants, with no schema library behind them: the command line's
// help lists them, and it must not load the wire schemas to print help.
export const RUNTIMES = ['python', 'node', 'command'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export const JOB_STATES = ['pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];
