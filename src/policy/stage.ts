// Stage 2 of the gateway: authorization, closed by default. Every route declares in its options
// what it needs (src/identity/request.ts): `public: true`, or `authorize:` one of
//   { object, action, audit, denial }  decided here, on the serving policy, before the handler runs;
//   { own: '...' }                     the caller's own things, decided by ownership in the handler;
//   { decidedInHandler: '...' }        decided in the handler on what the body carries or per item.
// The last two ask the same Authorizer port and record through the same recordDecision.
// requireDeclaredAccess refuses, at start-up, a route that declares none of these; the engine
// (src/compute) shares the plumbing but not this rule: it has its own (mTLS and tickets).
import type { FastifyContextConfig, FastifyInstance } from 'fastify';
import { type AuditAction, type AuditRecorder, isAuditAction, recordDecision } from '../audit/index.js';
import { type AuthorizationNeed, type Authorizer, identityOf, type NeedRequest, type PolicyNeed } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';
import { forbidden } from './authorize.js';
import { ACTIONS, objectProblem } from './vocabulary.js';

const isOwn = (need: AuthorizationNeed): need is { own: string } => 'own' in need;
const inHandler = (need: AuthorizationNeed): need is { decidedInHandler: string } => 'decidedInHandler' in need;
/** The fields only a policy need has: beside `own` or `decidedInHandler` they would be ignored. */
const POLICY_FIELDS = ['object', 'action', 'audit', 'denial', 'details'] as const;

/** A need the stage decides (not one a handler decides). */
export function isPolicyNeed(need: AuthorizationNeed | undefined): need is PolicyNeed {
  return need !== undefined && !isOwn(need) && !inHandler(need);
}

/** What is wrong with a route's declared access, or null when it declares exactly one valid kind. */
export function accessProblem(config: Partial<FastifyContextConfig> | undefined): string | null {
  const need = config?.authorize;
  // Authentication skips a route whose `public` is truthy, this stage only `public === true`: no
  // other value may reach either, so the two can never disagree about a route.
  if (config?.public !== undefined && typeof config.public !== 'boolean') return 'config.public must be true or false';
  if (config?.public === true) return need === undefined ? null : 'declares both config.public and config.authorize (a public route has nothing to authorize)';
  if (need === undefined || need === null || typeof need !== 'object') {
    return 'declares neither config.public nor config.authorize (what it needs: { object, action, audit, denial } decided before the handler, { own } or { decidedInHandler })';
  }
  const kinds = ['own', 'decidedInHandler'].filter((k) => k in need);
  if (kinds.length > 1) return `config.authorize has both ${kinds.join(' and ')}: declare one`;
  // `{ own, object, action, ... }` reads like a policy need but is decided only by the handler (the
  // type allows the literal: each field belongs to some kind), so the stage would skip it.
  const stray = kinds.length === 1 ? POLICY_FIELDS.filter((k) => k in need) : [];
  if (stray.length > 0) return `config.authorize mixes ${kinds[0]} with a policy need's ${stray.join(', ')}: ${kinds[0]} is decided by the handler and the stage would ignore the rest; declare one kind`;
  if (isOwn(need)) return typeof need.own === 'string' && need.own.trim() !== '' ? null : 'config.authorize.own must say what the caller\'s own things are';
  if (inHandler(need)) return typeof need.decidedInHandler === 'string' && need.decidedInHandler.trim() !== '' ? null : 'config.authorize.decidedInHandler must say what the handler decides';
  if (typeof need.object === 'string') {
    const bad = objectProblem(need.object);
    if (bad) return `config.authorize.object: ${bad}`;
  } else if (typeof need.object !== 'function') return 'config.authorize.object must be a policy object or a function of the request';
  if (!(ACTIONS as readonly string[]).includes(need.action)) return `config.authorize.action must be one of ${ACTIONS.join(', ')}`;
  if (!isAuditAction(need.audit)) return `config.authorize.audit: "${String(need.audit)}" is not an audit action (src/audit/actions.ts)`;
  if (need.denial !== 403 && need.denial !== 404) return 'config.authorize.denial must be 403 or 404';
  return null;
}

/**
 * Closed by default: from here on, a route that declares neither `public: true` nor an
 * authorization need makes start-up fail, naming the route (as one without schemas does).
 * Install it right after the plumbing, before any route.
 */
export function requireDeclaredAccess(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const problem = accessProblem(route.config);
    if (problem) throw new Error(`route ${[route.method].flat().join(',')} ${route.url} ${problem}`);
  });
}

export interface AuthorizationStageOptions {
  authorizer: Authorizer;
  audit: AuditRecorder;
}

/**
 * The stage: before the handler of a route that declares a policy need, decide it for the caller on
 * the serving policy, record the decision (allow and deny, with the policy version and the rule's
 * line), and refuse a denial with 403 forbidden (the rule) or 404 not_found, as the route declared.
 * A route that reached here declaring nothing (only where requireDeclaredAccess is not installed)
 * is refused too.
 */
export function installAuthorization(app: FastifyInstance, options: AuthorizationStageOptions): void {
  const { authorizer, audit } = options;
  app.addHook('preHandler', async (request) => {
    // Unknown paths answer 404 from the not-found handler, which has no route options of its own.
    if (!request.routeOptions.url) return;
    const config = request.routeOptions.config;
    if (config.public === true) return;
    const need = config.authorize;
    if (need === undefined) throw new GatehouseError('forbidden', `route ${request.method} ${request.routeOptions.url} declares no authorization need`);
    if (!isPolicyNeed(need)) return; // decided by the handler, through the same port and recording
    const identity = identityOf(request);
    const input = { params: request.params ?? {}, query: request.query ?? {} } as NeedRequest;
    const object = typeof need.object === 'string' ? need.object : need.object(input);
    const decision = authorizer.decide(identity, object, need.action);
    await recordDecision(audit, request, identity, {
      action: need.audit as AuditAction, // checked against the closed list at start-up (accessProblem)
      object,
      requested: need.action,
      decision,
      ...(need.details ? { details: need.details(input) } : {}),
    });
    if (decision.allowed) return;
    // Where existence must not leak, a refusal looks like an absence.
    throw need.denial === 404 ? new GatehouseError('not_found', `no ${object}`) : forbidden(decision);
  });
}

/** A route's declared access as /openapi.json shows it (x-gatehouse-access), or null when it declares none. */
export function describeAccess(config: Partial<FastifyContextConfig> | undefined): Record<string, unknown> | null {
  if (config?.public === true) return { public: true };
  const need = config?.authorize;
  if (!need) return null;
  if (isOwn(need)) return { own: need.own };
  if (inHandler(need)) return { decided_in_handler: need.decidedInHandler };
  return { object: typeof need.object === 'string' ? need.object : '(named by the request)', action: need.action, denial: need.denial, audit: need.audit };
}
