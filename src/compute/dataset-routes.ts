// The engine's catalog routes. Broken datasets are left out of the answer and logged for the
// administrator, once per change rather than on every listing. `?name=` answers the listing for one
// name (the dataset, or an empty list) without reading the others: what the gateway asks when a
// submission names a dataset its cached listing lacks (a new output, most often).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { listDatasets } from '../catalog/index.js';
import { DATASET_NAME_MAX_LENGTH, DATASET_NAME_PATTERN, type DatasetList, DatasetListSchema } from '../wire/index.js';

const ListQuery = Type.Object({ name: Type.Optional(Type.String({ pattern: DATASET_NAME_PATTERN, maxLength: DATASET_NAME_MAX_LENGTH })) }, { additionalProperties: false });

export function datasetRoutes(server: FastifyInstance, options: { dataRoot: string }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>(); // handler types from the route schemas
  let reported = '[]';
  app.get(
    '/datasets',
    { schema: { querystring: ListQuery, response: { 200: DatasetListSchema } } },
    async (request): Promise<DatasetList> => {
      const only = request.query.name;
      if (only !== undefined) return { datasets: (await listDatasets(options.dataRoot, only)).datasets };
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
