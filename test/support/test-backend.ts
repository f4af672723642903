// A second compute backend, in this process: a ComputeBackend with its own catalog (datasets with
// owners and labels the gateway learns only from it) that runs each job at once, writing its output
// into that catalog with the labels the gateway put in the spec. What a Slurm backend will look
// like to the gateway, without Slurm: the gateway must authorize each job on ITS backend's labels.
// A job named `keep-running` runs until it is cancelled (to hold quota while a test needs it).
import { Readable } from 'node:stream';
import type { BackendSubmission, ComputeBackend } from '../../src/proxy/index.js';
import { type DatasetInfo, GatehouseError, type JobStatus } from '../../src/wire/index.js';

export interface TestBackend extends ComputeBackend {
  /** Every job it was handed, in order: what the gateway sent (spec, granted, replaces). */
  readonly received: BackendSubmission[];
  /** Set: readiness() rejects with it (the backend is down). */
  down: string | null;
  /**
   * Set: a job is held checked (the held handover's prepare answers that it holds it), then refused
   * with this conflict when it is admitted (submit after the prepare). Null: no held handover.
   */
  refuseAfterHolding: string | null;
  /** Set: a job is held checked as above, and admitted (or refused) only once this resolves. */
  releaseGate: Promise<void> | null;
  /**
   * Set: no held handover; a job handed over whole is refused with `reason` once `gate` resolves
   * (the gateway then answers the submission with the refusal and removes the job's record).
   */
  refuseWhole: { gate: Promise<void>; reason: string } | null;
}

/** A catalog entry from a name, labels and an owner (the rest made up). */
export function testDataset(name: string, labels: string[] = [], owner: string | null = null): DatasetInfo {
  return { name, format: 'csv', columns: ['id', 'value'], partitions: 1, rows: 3, bytes: 24, owner, labels, created_at: null, produced_by: null };
}

export function testBackend(name: string, catalog: DatasetInfo[]): TestBackend {
  const datasets = new Map(catalog.map((d) => [d.name, d]));
  const jobs = new Map<string, JobStatus>();
  const received: BackendSubmission[] = [];
  /** Takes a job: runs it at once, or holds it running while it is named `keep-running`. */
  const run = async (job: BackendSubmission): Promise<{ backendId: string }> => {
    const input = datasets.get(job.spec.input);
    if (input === undefined) throw new GatehouseError('not_found', `no dataset ${job.spec.input} on ${name}`);
    const now = new Date().toISOString();
    if (job.spec.name === 'keep-running') {
      jobs.set(job.id, { ...statusOf(job, now, input), state: 'running', partitions: { total: 1, done: 0, failed: 0, running: 1 }, rows_out: 0, bytes_out: 0, finished_at: null });
      return { backendId: job.id };
    }
    // Runs at once: the output is in the catalog, with every label the gateway decided it carries.
    datasets.set(job.spec.output, { ...testDataset(job.spec.output, job.spec.labels ?? [], job.user), produced_by: job.id, created_at: now });
    jobs.set(job.id, statusOf(job, now, input));
    return { backendId: job.id };
  };
  const backend: TestBackend = {
    name,
    location: `test:${name}`,
    received,
    down: null,
    refuseAfterHolding: null,
    releaseGate: null,
    refuseWhole: null,
    readinessCheck: `backend:${name}`,
    readiness: async () => {
      if (backend.down !== null) throw new Error(backend.down);
      return `ok (test backend ${name}, ${datasets.size} datasets)`;
    },
    capacity: async () => ({ slots: 8 }),
    datasets: async () => [...datasets.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
    submit: async (job) => {
      received.push(job);
      const refuse = backend.refuseWhole;
      if (refuse !== null) {
        await refuse.gate;
        throw new GatehouseError('conflict', refuse.reason);
      }
      return run(job);
    },
    prepare: (job) => {
      const refusal = backend.refuseAfterHolding;
      const gate = backend.releaseGate;
      if ((refusal === null && gate === null) || backend.refuseWhole !== null) return null;
      return {
        held: Promise.resolve(true),
        submit: async () => {
          received.push(job);
          await gate;
          if (refusal !== null) throw new GatehouseError('conflict', refusal);
          return run(job);
        },
        drop: () => undefined,
      };
    },
    status: async (id) => jobs.get(id) ?? null,
    active: async () => [...jobs.values()].filter((j) => j.finished_at === null),
    logs: async (id) => (jobs.has(id) ? Readable.from([`ran on ${name}\n`]) : null),
    cancel: async (id) => {
      const status = jobs.get(id);
      if (status === undefined) return null;
      if (status.finished_at === null) jobs.set(id, { ...status, state: 'cancelled', partitions: { ...status.partitions, running: 0 }, finished_at: new Date().toISOString() });
      return jobs.get(id)!;
    },
    close: () => undefined,
  };
  return backend;
}

/** A job that ran at once and succeeded, as the backend reports it. */
function statusOf(job: BackendSubmission, now: string, input: DatasetInfo): JobStatus {
  return {
    id: job.id,
    name: job.spec.name,
    user: job.user,
    state: 'succeeded',
    input: job.spec.input,
    output: job.spec.output,
    runtime: job.spec.runtime,
    resources: job.granted,
    partitions: { total: 1, done: 1, failed: 0, running: 0 },
    workers: 0,
    rows_in: input.rows,
    rows_out: input.rows,
    bytes_in: input.bytes,
    bytes_out: input.bytes,
    created_at: now,
    started_at: now,
    finished_at: now,
    core_seconds: 0,
    attempts: 1,
    error: null,
    reason: null,
  };
}
