// The bundled engine's HTTP API: TLS that requires a client certificate from our CA, and
// inside it only the gateway's certificate (CN=gateway, OU=services) is served.
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import Type from 'typebox';
import { installPlumbing, loggerOptions, NoQuery, serverOptions } from '../http/index.js';
import { VERSION } from '../version.js';
import { GATEWAY_CLIENT_SUBJECT, GatehouseError, type HealthStatus, type TlsMaterial } from '../wire/index.js';
import { datasetRoutes } from './dataset-routes.js';

export interface EngineOptions {
  tls: TlsMaterial;
  logLevel: string;
  /** Where the datasets live (data.root). */
  dataRoot: string;
}

const HealthBody = Type.Object({
  status: Type.Literal('ok'),
  service: Type.Literal('engine'),
  version: Type.String(),
  uptime_s: Type.Number(),
});

export function buildEngine(options: EngineOptions): FastifyInstance {
  const app = Fastify({
    ...serverOptions(),
    logger: loggerOptions('engine', options.logLevel),
    https: {
      ...options.tls,
      requestCert: true,
      rejectUnauthorized: true, // no certificate from our CA: the handshake itself fails
      minVersion: 'TLSv1.2',
    },
  });
  installPlumbing(app);

  app.addHook('onRequest', async (request) => {
    const peer = (request.raw.socket as TLSSocket).getPeerCertificate();
    if (peer.subject?.CN !== GATEWAY_CLIENT_SUBJECT.commonName || peer.subject?.OU !== GATEWAY_CLIENT_SUBJECT.organizationalUnit) {
      throw new GatehouseError('forbidden', 'the engine serves only the gateway');
    }
  });

  app.get(
    '/healthz',
    { schema: { querystring: NoQuery, response: { 200: HealthBody } } },
    async (): Promise<HealthStatus> => ({ status: 'ok', service: 'engine', version: VERSION, uptime_s: Math.round(process.uptime()) }),
  );
  datasetRoutes(app, { dataRoot: options.dataRoot });
  return app;
}
