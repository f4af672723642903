// The engine's read routes, for the gateway only (server.ts serves nothing else): one dataset's
// manifest, and a byte range of one partition streamed from the descriptor that was checked
// (src/catalog/open-partition.ts: no link followed; the only second names of a partition it accepts
// are the hard links the engine made for running jobs' inputs, `links`). Policy is the gateway's: it decided on the
// manifest's labels before it asks for bytes, and names the manifest version (etag) it decided on,
// so a dataset replaced in between is refused here rather than served under the old decision.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { DatasetError, DatasetReadSchema, type EngineLinks, openPartition, readableDataset } from '../catalog/index.js';
import { DATASET_NAME_MAX_LENGTH, GatehouseError } from '../wire/index.js';

const NameQuery = Type.Object({ name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }) }, { additionalProperties: false });
const PartitionQuery = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }),
    n: Type.Integer({ minimum: 0, maximum: 9999 }),
    etag: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    start: Type.Integer({ minimum: 0 }),
    /** Inclusive, as in a Range header. */
    end: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);

export function datasetReadRoutes(server: FastifyInstance, options: { dataRoot: string; links?: EngineLinks }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  app.get('/dataset', { schema: { querystring: NameQuery, response: { 200: DatasetReadSchema } } }, async (request) => {
    try {
      return await readableDataset(options.dataRoot, request.query.name, options.links);
    } catch (err) {
      throw answer(err, request.log);
    }
  });

  app.get('/dataset/partition', { schema: { querystring: PartitionQuery } }, async (request, reply) => {
    const { name, n, etag, start, end } = request.query;
    let opened: Awaited<ReturnType<typeof openPartition>>;
    try {
      opened = await openPartition(options.dataRoot, name, n, etag, options.links);
    } catch (err) {
      throw answer(err, request.log);
    }
    if (end < start || end >= opened.size) {
      await opened.file.close();
      throw new GatehouseError('invalid_request', `bytes ${start}-${end} are not inside partition ${n} of ${name} (${opened.size} bytes)`);
    }
    // The stream owns the descriptor (autoClose), and fastify pipes it with backpressure.
    const body = opened.file.createReadStream({ start, end, highWaterMark: 256 * 1024 });
    return reply.header('content-type', 'application/octet-stream').header('content-length', end - start + 1).header('x-partition-bytes', opened.size).send(body);
  });
}

/** A dataset that cannot be read is the gateway's "no dataset" (said in the engine's log, for IT); a replaced one is a conflict. */
function answer(err: unknown, log: { warn(o: object, m: string): void }): GatehouseError {
  if (!(err instanceof DatasetError)) return err as GatehouseError;
  if (err.code === 'changed') return new GatehouseError('conflict', err.message);
  if (err.code !== 'not_found' && err.code !== 'invalid_name') log.warn({ path: err.path, problem: err.message }, 'dataset not served');
  return new GatehouseError('not_found', err.message, { problem: err.code });
}
