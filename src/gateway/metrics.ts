// /metrics: process metrics and an HTTP request-duration histogram by route and status.
// The registry is the app's own (no module-level singleton), so two apps in one process never mix.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import Type from 'typebox';
import { NoQuery } from '../http/index.js';

export function installMetrics(app: FastifyInstance, registry: Registry = new Registry()): Registry {
  collectDefaultMetrics({ register: registry }); // standard names, so stock dashboards work
  const duration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time from request to response, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: unmatched paths share one label so nobody can grow our series.
    const route = request.routeOptions.url ?? 'unmatched';
    duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/metrics',
    {
      config: { public: true }, // scraped by Prometheus; no user data in it
      schema: {
        summary: 'Prometheus metrics',
        querystring: NoQuery,
        response: { 200: Type.String() },
      },
    },
    async (_request, reply) => {
      reply.type(registry.contentType);
      return registry.metrics();
    },
  );
  return registry;
}
