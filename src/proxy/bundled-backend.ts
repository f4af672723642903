// The bundled engine as a ComputeBackend: over mTLS with the gateway's client certificate, each
// job carrying an admission ticket signed by that certificate's key (the engine checks both).
import type { KeyObject } from 'node:crypto';
import { jobSpecHash, signAdmissionTicket } from '../wire/index.js';
import type { BackendCapacity, BackendSubmission, ComputeBackend } from './backend.js';
import type { EngineClient } from './engine-client.js';
import { watchEngineEvents } from './engine-events.js';

export const BUNDLED = 'bundled';

/** How long a learnt capacity is reused before the engine is asked again. */
const CAPACITY_TTL_MS = 30_000;

export function bundledBackend(engine: EngineClient, ticketKey: KeyObject): ComputeBackend {
  const ticketOf = (job: BackendSubmission) =>
    signAdmissionTicket({ job: job.id, user: job.user, spec: job.spec_hash ?? jobSpecHash(job.spec), granted: job.granted, ...(job.replaces ? { replaces: job.replaces } : {}) }, ticketKey);
  let known: { at: number; capacity: BackendCapacity } | null = null;
  let asking: Promise<BackendCapacity> | null = null;
  const capacity = async (): Promise<BackendCapacity> => {
    if (known !== null && Date.now() - known.at < CAPACITY_TTL_MS) return known.capacity;
    asking ??= engine
      .slots()
      .then((slots) => {
        known = { at: Date.now(), capacity: { slots } };
        return known.capacity;
      })
      .finally(() => (asking = null));
    try {
      return await asking;
    } catch (err) {
      // An engine that cannot answer now keeps the capacity it had; one never heard from is a 503.
      if (known !== null) return known.capacity;
      throw err;
    }
  };
  return {
    name: BUNDLED,
    location: engine.url,
    submit: async (job) => {
      const created = await engine.submit(job.spec, ticketOf(job));
      return { backendId: created.id }; // the engine keeps the gateway's id
    },
    // Over the job channel only: the engine checks the job while job.submit is committed and admits
    // it on release. Whatever the engine does not hold by then is submitted whole, with a new ticket.
    prepare: (job) => {
      const prepared = engine.prepare(job.id, job.spec, ticketOf(job));
      if (prepared === null) return null;
      return {
        held: prepared.held,
        submit: async () => {
          const created = (await prepared.release()) ?? (await engine.submit(job.spec, ticketOf(job)));
          return { backendId: created.id };
        },
        drop: () => prepared.drop(),
      };
    },
    status: (id) => engine.status(id),
    active: () => engine.active(),
    logs: (id, follow) => engine.logs(id, follow),
    cancel: (id) => engine.cancel(id),
    datasets: () => engine.datasets(),
    dataset: (name) => engine.listed(name),
    readDataset: (name) => engine.dataset(name),
    readPartition: (name, n, etag, start, end, o) => engine.partition(name, n, etag, start, end, o),
    removeDataset: (name, etag) => engine.removeDataset(name, etag),
    uploadPartition: (o) => engine.uploadPartition(o),
    commitUpload: (body) => engine.commitUpload(body),
    dropUpload: (user, name) => engine.dropUpload(user, name),
    readinessCheck: 'engine',
    readiness: async () => {
      const health = await engine.health();
      return `ok (${engine.url}, version ${health.version}${health.isolation ? `; isolation: ${health.isolation}` : ''})`;
    },
    capacity,
    watch: (o) => watchEngineEvents({ open: (from) => engine.events(from), ...o }),
    metrics: () => engine.metrics(),
    close: () => engine.close(),
  };
}
