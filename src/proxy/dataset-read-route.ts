// Reading one dataset through the gateway: GET /v1/datasets/:name (its manifest, partitions,
// owner, labels, lineage) and GET /v1/datasets/:name/partitions/:n (the bytes, streamed from the
// backend with backpressure, a Range honoured; or ?preview=N rows as JSON). Each read is decided as
// a job's input read is (read on dataset:<name> with its manifest's labels, so a label deny holds)
// and recorded as `dataset.authorize` before anything is answered; a partition served is recorded
// as `dataset.read` with the bytes that went out. A dataset the caller may not read answers exactly
// as one that does not exist. A name with a namespace is two path segments (scratch-bob/result).
import { Transform } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { type AuditRecorder, recordDecision } from '../audit/index.js';
import type { ReadableDataset } from '../catalog/index.js';
import { type Authorizer, identityOf } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { ACTIONS } from '../policy/index.js';
import { datasetNameProblem, GatehouseError } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import { byteRange } from './byte-range.js';
import { AUTHORIZE } from './job-datasets.js';
import { type Preview, previewRows } from './preview-rows.js';
import { previewSource } from './preview-source.js';

export interface DatasetReadOptions {
  backends: readonly ComputeBackend[];
  authorizer: Authorizer;
  audit: AuditRecorder;
}

export const PREVIEW_MAX_ROWS = 1000;

const Segment = Type.String({ minLength: 1, maxLength: 128 });
const Index = Type.String({ pattern: '^[0-9]{1,5}$', description: 'the partition, from 0' });
const PartitionQuery = Type.Object({ preview: Type.Optional(Type.Integer({ minimum: 1, maximum: PREVIEW_MAX_ROWS, description: 'the first N rows of the partition, as JSON' })) }, { additionalProperties: false });

const nameOf = (p: { a: string; b?: string | undefined }) => (p.b === undefined ? p.a : `${p.a}/${p.b}`);
const decisionOf = { decidedInHandler: "read on the dataset with its manifest's labels, as a job's input; refused as not found" };

