// The engine's dataset-changing routes, for the gateway only (server.ts serves nothing else): removing
// a dataset the gateway decided may go, and a person's upload (staged, then committed by rename). Policy is the gateway's; the engine checks only what it alone
// can see at the moment it acts: the dataset is still the version decided on (etag), and nothing on
// the way is a link (src/catalog/remove.ts).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { DatasetError, OutputExistsError, removeDataset } from '../catalog/index.js';
import { NoQuery } from '../http/index.js';
import { AllowanceError, commitUpload, dropUpload, stagePartition, UploadError } from './catalog/upload.js';
import { DATASET_NAME_MAX_LENGTH, GatehouseError } from '../wire/index.js';

const RemoveQuery = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }), etag: Type.String({ pattern: '^[0-9a-f]{64}$' }) },
  { additionalProperties: false },
);

export function datasetWriteRoutes(server: FastifyInstance, options: { dataRoot: string; uploadIdleMs: number }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  app.delete('/dataset', { schema: { querystring: RemoveQuery } }, async (request, reply) => {
    try {
      await removeDataset(options.dataRoot, request.query.name, request.query.etag);
    } catch (err) {
      throw answer(err, request.log);
    }
    return reply.code(204).send();
  });
  uploadRoutes(server, options);
}

/** A dataset that cannot be removed as asked: gone (404), changed since the decision (409), or refused for IT to look at (the log). */
export function answer(err: unknown, log: { warn(o: object, m: string): void }): GatehouseError {
  if (!(err instanceof DatasetError)) return err as GatehouseError;
  if (err.code === 'changed') return new GatehouseError('conflict', err.message);
  if (err.code !== 'not_found' && err.code !== 'invalid_name') log.warn({ path: err.path, problem: err.message }, 'dataset not changed');
  return new GatehouseError('not_found', err.message, { problem: err.code });
}

const UploadQuery = Type.Object(
  {
    user: Type.String({ minLength: 1, maxLength: 256 }),
    name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }),
    n: Type.Integer({ minimum: 0, maximum: 9999 }),
    /** Bytes the user's staging may hold in all, this partition included (the gateway's storage quota less what they own). */
    allowance: Type.Integer({ minimum: 0 }),
    declared: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
const StagingQuery = Type.Object({ user: Type.String({ minLength: 1, maxLength: 256 }), name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }) }, { additionalProperties: false });
const CommitBody = Type.Object(
  {
    user: Type.String({ minLength: 1, maxLength: 256 }),
    name: Type.String({ minLength: 1, maxLength: DATASET_NAME_MAX_LENGTH }),
    partitions: Type.Integer({ minimum: 1, maximum: 9999 }),
    labels: Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$', maxLength: 64 }), { maxItems: 64 }),
    overwrite: Type.Boolean(),
    replaces: Type.Optional(Type.Object({ owner: Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Null()]) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

/** Uploads: a partition streamed to staging, the commit, dropping a staged upload (src/compute/catalog/upload.ts). */
function uploadRoutes(server: FastifyInstance, options: { dataRoot: string; uploadIdleMs: number }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  // The bytes stay a stream (the handler pipes them to the staging file): never parsed, never whole in memory.
  app.addContentTypeParser('text/csv', (_request, _payload, done) => done(null));
  const refused = (err: unknown, log: { warn(o: object, m: string): void }) => {
    if (err instanceof AllowanceError) return new GatehouseError('payload_too_large', `the storage allowance is exceeded: ${err.message}`, { staged_bytes: err.staged, written: err.written });
    if (err instanceof UploadError) return new GatehouseError('invalid_request', err.message);
    if (err instanceof OutputExistsError) return new GatehouseError('conflict', err.message);
    return answer(err, log);
  };

  app.put('/upload/partition', { schema: { querystring: UploadQuery, body: Type.Unknown({ description: 'the partition, text/csv, streamed' }) } }, async (request) => {
    const { user, name, n, allowance, declared } = request.query;
    try {
      return await stagePartition(options.dataRoot, { user, name, n, allowance, declared, body: request.raw, idleMs: options.uploadIdleMs });
    } catch (err) {
      throw refused(err, request.log);
    }
  });

  app.post('/upload/commit', { schema: { querystring: NoQuery, body: CommitBody } }, async (request) => {
    try {
      const manifest = await commitUpload(options.dataRoot, request.body);
      return { columns: manifest.columns, partitions: manifest.partitions, owner: manifest.owner, labels: manifest.labels };
    } catch (err) {
      throw refused(err, request.log);
    }
  });

  app.delete('/upload', { schema: { querystring: StagingQuery } }, async (request) => {
    try {
      return { dropped: await dropUpload(options.dataRoot, request.query.user, request.query.name) };
    } catch (err) {
      throw refused(err, request.log);
    }
  });
}
