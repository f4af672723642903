// A person's own data into the catalog (issue 20, point 3): PUT /v1/datasets/:name/partitions/:n
// (text/csv, piped to the engine's staging with backpressure, never whole in memory), then POST
// /v1/datasets/:name/commit {partitions, labels?}, which the engine checks (every partition there,
// one header) and commits in one rename with a manifest naming the caller as owner. DELETE
// /v1/uploads/:name drops what was staged. Staging is hidden under data.root/.uploads, so an upload
// cut off mid-way leaves nothing anyone sees.
//
// Decided as a job's output is (write on dataset:<name> with every label it will carry; a label the
// caller declares can close but never open it) and, for a name that exists, replaced only by its
// owner or admin on it (to one who may not even read it, it does not exist: 404). Bounded by the
// caller's `max_storage_mb` (every dataset they own plus their staging): the partition that would
// cross it is refused before or while it streams (413, the limit and its policy line) and its
// partial file removed. Each partition is recorded as `dataset.upload` with its bytes (or its
// refusal), the commit's decision as `dataset.authorize` before it and `dataset.write` (via: upload) after.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { type AuditRecorder, type RecordedDecision, recordDecision } from '../audit/index.js';
import { type Authorizer, type Decision, type Identity, identityOf } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { forbidden, type PolicySnapshot } from '../policy/index.js';
import { limitsFor } from '../quota/index.js';
import { datasetNameProblem, GatehouseError } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import { findDataset } from './dataset-delete-route.js';
import { AUTHORIZE, policyLabelsOf } from './job-datasets.js';

export interface DatasetUploadOptions {
  backends: readonly ComputeBackend[];
  authorizer: Authorizer;
  audit: AuditRecorder;
  /** The serving policy: the caller's max_storage_mb and the labels its g2 lines give a name. */
  policy: () => PolicySnapshot;
}

const MB = 1024 * 1024;
const LABEL = '^[a-z0-9][a-z0-9_-]*$';
const Segment = Type.String({ minLength: 1, maxLength: 128 });
const Index = Type.String({ pattern: '^[0-9]{1,4}$', description: 'the partition, from 0' });
const CommitBody = Type.Object(
  {
    partitions: Type.Integer({ minimum: 1, maximum: 9999, description: 'how many partitions were uploaded (0 … partitions-1)' }),
    labels: Type.Optional(Type.Array(Type.String({ pattern: LABEL, maxLength: 64 }), { maxItems: 64, uniqueItems: true, description: 'labels the dataset carries (such as pii), beside those it inherits' })),
  },
  { additionalProperties: false },
);
const nameOf = (p: { a: string; b?: string | undefined }) => (p.b === undefined ? p.a : `${p.a}/${p.b}`);
const mb = (bytes: number) => Math.round((bytes / MB) * 100) / 100;

interface Verdict {
  identity: Identity;
  backend: ComputeBackend;
  labels: string[];
  declared: string[];
  exists: boolean;
  replaces: { owner: string | null } | undefined;
  decision: RecordedDecision;
}

