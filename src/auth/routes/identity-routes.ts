// Who am I, and the keys anyone may use to check our tokens.
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { identityOf } from '../../identity/index.js';
import type { RouteContext } from './context.js';
import { NoQuery, WhoamiResponse } from './schemas.js';

export function installIdentityRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/.well-known/jwks.json', { config: { public: true }, schema: { summary: 'Public keys of the gateway\'s signatures: tokens, and the audit trail\'s checkpoints (kid audit-...)', querystring: NoQuery, response: { 200: Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.String())) }) } } }, async (_request, reply) => {
    // Short caching: a verifier must see a new key soon after rotation.
    reply.header('cache-control', 'public, max-age=300');
    return { keys: [...ctx.keys.jwks().keys, ...ctx.extraJwks()] };
  });

  app.get('/v1/whoami', { config: { authorize: { own: 'the caller, as their credential says' } }, schema: { summary: 'The caller, as the gateway sees them', querystring: NoQuery, response: { 200: WhoamiResponse } } }, async (request) => {
    const identity = identityOf(request);
    return { user: identity.user, groups: identity.groups, auth_method: identity.auth_method, credential: identity.credential, expires_at: identity.expires_at.toISOString() };
  });
}
