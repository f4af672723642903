// The policy API: what is serving (GET /v1/policy), reload now (POST /v1/policy/reload), and why
// a decision comes out as it does (POST /v1/policy/explain). Reading the policy and explaining
// someone else's access need `read` on policy:files; reloading needs `admin`. Anyone may explain
// their own access, with their own groups.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import Type from 'typebox';
import { actorOf, type AuditRecorder, recordDecision, recordOrFail, SYSTEM_ACTOR } from '../audit/index.js';
import { identityOf } from '../identity/index.js';
import { EmptyBody, NoQuery } from '../http/index.js';
import { GatehouseError } from '../wire/index.js';
import { forbidden } from './authorize.js';
import { decide } from './decide.js';
import { explain } from './explain.js';
import type { PolicyReloader, ReloadOutcome } from './reloader.js';
import type { PolicyVersions } from './versions.js';
import { ACTIONS, isName, objectProblem } from './vocabulary.js';

/** The object the policy API is guarded by. */
export const POLICY_OBJECT = 'policy:files';

export interface PolicyRouteOptions {
  reloader: PolicyReloader;
  audit: AuditRecorder;
  registry: Registry;
  /** The groups a user had at their latest login, when the gateway has seen them. */
  knownGroups?: (user: string) => Promise<{ groups: string[]; seen_at: string } | null>;
  /** A dataset's manifest labels from the backend's catalog (null when there is no such dataset). */
  datasetLabels?: (name: string) => Promise<string[] | null>;
  /** Where each version's text is kept before it serves (lineage reads it back). */
  versions?: PolicyVersions;
}

const Name = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const ExplainBody = Type.Object(
  {
    user: Name,
    object: Type.String({ minLength: 1, maxLength: 512 }),
    action: Type.String({ minLength: 1, maxLength: 32 }),
    groups: Type.Optional(Type.Array(Name, { maxItems: 512 })),
    labels: Type.Optional(Type.Array(Name, { maxItems: 64 })),
  },
  { additionalProperties: false },
);

function problemsOf(o: ReloadOutcome) {
  return o.problems.map((p) => ({ severity: p.severity, file: p.file, line: p.line, message: p.message, ...(p.hint ? { hint: p.hint } : {}) }));
}

/** What a reload outcome looks like on the wire (also its audit detail, minus nothing secret). */
export function outcomeBody(o: ReloadOutcome) {
  const trigger = o.trigger.by === 'api' ? { by: 'api', user: o.trigger.user } : { by: o.trigger.by };
  return { outcome: o.outcome, version: o.version, previous_version: o.previous_version, attempted_version: o.attempted_version, trigger, at: o.at, duration_ms: o.duration_ms, files: o.files, problems: problemsOf(o) };
}

/** Who a reload is recorded as: the admin who asked, or the gateway's own file watch (or start-up). */
export const FILE_WATCH_ACTOR = 'system:file-watch';

/** Audits a reload outcome: `policy.reload` for a version put in service (or an asked-for no-op), else `policy.reload_failed`. */
export function auditReload(audit: AuditRecorder, o: ReloadOutcome): Promise<void> {
  const actor = o.trigger.by === 'api' ? o.trigger.actor : { ...SYSTEM_ACTOR, user: o.trigger.by === 'file-change' ? FILE_WATCH_ACTOR : 'system:start' };
  const requestId = o.trigger.by === 'api' ? o.trigger.request_id : null;
  const failed = o.outcome === 'failed';
  const errors = o.problems.filter((p) => p.severity === 'error').map((p) => `${p.file}${p.line === null ? '' : `:${p.line}`}: ${p.message}`);
  return recordOrFail(audit, {
    actor,
    action: failed ? 'policy.reload_failed' : 'policy.reload',
    object: POLICY_OBJECT,
    decision: failed ? 'error' : 'allow',
    reason: failed ? `refused version ${o.attempted_version ?? '(unreadable)'}; ${o.version} keeps serving: ${errors[0] ?? 'invalid'}` : o.outcome === 'unchanged' ? `version ${o.version} already serving` : `version ${o.version} replaces ${o.previous_version}`,
    policy_version: o.version,
    request_id: requestId,
    // The files' own hashes: what exactly was tried, whoever (or whatever) tried it.
    details: { outcome: o.outcome, version: o.attempted_version, previous_version: o.previous_version, attempted_version: o.attempted_version, trigger: o.trigger.by, files: o.files, problems: errors.slice(0, 50) },
  });
}

