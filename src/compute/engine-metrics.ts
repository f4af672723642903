// The engine's /metrics: slots and how many are busy, the partitions waiting, jobs by state and
// how long partitions take, for the dashboard that answers "is the engine the bottleneck?".
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import Type from 'typebox';
import { NoQuery } from '../http/index.js';
import { JOB_STATES } from '../wire/index.js';
import type { JobEngine } from './jobs/job-engine.js';

export function engineMetrics(app: FastifyInstance, jobs: JobEngine): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({ name: 'gatehouse_engine_slots', help: 'Worker processes the engine runs at once (engine.slots).', registers: [registry], collect() { this.set(jobs.metrics().slots); } });
  new Gauge({ name: 'gatehouse_engine_slots_busy', help: 'Worker processes running now.', registers: [registry], collect() { this.set(jobs.metrics().busy); } });
  new Gauge({ name: 'gatehouse_engine_queue_depth', help: 'Partitions of admitted jobs waiting for a worker.', registers: [registry], collect() { this.set(jobs.metrics().queuedPartitions); } });
  new Gauge({
    name: 'gatehouse_engine_jobs',
    help: 'Jobs by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const byState = jobs.metrics().byState;
      for (const state of JOB_STATES) if (state !== 'pending') this.set({ state }, byState[state] ?? 0);
    },
  });
  const duration = new Histogram({
    name: 'gatehouse_engine_partition_duration_seconds',
    help: 'Time a worker spent on one partition (successful runs).',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [registry],
  });
  const partitions = new Counter({ name: 'gatehouse_engine_partitions_total', help: 'Partition runs by outcome (done, retried, failed).', labelNames: ['outcome'], registers: [registry] });
  jobs.on('partition', (event) => {
    partitions.inc({ outcome: event.outcome });
    if (event.outcome === 'done') duration.observe(event.seconds);
  });

  app.withTypeProvider<TypeBoxTypeProvider>().get('/metrics', { schema: { querystring: NoQuery, response: { 200: Type.String() } } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}
