// What clients see of a job: the backend's status (src/wire's JobStatus) with the backend's name,
// or, before the backend has it (pending, being handed over), the same shape from the record.
import Type, { type Static } from 'typebox';
import { JobStatusSchema, type JobStatus, ResourcesSchema } from '../wire/index.js';
import type { JobRecord } from './job-records.js';

export const JobViewSchema = Type.Object(
  {
    ...JobStatusSchema.properties,
    backend: Type.String({ description: 'where the job runs (bundled)' }),
    queue_position: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: "while pending: its place in its owner's queue, 1 the next to be admitted; else null" }),
    cancelled_by: Type.Union([Type.String(), Type.Null()], { description: 'once cancelled: who cancelled it (its owner, or another user policy allowed); else null' }),
  },
  { additionalProperties: false },
);
export type JobView = Static<typeof JobViewSchema>;

/** One job's answer (GET /v1/jobs/:id): its view and the token that stands for what the caller has now seen of it. */
export const JobSeenViewSchema = Type.Object(
  {
    ...JobViewSchema.properties,
    seen: Type.String({ description: 'stands for what this answer shows (state, partitions, reason, end); sent back as seen= with wait_s, the next answer comes once the job differs from it' }),
  },
  { additionalProperties: false },
);
export type JobSeenView = Static<typeof JobSeenViewSchema>;

export const JobViewListSchema = Type.Object({ jobs: Type.Array(JobViewSchema) }, { additionalProperties: false });

export const CreatedSchema = Type.Object(
  {
    id: Type.String(),
    state: Type.Union([Type.Literal('pending'), Type.Literal('queued'), Type.Literal('running')]),
    reason: Type.Union([Type.String(), Type.Null()], { description: 'why it waits, while pending' }),
  },
  { additionalProperties: false },
);

const Limit = Type.Object(
  {
    value: Type.Number(),
    source: Type.String({ description: 'user, role, default or built-in' }),
    line: Type.Union([Type.String(), Type.Null()], { description: 'the policy line that set it' }),
  },
  { additionalProperties: false },
);

export const QuotaViewSchema = Type.Object(
  {
    user: Type.String(),
    policy_version: Type.String(),
    limits: Type.Object(
      { max_concurrent_jobs: Limit, max_cores: Limit, max_memory_mb: Limit, max_job_runtime_s: Limit, core_hours_per_day: Limit, max_storage_mb: Limit },
      { additionalProperties: false },
    ),
    usage: Type.Object(
      { running_jobs: Type.Integer(), cores: Type.Integer(), memory_mb: Type.Integer({ description: 'of every worker: each admitted job holds cores × its memory_mb per worker' }), core_seconds_24h: Type.Number() },
      { additionalProperties: false, description: 'held by admitted jobs now; core-seconds over the last 24 hours' },
    ),
    pending: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          name: Type.String(),
          reason: Type.String(),
          resources: ResourcesSchema,
          memory_mb_total: Type.Integer({ description: 'the memory it will hold once admitted: cores × memory_mb per worker' }),
          created_at: Type.String({ format: 'date-time' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type QuotaView = Static<typeof QuotaViewSchema>;

/** The client's view of a record, from the backend's status when there is one; `queue`: a pending job's reason and place. */
export function viewOf(record: JobRecord, status: JobStatus | null, queue?: { reason: string; position: number }): JobView {
  const resources = { cores: record.cores, memory_mb: record.memory_mb, time_limit_s: record.time_limit_s };
  const cancelled_by = record.state === 'cancelled' ? (record.cancelled_by ?? null) : null;
  if (status !== null) {
    // The record decides the outcome the gateway acted on; the backend adds the progress.
    const ended = record.state === 'succeeded' || record.state === 'failed' || record.state === 'cancelled';
    return {
      ...status,
      id: record.id,
      user: record.user,
      created_at: record.created_at, // when it was submitted, not when the backend got it
      state: ended ? (record.state as JobStatus['state']) : status.state,
      error: ended ? (record.error ?? status.error) : status.error,
      finished_at: ended ? (status.finished_at ?? record.finished_at) : status.finished_at,
      backend: record.backend,
      queue_position: null,
      cancelled_by,
    };
  }
  const state = record.state === 'dispatching' ? 'queued' : record.state;
  return {
    id: record.id,
    name: record.name,
    user: record.user,
    state,
    input: record.input,
    output: record.output,
    runtime: record.spec.runtime,
    resources,
    partitions: { total: 0, done: 0, failed: 0, running: 0 },
    workers: 0,
    rows_in: 0,
    rows_out: 0,
    bytes_in: 0,
    bytes_out: 0,
    created_at: record.created_at,
    started_at: null,
    finished_at: record.finished_at,
    core_seconds: record.core_seconds,
    attempts: 0,
    error: record.error,
    reason: record.state === 'pending' ? (queue?.reason ?? record.reason) : record.state === 'dispatching' ? (record.reason ?? 'being handed to the backend') : null,
    backend: record.backend,
    queue_position: record.state === 'pending' ? (queue?.position ?? null) : null,
    cancelled_by,
  };
}
