// What the authentication stage leaves on a request, and how a handler reads it back.
import { GatehouseError } from '../wire/index.js';
import type { Identity } from './identity.js';

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
    /**
     * Checks the request's credential again, as stage 1 did (refused, audited, 401 when it no longer
     * holds): for a request held before its answer (a long-poll), so that a login ended meanwhile gets nothing.
     */
    reauthenticate?: () => Promise<void>;
  }
  interface FastifyContextConfig {
    /** Reachable without credentials (health, metrics, JWKS, the login endpoints themselves). */
    public?: boolean;
    /**
     * What a protected route needs before its handler runs. On the gateway every route declares
     * `public: true` or this, or start-up refuses it (closed by default: src/policy/stage.ts).
     */
    authorize?: AuthorizationNeed;
  }
}

/** What a need may read of a request: its params and querystring, after their schemas validated them. */
export interface NeedRequest {
  params: Readonly<Record<string, string | undefined>>;
  query: Readonly<Record<string, unknown>>;
}

/**
 * A decision the authorization stage makes on the serving policy before the handler runs, and
 * records (allow and deny alike) as `audit`. A denial answers `denial`: 403 forbidden with the rule,
 * or 404 not_found where the object's existence is not the caller's business.
 */
export interface PolicyNeed {
  /** The policy object: `audit:events`, or one named by the request, e.g. (r) => `cert:${r.params.serial}`. */
  object: string | ((request: NeedRequest) => string);
  /** The policy action (read, write, admin). */
  action: string;
  /** The audit action the decision is recorded as (a name from src/audit's closed list). */
  audit: string;
  denial: 403 | 404;
  /** More for the recorded event's details (the filter an auditor asked with). */
  details?: (request: NeedRequest) => Record<string, unknown>;
}

/**
 * The route acts only on the caller's own things (who they are, their jobs, their quota, their
 * certificates): there is nothing to ask policy for one's own, so the handler decides by ownership.
 * Where someone else's may be reached by policy (an admin's view of another's job), the handler
 * asks the Authorizer and records through the audit room's recordDecision, as the stage does.
 * The text says what "own" means for the route.
 */
export interface OwnNeed {
  own: string;
}

/**
 * The decision depends on what the request body carries (a job's datasets, whose access is
 * explained) or on each item of the answer (the dataset listing): the handler asks the Authorizer
 * and records through recordDecision. The text says what is decided there.
 */
export interface HandlerNeed {
  decidedInHandler: string;
}

export type AuthorizationNeed = PolicyNeed | OwnNeed | HandlerNeed;

/** Inside a protected route: the identity stage 1 established. */
export function identityOf(request: { identity?: Identity }): Identity {
  if (!request.identity) throw new GatehouseError('unauthenticated', 'authentication required');
  return request.identity;
}

/**
 * Before answering a request that was held (a long-poll): its credential checked again. Closed: a
 * request stage 1 never saw cannot be answered this way.
 */
export async function stillAuthenticated(request: { reauthenticate?: () => Promise<void> }): Promise<void> {
  if (!request.reauthenticate) throw new GatehouseError('unauthenticated', 'authentication required');
  await request.reauthenticate();
}
