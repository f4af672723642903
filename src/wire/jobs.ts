// Jobs as both sides see them: the JobSpec a client submits (the gateway validates it, the engine
// re-validates it), and the status the engine reports back.
import { createHash } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { DATASET_NAME_MAX_LENGTH, DATASET_NAME_PATTERN } from './datasets.js';
import { FINAL_STATES, JOB_STATES, type JobState, RUNTIMES, type Runtime } from './job-states.js';

export { FINAL_STATES, JOB_STATES, type JobState, RUNTIMES, type Runtime };

/** Source text travels inside the JSON body: 1 MiB is a big script, not a dataset smuggled in. */
export const SOURCE_MAX_BYTES = 1024 * 1024;
export const DEFAULT_MAX_ATTEMPTS = 2;
export const DEFAULT_ENTRYPOINT = 'process';

const DatasetName = (description: string) =>
  Type.String({ pattern: DATASET_NAME_PATTERN, maxLength: DATASET_NAME_MAX_LENGTH, description });

export const ResourcesSchema = Type.Object(
  {
    cores: Type.Integer({ minimum: 1, maximum: 1024, description: 'concurrent workers at most' }),
    memory_mb: Type.Integer({ minimum: 64, maximum: 1_048_576, description: 'per worker, enforced by the OS' }),
    time_limit_s: Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600, description: 'wall time from start; the job is killed after it' }),
  },
  { additionalProperties: false },
);
export type Resources = Static<typeof ResourcesSchema>;

export const JobSpecSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'a label for people; not unique' }),
    input: DatasetName('the dataset whose partitions are processed'),
    output: DatasetName('the dataset the job creates'),
    runtime: Type.Union([Type.Literal('python'), Type.Literal('node'), Type.Literal('command')]),
    source: Type.Optional(Type.String({ maxLength: SOURCE_MAX_BYTES, description: 'python or node: the module text; command: written to a file the argv names as {source}' })),
    entrypoint: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 128, description: `the function called per partition (${DEFAULT_ENTRYPOINT})` })),
    argv: Type.Optional(
      Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256, description: 'command: the program and arguments; {input} {output} {partition} {source} are replaced' }),
    ),
    resources: ResourcesSchema,
    partitions: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 9999 }), { minItems: 1, maxItems: 10_000, uniqueItems: true, description: 'a subset of the input partitions (all by default)' })),
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: `tries per partition (${DEFAULT_MAX_ATTEMPTS})` })),
    mode: Type.Optional(Type.Union([Type.Literal('create'), Type.Literal('overwrite')], { description: 'overwrite replaces an existing output dataset; create (the default) refuses' })),
    output_format: Type.Optional(Type.Union([Type.Literal('csv'), Type.Literal('jsonl')], { description: "the output's format (the input's by default)" })),
    labels: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$', maxLength: 64 }), { maxItems: 64, uniqueItems: true, description: "added to the input's labels on the output" })),
    backend: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]+$', maxLength: 32, description: 'bundled (default) or slurm' })),
  },
  { additionalProperties: false },
);
export type JobSpec = Static<typeof JobSpecSchema>;

/** Null when a schema-valid spec is also coherent, else one sentence naming the field. */
export function jobSpecProblem(spec: JobSpec): string | null {
  if (spec.runtime === 'command') {
    if (spec.argv === undefined) return 'argv: the command runtime needs an argv, such as ["sort", "-o", "{output}", "{input}"]';
    if (spec.entrypoint !== undefined) return 'entrypoint: the command runtime runs argv; entrypoint is for python and node';
  } else {
    if (spec.source === undefined || spec.source.trim() === '') return `source: the ${spec.runtime} runtime needs the module's source text`;
    if (spec.argv !== undefined) return `argv: only the command runtime takes an argv; ${spec.runtime} calls ${spec.entrypoint ?? DEFAULT_ENTRYPOINT}()`;
  }
  if (spec.input === spec.output) return 'output: a job cannot write the dataset it reads';
  return null;
}

/**
 * sha256 of the spec's canonical JSON (keys sorted): what an admission ticket binds, so the engine
 * runs exactly the spec the gateway admitted.
 */
export function jobSpecHash(spec: JobSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('base64url');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const Time = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const JobStatusSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    user: Type.String(),
    state: Type.Union([Type.Literal('pending'), Type.Literal('queued'), Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('cancelled')]),
    input: Type.String(),
    output: Type.String(),
    runtime: Type.String(),
    resources: ResourcesSchema,
    partitions: Type.Object({ total: Type.Integer(), done: Type.Integer(), failed: Type.Integer(), running: Type.Integer() }),
    workers: Type.Integer({ description: 'worker processes alive now' }),
    rows_in: Type.Integer({ description: 'rows of the partitions done' }),
    rows_out: Type.Integer(),
    bytes_in: Type.Integer(),
    bytes_out: Type.Integer(),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Time,
    finished_at: Time,
    core_seconds: Type.Number({ description: 'worker-process seconds, what the usage ledger charges' }),
    attempts: Type.Integer({ description: 'partition runs started, retries included' }),
    error: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()], { description: 'why it waits, while queued or pending' }),
    backend_job_id: Type.Optional(Type.String({ description: "the backend's own id for the job where it has one (Slurm's job id, what squeue and sacct show)" })),
    posix_user: Type.Optional(Type.String({ description: 'the POSIX account the job runs as on a cluster (Slurm)' })),
  },
  { additionalProperties: false },
);
export type JobStatus = Static<typeof JobStatusSchema>;

export const JobListSchema = Type.Object({ jobs: Type.Array(JobStatusSchema) }, { additionalProperties: false });
export type JobList = Static<typeof JobListSchema>;
