// The engine's catalog routes. Broken datasets are left out of the answer and logged for the
// administrator, once per change rather than on every listing.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { NoQuery } from '../http/index.js';
import { listDatasets } from '../catalog/index.js';
import { type DatasetList, DatasetListSchema } from '../wire/index.js';

export function datasetRoutes(server: FastifyInstance, options: { dataRoot: string }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>(); // handler types from the route schemas
  let reported = '[]';
  app.get(
    '/datasets',
    { schema: { querystring: NoQuery, response: { 200: DatasetListSchema } } },
    async (request): Promise<DatasetList> => {
      const { datasets, problems } = await listDatasets(options.dataRoot);
      const key = JSON.stringify(problems);
      if (key !== reported) {
        reported = key;
        for (const { path, message } of problems) request.log.warn({ path, problem: message }, 'dataset skipped');
      }
      return { datasets };
    },
  );
}