export function installPolicyMetrics(reloader: PolicyReloader, registry: Registry): void {
  const reloads = new Counter({ name: 'gatehouse_policy_reloads_total', help: 'Policy reload attempts by outcome (loaded, unchanged, failed).', labelNames: ['outcome'], registers: [registry] });
  for (const outcome of ['loaded', 'unchanged', 'failed']) reloads.inc({ outcome }, 0);
  reloader.onOutcome((o) => reloads.inc({ outcome: o.outcome }));
  new Gauge({
    name: 'gatehouse_policy_last_reload_failed',
    help: '1 when the latest reload was refused (the previous version serves), else 0.',
    registers: [registry],
    collect() {
      this.set(reloader.lastOutcome().outcome === 'failed' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'gatehouse_policy_info',
    help: 'The serving policy version (label), always 1.',
    labelNames: ['version'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ version: reloader.current().version }, 1);
    },
  });
  new Gauge({
    name: 'gatehouse_policy_last_good_reload_timestamp_seconds',
    help: 'When the serving policy version was put in service (Unix time); this gateway\'s own reloads.',
    registers: [registry],
    collect() {
      this.set(reloader.current().loadedAt.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'gatehouse_policy_rules',
    help: 'Rule lines (p) in the serving policy version.',
    registers: [registry],
    collect() {
      this.set(reloader.current().rules.length);
    },
  });
}

export function installPolicyRoutes(server: FastifyInstance, options: PolicyRouteOptions): void {
  // Handler types come from the route schemas (the ones Ajv validates with), never restated.
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  const { reloader, audit } = options;
  installPolicyMetrics(reloader, options.registry);
  // A version's text is stored before it serves, and only then is its reload recorded and applied.
  reloader.attach({
    auditor: async (o, next) => {
      if (next) await options.versions?.remember(next);
      await auditReload(audit, o);
    },
    log: app.log,
  });

  // Reading needs read on policy:files, reloading admin: decided and recorded by the authorization stage.
  app.get('/v1/policy', { config: { authorize: { object: POLICY_OBJECT, action: 'read', audit: 'policy.view', denial: 403 } }, schema: { summary: 'The serving policy version, its warnings and the latest reload', querystring: NoQuery } }, async () => {
    const p = reloader.current();
    return {
      version: p.version,
      loaded_at: p.loadedAt.toISOString(),
      dir: p.dir,
      model: { effect: p.model.effect, matcher: p.model.matcher.source.replace(/\b([rp])_/g, '$1.'), role_definitions: p.model.roleTypes },
      counts: p.counts,
      warnings: p.warnings.map((w) => ({ ...w })),
      last_reload: outcomeBody(reloader.lastOutcome()),
      reloads: { ...reloader.counts },
    };
  });

  app.post('/v1/policy/reload', { config: { authorize: { object: POLICY_OBJECT, action: 'admin', audit: 'policy.reload_request', denial: 403 } }, schema: { summary: 'Reload policies/ now; a version that fails lint is refused and the old one keeps serving', querystring: NoQuery, body: Type.Optional(EmptyBody) } }, async (request) => {
    const identity = identityOf(request);
    const outcome = await reloader.reload({ by: 'api', user: identity.user, actor: actorOf(identity, request.ip), request_id: request.id });
    if (outcome.outcome === 'failed') {
      throw new GatehouseError('policy_invalid', `policy refused, version ${outcome.version} keeps serving: ${outcome.problems.length} problem(s), first: ${outcome.problems[0]?.file}${outcome.problems[0]?.line ? `:${outcome.problems[0].line}` : ''} ${outcome.problems[0]?.message ?? ''}`, outcomeBody(outcome));
    }
    return outcomeBody(outcome);
  });

  // The diff of the two versions the latest reload swapped (reloader.ts); reading it is reading the policy.
  app.get(
    '/v1/policy/diff',
    { config: { authorize: { object: POLICY_OBJECT, action: 'read', audit: 'policy.view', denial: 403, details: () => ({ kind: 'diff' }) } }, schema: { summary: 'Who gained and lost what with the latest reload (the two versions it swapped)', querystring: NoQuery } },
    async () => {
      const pending = reloader.lastDiff();
      const serving = reloader.current().version;
      if (pending === null) return { serving_version: serving, diff: null, note: 'no version has been reloaded since this gateway started' };
      return { serving_version: serving, diff: await pending };
    },
  );

  app.post('/v1/policy/explain', { config: { authorize: { decidedInHandler: "whose access the body names: one's own needs no grant, anyone else's read on policy:files" } }, schema: { summary: 'Why a user may or may not do an action on an object, and their quota', querystring: NoQuery, body: ExplainBody } }, async (request) => {
    const identity = identityOf(request);
    const body = request.body;
    if (!isName(body.user)) throw new GatehouseError('invalid_request', `user "${body.user}" is not a valid user name`, { field: 'user' });
    const bad = objectProblem(body.object);
    if (bad) throw new GatehouseError('invalid_request', `object: ${bad}`, { field: 'object' });
    if (!(ACTIONS as readonly string[]).includes(body.action)) throw new GatehouseError('invalid_request', `action must be one of ${ACTIONS.join(', ')}`, { field: 'action' });
    const policy = reloader.current(); // one version for the audit event and the answer
    const self = body.user === identity.user && body.groups === undefined;
    let groups: string[];
    let groupsSource: 'caller' | 'request' | 'last-login' | 'none';
    let seenAt: string | null = null;
    if (self) {
      // One's own access, with one's own groups: no policy grant needed.
      groups = identity.groups;
      groupsSource = 'caller';
      await recordDecision(audit, request, identity, { action: 'policy.explain', object: body.object, decision: { allowed: true, reason: "explaining the caller's own access", policyVersion: policy.version }, details: { user: body.user, requested: body.action } });
    } else {
      // Someone else's: read on policy:files, on the version that answers (details.requested is the explained action).
      const decision = decide(policy, identity, POLICY_OBJECT, 'read');
      await recordDecision(audit, request, identity, { action: 'policy.explain', object: POLICY_OBJECT, requested: 'read', decision, details: { user: body.user, object: body.object, requested: body.action } });
      if (!decision.allowed) throw forbidden(decision);
      if (body.groups) {
        groups = body.groups;
        groupsSource = 'request';
      } else {
        const known = await options.knownGroups?.(body.user);
        groups = known?.groups ?? [];
        groupsSource = known ? 'last-login' : 'none';
        seenAt = known?.seen_at ?? null;
      }
    }
    // Decide as the gateway would: a dataset's labels come from its manifest unless given.
    let labels = body.labels ?? [];
    let labelsSource: 'request' | 'catalog' | 'none' = body.labels ? 'request' : 'none';
    if (!body.labels && body.object.startsWith('dataset:') && options.datasetLabels) {
      const found = await options.datasetLabels(body.object.slice('dataset:'.length));
      if (found) [labels, labelsSource] = [found, 'catalog'];
    }
    const result = explain(policy, { user: body.user, groups }, body.object, body.action, labels);
    return { ...result, groups_source: groupsSource, groups_seen_at: seenAt, labels_source: labelsSource };
  });
}
