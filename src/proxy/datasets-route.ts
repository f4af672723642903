// GET /v1/datasets: the backend's catalog, filtered to what the caller may use, with the caller's
// actions on each. A dataset's manifest labels (pii) take part in the decision, so a dataset the
// policy denies by label is never listed; one the caller may only write is listed by name alone.
// Each dataset is decided here, per item, through the Authorizer port (the route declares that);
// one audit event per listing, recorded as every decision is (recordDecision).
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { type AuditRecorder, recordDecision } from '../audit/index.js';
import { type Authorizer, identityOf } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { ACTIONS, type PolicySnapshot, writablePatterns } from '../policy/index.js';
import type { DatasetInfo } from '../wire/index.js';

export interface DatasetRouteOptions {
  datasets: () => Promise<DatasetInfo[]>;
  /** Decides the caller's actions on each dataset (the serving policy version). */
  authorizer: Authorizer;
  audit: AuditRecorder;
  /** The serving policy: where the caller may write datasets (a hint for people, `writable`). */
  policy?: () => PolicySnapshot;
}

export function installDatasetRoutes(app: FastifyInstance, options: DatasetRouteOptions): void {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/datasets', { config: { authorize: { decidedInHandler: "each dataset's actions for the caller, with its labels: listed when any is allowed" } }, schema: { summary: 'The datasets the caller may use, with the caller’s actions on each', querystring: NoQuery } }, async (request) => {
    const identity = identityOf(request);
    const all = await options.datasets();
    const { authorizer } = options;
    // No await from here to the version: one policy version decides the whole listing.
    const visible: (Partial<DatasetInfo> & { name: string; actions: string[] })[] = [];
    for (const d of all) {
      const actions = ACTIONS.filter((a) => authorizer.decide(identity, `dataset:${d.name}`, a, { labels: d.labels }).allowed);
      // Write alone (a shared scratch space) shows the name, not someone else's columns, owner or size.
      if (actions.includes('read') || actions.includes('admin')) visible.push({ ...d, actions });
      else if (actions.length > 0) visible.push({ name: d.name, actions });
    }
    const version = authorizer.version();
    await recordDecision(options.audit, request, identity, {
      action: 'dataset.list',
      object: 'dataset:*',
      decision: { allowed: true, reason: `${visible.length} of ${all.length} datasets usable by the caller`, policyVersion: version },
      details: { returned: visible.length, hidden: all.length - visible.length },
    });
    // Where new datasets may go (the allow-write patterns reaching the caller, {user} filled in): a hint; each write is still decided.
    const writable = options.policy === undefined ? undefined : writablePatterns(options.policy(), identity);
    return { datasets: visible, policy_version: version, ...(writable !== undefined ? { writable } : {}) };
  });
}
