// /healthz (the process answers) and /readyz (its store, policy and engine answer too).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { NoQuery } from '../http/index.js';
import { GatehouseError } from '../wire/index.js';
import { VERSION } from '../version.js';

/** One dependency readiness depends on: resolves with a short detail, or throws why not. */
export type ReadinessCheck = () => Promise<string>;

const HealthBody = Type.Object({
  status: Type.Literal('ok'),
  service: Type.Literal('gateway'),
  version: Type.String(),
  uptime_s: Type.Number(),
});

const ReadyBody = Type.Object({
  status: Type.Literal('ready'),
  checks: Type.Record(Type.String(), Type.String()),
});

export function installHealth(server: FastifyInstance, checks: Record<string, ReadinessCheck>): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>(); // handler types from the route schemas
  app.get('/healthz', { config: { public: true }, schema: { summary: 'Liveness', querystring: NoQuery, response: { 200: HealthBody } } }, async () => ({
    status: 'ok' as const,
    service: 'gateway' as const,
    version: VERSION,
    uptime_s: Math.round(process.uptime()),
  }));

  app.get('/readyz', { config: { public: true }, schema: { summary: 'Readiness: store, policy and engine answer', querystring: NoQuery, response: { 200: ReadyBody } } }, async () => {
    const names = Object.keys(checks);
    const results = await Promise.allSettled(names.map((name) => checks[name]!()));
    const report: Record<string, string> = {};
    const failures: string[] = [];
    results.forEach((r, i) => {
      const name = names[i]!;
      if (r.status === 'fulfilled') report[name] = r.value;
      else {
        report[name] = `failed: ${(r.reason as Error).message}`;
        failures.push(`${name}: ${(r.reason as Error).message}`);
      }
    });
    if (failures.length > 0) throw new GatehouseError('not_ready', failures.join('; '), { checks: report });
    return { status: 'ready' as const, checks: report };
  });
}
