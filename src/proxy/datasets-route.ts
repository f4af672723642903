// GET /v1/datasets: the backend's catalog, filtered to what the caller may use, with the caller's
// actions on each. A dataset's manifest labels (pii) take part in the decision, so a dataset the
// policy denies by label is never listed; one the caller may only write is listed by name alone.
// One audit event per listing.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { actorOf, type AuditRecorder, recordOrFail } from '../audit/index.js';
import { identityOf } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { ACTIONS, decide, type PolicySnapshot } from '../policy/index.js';
import type { DatasetInfo } from '../wire/index.js';

export interface DatasetRouteOptions {
  datasets: () => Promise<DatasetInfo[]>;
  policy: () => PolicySnapshot;
  audit: AuditRecorder;
}

export function installDatasetRoutes(app: FastifyInstance, options: DatasetRouteOptions): void {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/datasets', { schema: { summary: 'The datasets the caller may use, with the caller’s actions on each', querystring: NoQuery } }, async (request) => {
    const identity = identityOf(request);
    const all = await options.datasets();
    const policy = options.policy(); // one version for the whole listing
    const visible: (Partial<DatasetInfo> & { name: string; actions: string[] })[] = [];
    for (const d of all) {
      const actions = ACTIONS.filter((a) => decide(policy, identity, `dataset:${d.name}`, a, { labels: d.labels }).allowed);
      // Write alone (a shared scratch space) shows the name, not someone else's columns, owner or size.
      if (actions.includes('read') || actions.includes('admin')) visible.push({ ...d, actions });
      else if (actions.length > 0) visible.push({ name: d.name, actions });
    }
    await recordOrFail(
      options.audit,
      {
        actor: actorOf(identity, request.ip),
        action: 'dataset.list',
        object: 'dataset:*',
        decision: 'allow',
        reason: `${visible.length} of ${all.length} datasets usable by the caller`,
        policy_version: policy.version,
        request_id: request.id,
        details: { returned: visible.length, hidden: all.length - visible.length },
      },
      request.log,
    );
    return { datasets: visible, policy_version: policy.version };
  });
}
