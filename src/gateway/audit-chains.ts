// Which gateways' chains make up the trail, for auditors and IT: GET /v1/audit/chains lists every
// chain seen over the shared store (live, gone, retired), and POST /v1/audit/chains/:name/retire
// lets an admin say a gone gateway's chain is no longer expected. Until then a merged answer names
// that chain as missing; after, it is left out, and the retirement itself stays in the trail and in
// the listing (who, when, why), so no chain leaves the auditors' view without a recorded reason.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { type AuditRecorder, recordDecision } from '../audit/index.js';
import { NoQuery } from '../http/index.js';
import { type Authorizer, identityOf } from '../identity/index.js';
import { forbidden } from '../policy/index.js';
import type { ChainEntry } from '../store/index.js';
import { GatehouseError } from '../wire/index.js';

/** A chain as the store's registry keeps it. */
export type ChainView = ChainEntry;

export interface ChainBook {
  chains(): Promise<ChainView[]>;
  /** Throws an Error with `kind` unknown | running | retired when it cannot. */
  retire(name: string, by: string, reason: string): Promise<ChainView>;
}

const ChainSchema = Type.Object(
  {
    chain_id: Type.String({ description: "the chain's own identity, drawn in its audit.db: a new trail at an old gateway's address is another chain" }),
    name: Type.String({ description: "the gateway's name (its peer_url host:port), as its events are labelled" }),
    url: Type.String({ description: 'where it was last reached' }),
    state: Type.Enum(['live', 'gone', 'retired'], { description: 'live: asked by every merged question; gone: not running, named as missing; retired: left out, with why' }),
    first_seen: Type.String({ format: 'date-time' }),
    last_seen: Type.String({ format: 'date-time' }),
    retired: Type.Optional(Type.Object({ at: Type.String({ format: 'date-time' }), by: Type.String(), reason: Type.String() }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
const Name = Type.Object({ name: Type.String({ minLength: 1, maxLength: 300, pattern: '^[A-Za-z0-9.:\\[\\]_-]+$' }) }, { additionalProperties: false });
const RetireBody = Type.Object(
  {
    // One line of words: at least three visible characters, no control, bidi or line-separator character
    // (it is shown in other people's terminals and tables, and a blank reason is no reason).
    reason: Type.String({
      minLength: 3,
      maxLength: 500,
      pattern: '^(?=(?:\\s*\\S){3})[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]+$',
      description: 'why (decommissioned host, its trail exported to ...), on one line: kept with the chain and in the trail',
    }),
  },
  { additionalProperties: false },
);

export function installChainRoutes(server: FastifyInstance, book: ChainBook, deps: { authorizer: Authorizer; audit: AuditRecorder }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/v1/audit/chains',
    {
      config: { authorize: { object: 'audit:chains', action: 'read', audit: 'audit.chains', denial: 403 } },
      schema: { summary: "Every gateway's chain over the shared store: live, gone (missing from merged answers) or retired", querystring: NoQuery, response: { 200: Type.Object({ chains: Type.Array(ChainSchema) }, { additionalProperties: false }) } },
    },
    async () => ({ chains: await book.chains() }),
  );
  app.post(
    '/v1/audit/chains/:name/retire',
    {
      // Decided here, not by the stage: the reason is in the body, and the recorded event carries it.
      config: { authorize: { decidedInHandler: 'admin on audit:chains (every chain is one object: a gateway name, host:port, is not a name policy can carry)' } },
      schema: { summary: "Retire a gone gateway's chain: merged answers stop naming it as missing", params: Name, querystring: NoQuery, body: RetireBody, response: { 200: ChainSchema } },
    },
    async (request) => {
      const identity = identityOf(request);
      const decision = deps.authorizer.decide(identity, 'audit:chains', 'admin');
      await recordDecision(deps.audit, request, identity, {
        action: 'audit.chain_retire',
        object: 'audit:chains',
        requested: 'admin',
        decision,
        details: { gateway: request.params.name, reason: request.body.reason },
      });
      if (!decision.allowed) throw forbidden(decision);
      try {
        return await book.retire(request.params.name, identity.user, request.body.reason);
      } catch (err) {
        const kind = (err as { kind?: string }).kind;
        if (kind === 'unknown') throw new GatehouseError('not_found', (err as Error).message);
        if (kind === 'running' || kind === 'retired') throw new GatehouseError('conflict', (err as Error).message);
        throw err;
      }
    },
  );
}
