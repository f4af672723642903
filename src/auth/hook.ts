// Installs stage 1 on the gateway: every route is authenticated unless it says `config: { public: true }`,
// so a route added later is closed by default. A refused credential is audited with its reason;
// the client only learns that it must authenticate.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { actorOf, type AuditRecorder, recordOrFail } from '../audit/index.js';
import type { Identity } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';
import { ownerFields } from './audit-text.js';
import type { Authenticate } from './authenticate.js';
import { TokenError } from './token-error.js';

export function installAuthentication(app: FastifyInstance, authenticate: Authenticate, audit: AuditRecorder): void {
  app.decorateRequest('identity', undefined);
  app.decorateRequest('reauthenticate', undefined);
  app.addHook('onRequest', async (request, reply) => {
    // Unknown paths answer 404 from the not-found handler, which has no route options of its own.
    if (!request.routeOptions.url || request.routeOptions.config.public) return;
    const established = await establish(request, reply);
    request.identity = established;
    // A request held before its answer (a long-poll) checks its credential again before answering:
    // a login ended meanwhile (logout, revocation, reuse of its refresh token) gets no answer from it.
    request.reauthenticate = async () => {
      const again = await establish(request, reply);
      if (again.user !== established.user) throw new GatehouseError('unauthenticated', 'invalid or expired credentials');
    };
  });

  async function establish(request: FastifyRequest, reply: FastifyReply): Promise<Identity> {
    try {
      return await authenticate(request);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      // A genuine credential that may no longer be used (revoked, expired) is its owner's; a name an
      // unverified one carries is only claimed (details.claimed_user).
      const owner = ownerFields(err.owner);
      await recordOrFail(audit, {
        actor: actorOf(owner.identity, request.ip),
        action: 'auth.rejected',
        object: `route:${request.method} ${request.routeOptions.url}`,
        decision: 'deny',
        reason: err.reason,
        request_id: request.id,
        details: { ...owner.details, ...(err.detail ? { detail: err.detail } : {}) },
      }, request.log);
      reply.header('www-authenticate', 'Bearer realm="gatehouse"');
      throw new GatehouseError('unauthenticated', err.reason === 'missing' ? 'authentication required: log in with `gatehouse login`' : 'invalid or expired credentials');
    }
  }
}
