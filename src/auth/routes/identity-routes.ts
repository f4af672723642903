// Who am I, and the keys anyone may use to check our tokens.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { identityOf } from '../../identity/index.js';
import type { RouteContext } from './context.js';
import { NoQuery, WhoamiResponse } from './schemas.js';

export function installIdentityRoutes(server: FastifyInstance, ctx: RouteContext): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>(); // handler types from the route schemas
  app.get('/.well-known/jwks.json', { config: { public: true }, schema: { summary: 'Public keys of the gateway\'s signatures: tokens, and the audit trail\'s checkpoints (kid audit-...)', querystring: NoQuery, response: { 200: Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.String())) }) } } }, async (_request, reply) => {
    // Short caching: a verifier must see a new key soon after rotation. Read from the store, so every replica publishes the same keys.
    reply.header('cache-control', 'public, max-age=300');
    return { keys: [...(await ctx.keys.jwksFresh()).keys, ...ctx.extraJwks()].map(stringFields) };
  });

  app.get('/v1/whoami', { config: { authorize: { own: 'the caller, as their credential says' } }, schema: { summary: 'The caller, as the gateway sees them', querystring: NoQuery, response: { 200: WhoamiResponse } } }, async (request) => {
    const identity = identityOf(request);
    return { user: identity.user, groups: identity.groups, auth_method: identity.auth_method, credential: identity.credential, expires_at: identity.expires_at.toISOString(), posix_user: identity.posix_user ?? null };
  });
}

/** A public key as the route's schema publishes it: its text members (every member of an EC/OKP JWK). */
function stringFields(jwk: object): Record<string, string> {
  return Object.fromEntries(Object.entries(jwk).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
