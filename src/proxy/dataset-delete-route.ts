// DELETE /v1/datasets/:name (issue 20, point 2): a dataset is its owner's to remove (the manifest's
// `owner`), or whoever holds `admin` on it by policy, the same rule that lets a job overwrite it.
// To a caller who may neither read nor administer it, it does not exist (404, the body of a missing
// one); one who may read it but not remove it is told the deciding rule (403). A dataset a live job
// reads or writes is not removed (409 with the jobs). Every answer is recorded as `dataset.delete`
// before it is given, and the removal's outcome after it: if the trail cannot take the decision,
// nothing is removed (503 audit_unavailable).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { type AuditRecorder, type RecordedDecision, recordDecision } from '../audit/index.js';
import type { ReadableDataset } from '../catalog/index.js';
import { type Authorizer, identityOf } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { forbidden } from '../policy/index.js';
import { datasetNameProblem, GatehouseError } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';

export interface DatasetDeleteOptions {
  backends: readonly ComputeBackend[];
  authorizer: Authorizer;
  audit: AuditRecorder;
  /** Jobs not yet ended, with the datasets they read and write (the store's job records). */
  liveJobs: () => Promise<{ id: string; input: string; output: string }[]>;
}

const Segment = Type.String({ minLength: 1, maxLength: 128 });
const nameOf = (p: { a: string; b?: string | undefined }) => (p.b === undefined ? p.a : `${p.a}/${p.b}`);

/** The first backend that serves dataset `name` (the default first, as reads find it). */
export async function findDataset(backends: readonly ComputeBackend[], name: string): Promise<{ backend: ComputeBackend; found: ReadableDataset } | null> {
  if (datasetNameProblem(name) !== null) return null;
  for (const backend of backends) {
    const found = (await backend.readDataset?.(name)) ?? null;
    if (found !== null) return { backend, found };
  }
  return null;
}

export function installDatasetDeleteRoute(server: FastifyInstance, o: DatasetDeleteOptions): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();

  const remove = async (request: FastifyRequest, name: string) => {
    const identity = identityOf(request);
    const object = `dataset:${name}`;
    const record = (decision: RecordedDecision, details: Record<string, unknown> = {}) =>
      recordDecision(o.audit, request, identity, { action: 'dataset.delete', object, requested: 'delete', decision, details });
    const hit = await findDataset(o.backends, name);
    const labels = hit?.found.manifest.labels;
    const read = o.authorizer.decide(identity, object, 'read', { labels });
    const admin = o.authorizer.decide(identity, object, 'admin', { labels });
    const owner = hit?.found.manifest.owner ?? null;
    const owns = owner !== null && owner === identity.user;
    if (hit === null || (!owns && !admin.allowed && !read.allowed)) {
      const reason = hit === null ? `no dataset ${name} on any backend` : `${name} may neither be read nor administered by the caller (${admin.reason})`;
      await record({ ...(hit === null ? admin : read), allowed: false, reason });
      throw new GatehouseError('not_found', `no dataset ${name}`);
    }
    if (!owns && !admin.allowed) {
      const whose = owner === null ? `${name} has no owner` : `${name} belongs to ${owner}`;
      const refusal = { ...admin, reason: `${whose}: removing it takes its owner or admin on ${object} (${admin.reason})` };
      await record(refusal, { owner });
      throw forbidden(refusal);
    }
    const decision: RecordedDecision = owns
      ? { allowed: true, reason: `${name} is the caller's own dataset (its manifest names ${identity.user} as owner)`, policyVersion: o.authorizer.version() }
      : { ...admin, reason: `${owner === null ? `${name} has no owner` : `${name} belongs to ${owner}`}; admin on ${object} ${admin.reason}` };
    const jobs = (await o.liveJobs()).filter((j) => j.input === name || j.output === name).map((j) => j.id);
    if (jobs.length > 0) {
      await record({ ...decision, allowed: false, reason: `${name} is in use by ${jobs.length} live job(s): ${jobs.join(', ')}` }, { owner, jobs });
      throw new GatehouseError('conflict', `${name} is read or written by a job that has not ended (${jobs.join(', ')}); remove it once they end`, { jobs });
    }
    if (hit.backend.removeDataset === undefined) {
      await record({ ...decision, allowed: false, reason: `backend ${hit.backend.name} does not remove datasets` }, { owner });
      throw new GatehouseError('conflict', `${name} is on backend ${hit.backend.name}, which does not remove datasets through the gateway`);
    }
    await record(decision, { owner, etag: hit.found.etag }); // record, then act
    try {
      await hit.backend.removeDataset(name, hit.found.etag);
    } catch (err) {
      const message = (err as Error).message;
      await record({ ...decision, allowed: false, reason: `not removed: ${message}` }, { owner, outcome: 'failed' }).catch(() => undefined);
      throw err;
    }
    const bytes = hit.found.manifest.partitions.reduce((n, p) => n + p.bytes, 0);
    await record({ ...decision, reason: `${name} removed` }, { owner, outcome: 'removed', bytes }).catch((err: Error) => request.log.error({ err }, 'the removal of a dataset could not be recorded'));
    return { name, removed: true, owner, bytes };
  };

  const NameParams = Type.Object({ a: Segment, b: Type.Optional(Segment) });
  const access = { decidedInHandler: "the dataset's owner, or admin on it by policy; refused as not found to whoever may not read it either" };
  for (const url of ['/v1/datasets/:a', '/v1/datasets/:a/:b']) {
    app.delete(url, { config: { authorize: access }, schema: { summary: 'Removes a dataset (its owner, or admin on it); 409 while a live job reads or writes it', params: NameParams, querystring: NoQuery } }, (request) =>
      remove(request, nameOf(request.params)),
    );
  }
}
