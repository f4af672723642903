// What the authentication stage leaves on a request, and how a handler reads it back.
import { GatehouseError } from '../wire/index.js';
import type { Identity } from './identity.js';

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
  interface FastifyContextConfig {
    /** Reachable without credentials (health, metrics, JWKS, the login endpoints themselves). */
    public?: boolean;
  }
}

/** Inside a protected route: the identity stage 1 established. */
export function identityOf(request: { identity?: Identity }): Identity {
  if (!request.identity) throw new GatehouseError('unauthenticated', 'authentication required');
  return request.identity;
}
