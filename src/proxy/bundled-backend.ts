// The bundled engine as a ComputeBackend: over mTLS with the gateway's client certificate, each
// job carrying an admission ticket signed by that certificate's key (the engine checks both).
import type { KeyObject } from 'node:crypto';
import { jobSpecHash, signAdmissionTicket } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import type { EngineClient } from './engine-client.js';

export const BUNDLED = 'bundled';

export function bundledBackend(engine: EngineClient, ticketKey: KeyObject): ComputeBackend {
  return {
    name: BUNDLED,
    location: engine.url,
    submit: async (job) => {
      const ticket = await signAdmissionTicket({ job: job.id, user: job.user, spec: jobSpecHash(job.spec), granted: job.granted }, ticketKey);
      const created = await engine.submit(job.spec, ticket);
      return { backendId: created.id }; // the engine keeps the gateway's id
    },
    status: (id) => engine.status(id),
    active: () => engine.active(),
    logs: (id, follow) => engine.logs(id, follow),
    cancel: (id) => engine.cancel(id),
    datasets: () => engine.datasets(),
    health: () => engine.health(),
    close: () => engine.close(),
  };
}
