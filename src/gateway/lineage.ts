// A job's lineage for an auditor: inputs → job → output, each step with who, when, the policy
// version it was decided under and the deciding rule's text as it was in that version (read back
// from the store, src/policy/versions.ts, not from today's policies/). Built from this gateway's
// trail (src/audit/lookup.ts); reading it is querying the trail, so it needs what a query needs.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { type AuditEvent, type AuditTrail, jobEvents } from '../audit/index.js';
import type { PolicyVersions } from '../policy/index.js';
import { GatehouseError } from '../wire/index.js';

export interface LineageStep {
  event_id: number;
  time: string;
  action: string;
  object: string;
  decision: string;
  reason: string;
  user: string | null;
  /** What was asked of policy (read, write, overwrite), when a policy decision. */
  requested: string | null;
  policy_version: string | null;
  /** policy.csv:12: the line that decided, when a rule did. */
  rule_line: string | null;
  /** That line's text in `policy_version`; null when no rule decided or the version's text is not stored. */
  rule_text: string | null;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

async function stepOf(e: AuditEvent, versions: PolicyVersions): Promise<LineageStep> {
  const line = str(e.details.rule_line);
  return {
    event_id: e.id,
    time: e.time,
    action: e.action,
    object: e.object,
    decision: e.decision,
    reason: e.reason,
    user: e.actor.user,
    requested: str(e.details.requested),
    policy_version: e.policy_version,
    rule_line: line,
    rule_text: line !== null && e.policy_version !== null ? await versions.lineText(e.policy_version, line) : null,
  };
}

/** Inputs → job → output of one job, from its events in chain order. */
export async function lineageOf(id: string, events: AuditEvent[], versions: PolicyVersions) {
  const steps = await Promise.all(events.map((e) => stepOf(e, versions)));
  const submit = steps.find((s) => s.action === 'job.submit');
  const submitEvent = events.find((e) => e.action === 'job.submit');
  const finish = events.filter((e) => e.action === 'job.finish').at(-1);
  const dataset = (s: LineageStep) => s.object.slice('dataset:'.length);
  const byDataset = (pick: (s: LineageStep) => boolean) => {
    const names = [...new Set(steps.filter((s) => s.object.startsWith('dataset:') && pick(s)).map(dataset))];
    return names.map((name) => {
      const mine = steps.filter((s) => s.object === `dataset:${name}`);
      return { dataset: name, steps: mine.map((s) => s.event_id) };
    });
  };
  const inputs = byDataset((s) => s.action === 'dataset.read' || (s.action === 'dataset.authorize' && s.requested === 'read'));
  const outputs = byDataset((s) => s.action === 'dataset.write' || (s.action === 'dataset.authorize' && (s.requested === 'write' || s.requested === 'overwrite')));
  const versionsUsed = [...new Set(steps.map((s) => s.policy_version).filter((v): v is string => v !== null))];
  return {
    job: {
      id,
      owner: submit?.user ?? events[0]?.actor.user ?? null,
      name: str(submitEvent?.details.name),
      backend: str(submitEvent?.details.backend),
      submitted_at: submit?.time ?? null,
      finished_at: finish?.time ?? null,
      state: str(finish?.details.state) ?? (submit ? 'not finished' : null),
    },
    inputs,
    output: outputs[0] ?? null,
    policy_versions: await Promise.all(versionsUsed.map(async (v) => ({ version: v, stored: (await versions.get(v)) !== null, first_served_at: (await versions.get(v))?.first_served_at ?? null }))),
    steps,
    scope: 'local' as const,
  };
}

export function installLineageRoute(server: FastifyInstance, deps: { audit: AuditTrail; versions: PolicyVersions }): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/v1/audit/lineage/:job',
    {
      config: { authorize: { object: 'audit:events', action: 'read', audit: 'audit.query', denial: 403, details: (r) => ({ kind: 'lineage', job: r.params.job ?? null }) } },
      schema: {
        summary: "A job's lineage from this gateway's trail: inputs → job → output, who and when, each decision's policy version and the deciding rule's text as it was in that version",
        params: Type.Object({ job: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }, { additionalProperties: false }),
        querystring: Type.Object({}, { additionalProperties: false }),
      },
    },
    async (request) => {
      let events: AuditEvent[];
      try {
        events = jobEvents(deps.audit.reader(), request.params.job);
      } catch (err) {
        request.log.error({ err }, 'audit trail unreadable');
        throw new GatehouseError('audit_unavailable', 'the audit trail cannot be read');
      }
      if (events.length === 0) throw new GatehouseError('not_found', `no events of job ${request.params.job} in this gateway's trail`);
      return lineageOf(request.params.job, events, deps.versions);
    },
  );
}
