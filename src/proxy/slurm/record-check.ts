// A Slurm job record as read back from the store (or from an older gateway's state.dir/slurm file)
// is checked before the backend acts on it: the gateway, often root, removes the record's folder,
// reads and copies files in it as the record's uid, and mints Slurm tokens for its account. Whoever
// can write a row (a database account, a restored backup, a planted file) must not steer those
// at another path or account: the folder must be the job's own under slurm.jobs_dir, the uid a
// person's (never root, never the gateway's), the account a POSIX name, every field its shape.
import Type from 'typebox';
import { Value } from 'typebox/value';
import { DATASET_FORMATS, JobSpecSchema, ResourcesSchema } from '../../wire/index.js';
import { jobFolderOf } from './job-folder.js';
import type { SlurmJobRecord } from './job-record.js';

const JOB_ID = '^[A-Za-z0-9-]{1,64}$';
const POSIX_USER = '^[a-z_][a-z0-9_-]{0,31}$';
const Partition = Type.Integer({ minimum: 0, maximum: 9999 });

const FinalSchema = Type.Object(
  {
    id: Type.String({ pattern: JOB_ID }),
    state: Type.Union(['succeeded', 'failed', 'cancelled', 'queued', 'running', 'pending'].map((s) => Type.Literal(s))),
  },
  { additionalProperties: true },
);

const SlurmJobRecordSchema = Type.Object(
  {
    id: Type.String({ pattern: JOB_ID }),
    slurm_job_id: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    user: Type.String({ minLength: 1, maxLength: 256 }),
    posix_user: Type.String({ pattern: POSIX_USER }),
    uid: Type.Union([Type.Integer({ minimum: 1, maximum: 4294967294 }), Type.Null()]),
    spec: JobSpecSchema,
    granted: ResourcesSchema,
    replaces: Type.Optional(Type.Object({ owner: Type.Union([Type.String(), Type.Null()]) }, { additionalProperties: false })),
    partitions: Type.Array(Partition, { maxItems: 10_000, uniqueItems: true }),
    format: Type.Union(DATASET_FORMATS.map((f) => Type.Literal(f))),
    input_columns: Type.Array(Type.String({ maxLength: 256 }), { maxItems: 4096 }),
    input_rows: Type.Integer({ minimum: 0 }),
    partition_rows: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 10_000 })),
    input_bytes: Type.Integer({ minimum: 0 }),
    labels: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 128 }),
    dir: Type.String(),
    created_at: Type.String(),
    breach: Type.Optional(Type.String({ maxLength: 1000 })),
    final: Type.Union([FinalSchema, Type.Null()]),
  },
  { additionalProperties: false },
);

/** The record in `text` when it is one for job `id` whose folder is `id`'s under jobsDir; throws saying why not. */
export function checkSlurmJobRecord(text: string, id: string, jobsDir: string): SlurmJobRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`the Slurm record of job ${JSON.stringify(id)} is not JSON`);
  }
  if (!Value.Check(SlurmJobRecordSchema, value)) {
    throw new Error(`the Slurm record of job ${JSON.stringify(id)} is not a valid record; it is not acted on`);
  }
  const r = value as SlurmJobRecord;
  if (r.id !== id || (r.final !== null && r.final.id !== id)) throw new Error(`the Slurm record of job ${JSON.stringify(id)} names another job; it is not acted on`);
  if (r.dir !== jobFolderOf(jobsDir, id)) throw new Error(`the Slurm record of job ${id} names a folder other than its own under slurm.jobs_dir; it is not acted on`);
  if (r.uid !== null && r.uid === (process.getuid?.() ?? 0)) throw new Error(`the Slurm record of job ${id} names the gateway's own uid; it is not acted on`);
  if (r.posix_user === 'root') throw new Error(`the Slurm record of job ${id} names root's account; it is not acted on`);
  return r;
}
