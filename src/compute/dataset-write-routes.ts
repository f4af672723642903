// The engine's dataset-changing routes, for the gateway only (server.ts serves nothing else): removing
// a dataset the gateway decided may go. Policy is the gateway's; the engine checks only what it alone
// can see at the moment it acts: the dataset is still the version decided on (etag), and nothing on
// the way is a link (src/catalog/remove.ts).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { DatasetError, removeDataset } from '../catalog/index.js';
import { DATASET_NAME_MAX_LENGTH, GatehouseError } from '../wire/index.js';

const RemoveQuery = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }), etag: Type.String({ pattern: '^[0-9a-f]{64}$' }) },
  { additionalProperties: false },
);

export function datasetWriteRoutes(server: FastifyInstance, options: { dataRoot: string }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  app.delete('/dataset', { schema: { querystring: RemoveQuery } }, async (request, reply) => {
    try {
      await removeDataset(options.dataRoot, request.query.name, request.query.etag);
    } catch (err) {
      throw answer(err, request.log);
    }
    return reply.code(204).send();
  });
}

/** A dataset that cannot be removed as asked: gone (404), changed since the decision (409), or refused for IT to look at (the log). */
export function answer(err: unknown, log: { warn(o: object, m: string): void }): GatehouseError {
  if (!(err instanceof DatasetError)) return err as GatehouseError;
  if (err.code === 'changed') return new GatehouseError('conflict', err.message);
  if (err.code !== 'not_found' && err.code !== 'invalid_name') log.warn({ path: err.path, problem: err.message }, 'dataset not changed');
  return new GatehouseError('not_found', err.message, { problem: err.code });
}
