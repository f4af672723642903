// The gateway, composed in pipeline order: reading this file is reading the road a request walks.
import Fastify, { type FastifyInstance } from 'fastify';
import { installPlumbing, loggerOptions, serverOptions } from '../http/index.js';
import type { PolicySnapshot } from '../policy/index.js';
import type { EngineClient } from '../proxy/index.js';
import type { Store } from '../store/index.js';
import type { TlsMaterial } from '../wire/index.js';
import { installHealth } from './health.js';
import { installMetrics } from './metrics.js';
import { installOpenApi } from './openapi.js';

export interface GatewayDeps {
  tls: TlsMaterial;
  logLevel: string;
  bodyLimit: number;
  store: Store;
  policy: () => PolicySnapshot | undefined;
  engine: EngineClient;
}

export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...serverOptions(),
    logger: loggerOptions('gateway', deps.logLevel),
    bodyLimit: deps.bodyLimit,
    https: { ...deps.tls, minVersion: 'TLSv1.2' },
  });

  installPlumbing(app); // request ids, one log line a request, error bodies, schemas required
  await installOpenApi(app); // before any route, so it sees them all
  installMetrics(app); // request-duration histogram and /metrics

  // The pipeline of DESIGN.md, each stage a hook from its own room as its issue lands:
  //   1 authenticate (src/auth) → 2 authorize (src/policy) → 3 admit (src/quota)
  //   → 4 dispatch (src/proxy) → 5 audit (src/audit, before the response is sent)

  installHealth(app, {
    store: async () => {
      await deps.store.ping();
      return 'ok';
    },
    policy: async () => {
      const policy = deps.policy();
      if (!policy) throw new Error('no policy loaded');
      return `ok (version ${policy.version})`;
    },
    engine: async () => {
      const health = await deps.engine.health();
      return `ok (${deps.engine.url}, version ${health.version})`;
    },
  });
  return app;
}
