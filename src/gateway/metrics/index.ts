// /metrics: process metrics, request durations, and the curated set IT alerts on (README, "Metrics"):
// one small module per concern, each given the registry and what it reads. The registry is the app's
// own (no module-level singleton), so two apps in one process never mix.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import Type from 'typebox';
import type { AuditTrail } from '../../audit/index.js';
import { NoQuery } from '../../http/index.js';
import type { Authorizer } from '../../identity/index.js';
import type { ComputeBackend } from '../../proxy/index.js';
import type { Store } from '../../store/index.js';
import { installAuditMetrics } from './audit.js';
import { installCertificateMetrics, type NamedCertificates } from './certificates.js';
import { timedAuthorizer } from './decisions.js';
import { installEngineRelay } from './engine.js';
import { installEventMetrics } from './events.js';
import { installJobMetrics } from './jobs.js';

export interface MetricsSources {
  audit: AuditTrail;
  store: Store;
  backends: readonly ComputeBackend[];
  certificates: NamedCertificates;
}

export interface GatewayMetrics {
  registry: Registry;
  /** The Authorizer, timed: gatehouse_decision_duration_seconds. */
  timed(authorizer: Authorizer): Authorizer;
}

export function installMetrics(app: FastifyInstance, sources: MetricsSources): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry }); // standard names, so stock dashboards work
  // Gauges named like counters (promtool check metrics refuses them); the same counts by type remain (nodejs_active_handles{type}, ...).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  installHttpMetrics(app, registry);
  const backendNames = () => sources.backends.map((b) => b.name);
  installAuditMetrics(sources.audit, registry, installEventMetrics(registry, backendNames));
  installJobMetrics(registry, sources.store, backendNames);
  installCertificateMetrics(registry, sources.certificates);
  const relay = installEngineRelay(registry, sources.backends);

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
      const engines = await relay(); // first: it sets gatehouse_engine_scrape_ok
      reply.type(registry.contentType);
      return (await registry.metrics()) + engines;
    },
  );
  return { registry, timed: timedAuthorizer(registry) };
}

function installHttpMetrics(app: FastifyInstance, registry: Registry): void {
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
}