export function installDatasetReadRoutes(server: FastifyInstance, o: DatasetReadOptions): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();

  /**
   * The read decided (without recording it yet): the dataset and its backend when the caller may
   * read it, else null, and the decision's record to write before anything is answered.
   */
  async function decide(request: FastifyRequest, name: string, via: string): Promise<{ hit: { backend: ComputeBackend; found: ReadableDataset } | null; record: () => Promise<void> }> {
    const identity = identityOf(request);
    const object = `dataset:${name}`;
    const problem = datasetNameProblem(name);
    let hit: { backend: ComputeBackend; found: ReadableDataset } | null = null;
    if (problem === null) {
      // The default backend first: a name on several backends is read where a job would run by default.
      for (const backend of o.backends) {
        const found = (await backend.readDataset?.(name)) ?? null;
        if (found !== null) {
          hit = { backend, found };
          break;
        }
      }
    }
    const decision = o.authorizer.decide(identity, object, 'read', { labels: hit?.found.manifest.labels });
    const refused = problem !== null ? `${problem}` : hit === null ? `no dataset ${name} on any backend` : null;
    const recorded = refused !== null && decision.allowed ? { ...decision, allowed: false, reason: refused } : decision;
    const record = () => recordDecision(o.audit, request, identity, { action: AUTHORIZE, object, requested: 'read', decision: recorded, details: { via } });
    return { hit: recorded.allowed ? hit : null, record };
  }

  /** The dataset and its backend when the caller may read it; otherwise the one "no dataset" answer, recorded. */
  async function readable(request: FastifyRequest, name: string, via: string): Promise<{ backend: ComputeBackend; found: ReadableDataset }> {
    const { hit, record } = await decide(request, name, via);
    await record();
    if (hit === null) throw new GatehouseError('not_found', `no dataset ${name}`);
    return hit;
  }

  /**
   * ?preview=N: the rows are read first and both records (the decision, then dataset.read with the
   * bytes) handed to the trail in one tick, so they share one commit and one fsync; nothing is
   * answered before both are durable, and a refusal is recorded as any other.
   */
  const preview = async (request: FastifyRequest, name: string, n: number, rows: number) => {
    const { hit, record } = await decide(request, name, 'GET /v1/datasets/:name/partitions/:n?preview');
    if (hit === null) {
      await record();
      throw new GatehouseError('not_found', `no dataset ${name}`);
    }
    const { backend, found } = hit;
    const listed = found.manifest.partitions[n];
    let result: Preview;
    try {
      if (listed === undefined) throw new GatehouseError('not_found', `${name} has no partition ${n} (it has ${found.manifest.partitions.length})`);
      result = listed.bytes === 0 ? { rows: [], bytes: 0 } : await previewRows(previewSource((start, end) => backend.readPartition!(name, n, found.etag, start, end, { short: true }), listed.bytes), found.manifest.format, rows);
    } catch (err) {
      await record();
      throw err;
    }
    const identity = identityOf(request);
    await Promise.all([
      record(),
      recordDecision(o.audit, request, identity, { action: 'dataset.read', object: `dataset:${name}`, decision: { allowed: true, reason: `partition ${n} read through the gateway`, policyVersion: o.authorizer.version() }, details: { partition: n, preview_rows: result.rows.length, bytes: result.bytes } }),
    ]);
    return { name, partition: n, format: found.manifest.format, columns: found.manifest.columns, rows: result.rows };
  };

  const metadata = async (request: FastifyRequest, name: string) => {
    const { backend, found } = await readable(request, name, 'GET /v1/datasets/:name');
    const { manifest } = found;
    const identity = identityOf(request);
    const actions = ACTIONS.filter((a) => o.authorizer.decide(identity, `dataset:${name}`, a, { labels: manifest.labels }).allowed);
    return {
      name,
      ...(o.backends.length > 1 ? { backend: backend.name } : {}),
      format: manifest.format,
      columns: manifest.columns,
      owner: manifest.owner,
      labels: manifest.labels,
      created_at: manifest.created_at,
      produced_by: manifest.produced_by,
      rows: manifest.partitions.reduce((n, p) => n + p.rows, 0),
      bytes: manifest.partitions.reduce((n, p) => n + p.bytes, 0),
      partitions: manifest.partitions.map((p, index) => ({ index, rows: p.rows, bytes: p.bytes })),
      etag: found.etag,
      actions,
      policy_version: o.authorizer.version(),
    };
  };

  const partition = async (request: FastifyRequest, reply: FastifyReply, name: string, n: number) => {
    const { backend, found } = await readable(request, name, 'GET /v1/datasets/:name/partitions/:n');
    const listed = found.manifest.partitions[n];
    if (listed === undefined) throw new GatehouseError('not_found', `${name} has no partition ${n} (it has ${found.manifest.partitions.length})`);
    const identity = identityOf(request);
    const served = (details: Record<string, unknown>) =>
      recordDecision(o.audit, request, identity, { action: 'dataset.read', object: `dataset:${name}`, decision: { allowed: true, reason: `partition ${n} read through the gateway`, policyVersion: o.authorizer.version() }, details: { partition: n, ...details } });
    const read = (start: number, end: number) => backend.readPartition!(name, n, found.etag, start, end);

    const range = byteRange(request.headers.range, listed.bytes);
    // If-Range: a resumed download continues only the version it began with; another one is sent whole.
    const ifRange = request.headers['if-range'];
    const wanted = ifRange !== undefined && ifRange !== `"${found.etag}"` ? 'whole' : range;
    reply.header('accept-ranges', 'bytes').header('etag', `"${found.etag}"`).header('content-type', found.manifest.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
    if (wanted === 'unsatisfiable') {
      reply.header('content-range', `bytes */${listed.bytes}`);
      throw new GatehouseError('range_not_satisfiable', `partition ${n} of ${name} has ${listed.bytes} bytes; the range asked for starts past its end`, { bytes: listed.bytes });
    }
    const { start, end } = wanted === 'whole' ? { start: 0, end: listed.bytes - 1 } : wanted;
    if (wanted !== 'whole') reply.code(206).header('content-range', `bytes ${start}-${end}/${listed.bytes}`);
    if (end < start) {
      await served({ bytes: 0, complete: true });
      return reply.header('content-length', 0).send('');
    }
    const source = await read(start, end);
    let bytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    source.on('error', (err) => counted.destroy(err));
    counted.on('close', () => source.destroy()); // the caller went away: stop reading the backend too
    source.pipe(counted);
    // Recorded once the bytes went out (or stopped): how much was served is known only then.
    reply.raw.once('close', () => {
      served({ bytes, complete: bytes === end - start + 1, ...(wanted === 'whole' ? {} : { range: `${start}-${end}` }) }).catch((err: Error) => request.log.error({ err }, 'dataset.read could not be recorded'));
    });
    return reply.header('content-length', end - start + 1).send(counted);
  };

  const summary = 'One dataset: manifest, partitions (rows, bytes), owner, labels, lineage (produced_by)';
  const NameParams = Type.Object({ a: Segment, b: Type.Optional(Segment) });
  for (const url of ['/v1/datasets/:a', '/v1/datasets/:a/:b']) {
    app.get(url, { config: { authorize: decisionOf }, schema: { summary, params: NameParams, querystring: NoQuery } }, (request) => metadata(request, nameOf(request.params)));
  }
  const bytes = 'A partition, streamed (Range honoured: 206, 416), or ?preview=N rows as JSON';
  const PartitionParams = Type.Object({ a: Segment, b: Type.Optional(Segment), n: Index });
  for (const url of ['/v1/datasets/:a/partitions/:n', '/v1/datasets/:a/:b/partitions/:n']) {
    app.get(url, { config: { authorize: decisionOf }, schema: { summary: bytes, params: PartitionParams, querystring: PartitionQuery } }, (request, reply) =>
      request.query.preview === undefined ? partition(request, reply, nameOf(request.params), Number(request.params.n)) : preview(request, nameOf(request.params), Number(request.params.n), request.query.preview),
    );
  }
}