export function installDatasetUploadRoutes(server: FastifyInstance, o: DatasetUploadOptions): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  // The partition's bytes stay the request's own stream: the handler pipes them to the engine.
  app.addContentTypeParser('text/csv', (_request, _payload, done) => done(null));
  const policyLabels = policyLabelsOf(o.policy);

  /**
   * Write on the name with every label the dataset will carry (a label the caller declares can
   * close it, never open it: write must also be allowed without those), and for a dataset that
   * exists, its owner or admin on it. Each refusal is recorded as `action` before it is answered.
   */
  async function decide(request: FastifyRequest, name: string, declaredLabels: string[], action: 'dataset.upload' | 'dataset.authorize', details: Record<string, unknown>): Promise<Verdict> {
    const identity = identityOf(request);
    const object = `dataset:${name}`;
    const refuse = async (decision: RecordedDecision, error: GatehouseError, more: Record<string, unknown> = {}) => {
      await recordDecision(o.audit, request, identity, { action, object, requested: 'write', decision: { ...decision, allowed: false }, details: { ...details, ...more } });
      throw error;
    };
    const problem = datasetNameProblem(name);
    if (problem !== null) return refuse({ allowed: false, reason: problem, policyVersion: o.authorizer.version() }, new GatehouseError('invalid_request', problem, { field: 'params' }));
    const hit = await findDataset(o.backends, name);
    const inherited = new Set([...(hit?.found.manifest.labels ?? []), ...policyLabels(object)]);
    const declared = [...new Set(declaredLabels)].filter((l) => !inherited.has(l)).sort();
    const labels = [...new Set([...inherited, ...declared])].sort();
    const bad = labels.find((l) => !new RegExp(LABEL).test(l) || l.length > 64);
    if (bad !== undefined) return refuse({ allowed: false, reason: `the label ${bad} cannot be carried by a manifest`, policyVersion: o.authorizer.version() }, new GatehouseError('conflict', `the dataset would carry the label "${bad}", which a dataset manifest cannot hold`, { label: bad }));
    let write: Decision = o.authorizer.decide(identity, object, 'write', { labels });
    if (write.allowed && declared.length > 0) {
      const own = new Set(declared);
      const without = o.authorizer.decide(identity, object, 'write', { labels: labels.filter((l) => !own.has(l)) });
      if (!without.allowed) write = { ...without, reason: `${without.reason} (a label the upload declares, ${declared.join(', ')}, cannot grant write)` };
    }
    if (!write.allowed) return refuse(write, forbidden(write), declared.length > 0 ? { declared_labels: declared } : {});
    const backend = hit?.backend ?? o.backends[0]!;
    if (hit === null) return { identity, backend, labels, declared, exists: false, replaces: undefined, decision: write };
    const owner = hit.found.manifest.owner;
    if (owner !== null && owner === identity.user) {
      return { identity, backend, labels, declared, exists: true, replaces: undefined, decision: { ...write, reason: `${name} is the caller's own dataset; ${write.reason}` } };
    }
    const admin = o.authorizer.decide(identity, object, 'admin', { labels });
    const whose = owner === null ? `${name} has no owner` : `${name} belongs to ${owner}`;
    if (admin.allowed) return { identity, backend, labels, declared, exists: true, replaces: { owner }, decision: { ...admin, reason: `${whose}; admin on ${object} ${admin.reason}` } };
    const refusal = { ...admin, reason: `${whose}: replacing it takes its owner or admin on ${object} (${admin.reason})` };
    // To one who may not even read it, it does not exist (as for reads and removal).
    const read = o.authorizer.decide(identity, object, 'read', { labels });
    return refuse(refusal, read.allowed ? forbidden(refusal) : new GatehouseError('not_found', `no dataset ${name}`), { owner: read.allowed ? owner : undefined, overwrite: true });
  }

  /** Bytes of every dataset the user owns, on every backend (their staging the engine adds itself). */
  async function owned(user: string): Promise<number> {
    const lists = await Promise.all(o.backends.map((b) => b.datasets()));
    return lists.flat().reduce((sum, d) => sum + (d.owner === user ? d.bytes : 0), 0);
  }

  const put = async (request: FastifyRequest, name: string, n: number) => {
    // Only a CSV stream is a partition: a JSON body (parsed, so its stream is spent) would stage as empty.
    const type = request.headers['content-type'] ?? '';
    if (!/^text\/csv\s*(;|$)/i.test(type)) throw new GatehouseError('invalid_request', `body is not text/csv (the partition, its first line the header); content-type was ${JSON.stringify(type.slice(0, 80))}`, { field: 'body' });
    const via = { partition: n, via: 'PUT /v1/datasets/:name/partitions/:n' };
    const v = await decide(request, name, [], 'dataset.upload', via);
    const object = `dataset:${name}`;
    const record = (decision: RecordedDecision, details: Record<string, unknown>) => recordDecision(o.audit, request, v.identity, { action: 'dataset.upload', object, requested: 'write', decision, details: { ...via, ...details } });
    const { detail, policyVersion } = limitsFor(o.policy(), v.identity);
    const quota = detail.max_storage_mb;
    const limitBytes = Math.floor(quota.value * MB);
    const mine = await owned(v.identity.user);
    const length = request.headers['content-length'];
    const declared = length !== undefined && /^[0-9]{1,15}$/.test(length) ? Number(length) : undefined;
    const over = async (used: number, requested: number) => {
      const reason = `quota: ${mb(requested)} MB more storage requested with ${mb(used)} MB in use (datasets owned and staged uploads), the limit is ${quota.value} MB`;
      await record({ allowed: false, reason, policyVersion, line: quota.line }, { limit: 'max_storage_mb', used_bytes: used, requested_bytes: requested, max: quota.value });
      return new GatehouseError('payload_too_large', reason, { limit: 'max_storage_mb', used: mb(used), requested: mb(requested), max: quota.value, line: quota.line, policy_version: policyVersion });
    };
    if (declared !== undefined && mine + declared > limitBytes) throw await over(mine, declared);
    const upload = v.backend.uploadPartition;
    if (upload === undefined) {
      await record({ ...v.decision, allowed: false, reason: `backend ${v.backend.name} takes no uploads` }, {});
      throw new GatehouseError('conflict', `backend ${v.backend.name} takes no uploads through the gateway`);
    }
    // The decision on record before a byte is staged; the bytes after.
    await recordDecision(o.audit, request, v.identity, { action: AUTHORIZE, object, requested: 'write', decision: v.decision, details: via });
    let bytes: number;
    try {
      ({ bytes } = await upload({ user: v.identity.user, name, n, allowance: Math.max(0, limitBytes - mine), declared, body: request.raw }));
    } catch (err) {
      if (err instanceof GatehouseError && err.code === 'payload_too_large') {
        const staged = typeof err.details.staged_bytes === 'number' ? err.details.staged_bytes : 0;
        const written = typeof err.details.written === 'number' ? err.details.written : 0;
        throw await over(mine + staged, written);
      }
      await record({ ...v.decision, allowed: false, reason: `not staged: ${(err as Error).message}` }, {}).catch(() => undefined);
      throw err;
    }
    await record({ ...v.decision, reason: `partition ${n} of ${name} staged (${bytes} bytes)` }, { bytes });
    return { name, partition: n, bytes };
  };

  const commit = async (request: FastifyRequest, name: string, body: { partitions: number; labels?: string[] | undefined }) => {
    const via = { via: 'POST /v1/datasets/:name/commit' };
    const v = await decide(request, name, body.labels ?? [], AUTHORIZE, via);
    const object = `dataset:${name}`;
    await recordDecision(o.audit, request, v.identity, { action: AUTHORIZE, object, requested: v.exists ? 'overwrite' : 'write', decision: v.decision, details: { ...via, ...(v.declared.length > 0 ? { declared_labels: v.declared } : {}) } });
    const commitUpload = v.backend.commitUpload;
    if (commitUpload === undefined) throw new GatehouseError('conflict', `backend ${v.backend.name} takes no uploads through the gateway`);
    const done = await commitUpload({ user: v.identity.user, name, partitions: body.partitions, labels: v.labels, overwrite: v.exists, ...(v.replaces !== undefined ? { replaces: v.replaces } : {}) });
    const rows = done.partitions.reduce((s, p) => s + p.rows, 0);
    const bytes = done.partitions.reduce((s, p) => s + p.bytes, 0);
    await recordDecision(o.audit, request, v.identity, {
      action: 'dataset.write',
      object,
      decision: { ...v.decision, reason: `${name} committed from an upload (${done.partitions.length} partitions, ${rows} rows)` },
      details: { via: 'upload', labels: v.labels, partitions: done.partitions.length, rows, bytes, ...(v.exists ? { replaced: true } : {}) },
    }).catch((err: Error) => request.log.error({ err }, 'the committed upload could not be recorded'));
    return { name, owner: v.identity.user, labels: v.labels, columns: done.columns, partitions: done.partitions.length, rows, bytes, replaced: v.exists };
  };

  const drop = async (request: FastifyRequest, name: string) => {
    const user = identityOf(request).user;
    if (datasetNameProblem(name) !== null) throw new GatehouseError('invalid_request', `${name} is not a dataset name`, { field: 'params' });
    let dropped = false;
    for (const backend of o.backends) if (backend.dropUpload !== undefined && (await backend.dropUpload(user, name))) dropped = true;
    if (!dropped) throw new GatehouseError('not_found', `no upload of ${name} is staged`);
    return { name, dropped };
  };

  const decided = { decidedInHandler: "write on the dataset with every label it will carry (as a job's output), its owner or admin to replace one, and the caller's max_storage_mb" };
  const PartParams = Type.Object({ a: Segment, b: Type.Optional(Segment), n: Index });
  const putSummary = 'Stages one partition of an upload (text/csv, streamed); 413 past max_storage_mb';
  for (const url of ['/v1/datasets/:a/partitions/:n', '/v1/datasets/:a/:b/partitions/:n']) {
    app.put(url, { config: { authorize: decided }, schema: { summary: putSummary, params: PartParams, querystring: NoQuery, body: Type.Unknown({ description: 'the partition as text/csv, its first line the header' }) } }, (request) =>
      put(request, nameOf(request.params), Number(request.params.n)),
    );
  }
  const NameParams = Type.Object({ a: Segment, b: Type.Optional(Segment) });
  for (const url of ['/v1/datasets/:a/commit', '/v1/datasets/:a/:b/commit']) {
    app.post(url, { config: { authorize: decided }, schema: { summary: 'Commits the staged partitions as the dataset, owned by the caller (one rename)', params: NameParams, querystring: NoQuery, body: CommitBody } }, (request) =>
      commit(request, nameOf(request.params), request.body),
    );
  }
  for (const url of ['/v1/uploads/:a', '/v1/uploads/:a/:b']) {
    app.delete(url, { config: { authorize: { own: 'the caller’s own staged upload' } }, schema: { summary: 'Drops what the caller staged for a dataset', params: NameParams, querystring: NoQuery } }, (request) => drop(request, nameOf(request.params)));
  }
}
