// POST /v1/jobs/preview: what a job would take and what the policy and the quota would decide, without
// running it, holding anything or recording the dataset decisions one by one. The same decisions as a
// submission (job-datasets.ts, checkQuota on the person's usage as the records have it now, the
// backend's slots), answered with the rule or the limit line each came from, and recorded once as
// `job.preview`: a console shows it before the person presses submit.
import type { FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { actorOf, type AuditRecorder, recordOrFail } from '../audit/index.js';
import type { Identity } from '../identity/index.js';
import type { PolicySnapshot } from '../policy/index.js';
import { BACKEND_SLOTS, checkQuota, heldMemoryMb, limitsFor } from '../quota/index.js';
import { GatehouseError, type JobSpec, jobSpecProblem } from '../wire/index.js';
import type { JobBook } from './job-book.js';
import type { JobDatasets } from './job-datasets.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const PreviewSchema = Type.Object({
  outcome: Type.Union([Type.Literal('would_run'), Type.Literal('would_wait'), Type.Literal('refused')], { description: 'would_run: admitted at once; would_wait: pending (reason); refused: the policy or the quota says no' }),
  reason: Type.String(),
  /** The policy line that refused, when a rule did. */
  rule: Nullable(Type.String()),
  line: Nullable(Type.String()),
  /** The quota limit that decided (refused or waiting), with its line. */
  limit: Nullable(Type.Object({ name: Type.String(), used: Type.Number(), requested: Type.Number(), max: Type.Number(), source: Nullable(Type.String()), line: Nullable(Type.String()) })),
  policy_version: Type.String(),
  backend: Type.String(),
  datasets: Type.Array(Type.Object({ object: Type.String(), requested: Type.String(), allowed: Type.Boolean(), rule: Nullable(Type.String()), line: Nullable(Type.String()), reason: Type.String() })),
  takes: Type.Object({
    cores: Type.Integer(),
    memory_mb: Type.Integer({ description: 'per worker' }),
    memory_mb_total: Type.Integer({ description: 'cores × memory_mb: what max_memory_mb counts' }),
    time_limit_s: Type.Integer(),
    core_hours_at_most: Type.Number({ description: 'cores × time limit: the most the day budget can be charged' }),
    partitions: Nullable(Type.Integer()),
    input_rows: Nullable(Type.Integer()),
    input_bytes: Nullable(Type.Integer()),
  }),
});
export type Preview = Static<typeof PreviewSchema>;

export interface PreviewDeps {
  book: JobBook;
  datasets: JobDatasets;
  audit: AuditRecorder;
  policy: () => PolicySnapshot;
}

export async function previewJob(deps: PreviewDeps, identity: Identity, spec: JobSpec, req: FastifyRequest): Promise<Preview> {
  const problem = jobSpecProblem(spec);
  if (problem !== null) throw new GatehouseError('invalid_request', problem, { field: `body.${problem.slice(0, problem.indexOf(':'))}` });
  const backend = spec.backend ?? deps.book.backendNames()[0]!;
  if (!deps.book.hasBackend(backend)) throw new GatehouseError('invalid_request', `backend: "${backend}" is not configured here (configured: ${deps.book.backendNames().join(', ')})`, { field: 'body.backend' });

  const asker = { identity, origin: { ip: req.ip, id: req.id, log: req.log } };
  const { verdict, decisions, input } = await deps.datasets.forPreview(asker, { id: 'preview', spec, backend });
  const r = spec.resources;
  const takes = {
    cores: r.cores,
    memory_mb: r.memory_mb,
    memory_mb_total: heldMemoryMb(r),
    time_limit_s: r.time_limit_s,
    core_hours_at_most: Math.round(((r.cores * r.time_limit_s) / 3600) * 100) / 100,
    partitions: input ? (spec.partitions?.length ?? input.partitions) : null,
    input_rows: input?.rows ?? null,
    input_bytes: input?.bytes ?? null,
  };
  const { limits, detail, policyVersion } = limitsFor(deps.policy(), identity);
  const base = { policy_version: policyVersion, backend, datasets: decisions, takes, rule: null, line: null, limit: null };
  let preview: Preview;
  if (verdict.outcome === 'denied') {
    preview = { ...base, outcome: 'refused', reason: verdict.decision.reason, rule: verdict.decision.rule, line: verdict.decision.line };
  } else if (verdict.outcome === 'missing') {
    preview = { ...base, outcome: 'refused', reason: `no dataset ${spec.input}` };
  } else if (verdict.outcome === 'unlabelable') {
    preview = { ...base, outcome: 'refused', reason: verdict.error.message };
  } else {
    const { slots } = await deps.book.backend(backend).capacity();
    const { usage, pending } = await deps.book.snapshot(identity.user);
    const check = checkQuota(limits, usage, r);
    const lineOf = (name: string) => {
      const d = (detail as Record<string, { source: string; line: string | null } | undefined>)[name];
      return { source: d?.source ?? null, line: d?.line ?? null };
    };
    // In the order admission decides (src/quota/admission.ts): the limits, then the backend's slots.
    if (check.verdict === 'refuse') {
      preview = { ...base, outcome: 'refused', reason: check.reason, limit: { name: check.limit, used: check.used, requested: check.requested, max: check.max, ...lineOf(check.limit) } };
    } else if (r.cores > slots) {
      preview = { ...base, outcome: 'refused', reason: `resources.cores: ${r.cores} cores requested, but backend ${backend} runs at most ${slots} workers at once, so a job can never use more; ask for ${slots} or fewer`, limit: { name: BACKEND_SLOTS, used: 0, requested: r.cores, max: slots, source: null, line: null } };
    } else if (check.verdict === 'wait') {
      preview = { ...base, outcome: 'would_wait', reason: check.reason, limit: { name: check.limit, used: check.used, requested: check.requested, max: check.max, ...lineOf(check.limit) } };
    } else if (pending.length > 0) {
      preview = { ...base, outcome: 'would_wait', reason: `behind ${pending.length} pending job${pending.length === 1 ? '' : 's'} of yours`, limit: { name: 'queue', used: pending.length, requested: 1, max: 0, source: null, line: null } };
    } else {
      preview = { ...base, outcome: 'would_run', reason: `fits your quota; admitted to ${backend} at once` };
    }
  }
  await recordOrFail(
    deps.audit,
    {
      actor: actorOf(identity, req.ip),
      action: 'job.preview',
      object: 'job:preview',
      decision: preview.outcome === 'refused' ? 'deny' : 'allow',
      reason: preview.reason,
      policy_version: policyVersion,
      request_id: req.id,
      details: { outcome: preview.outcome, input: spec.input, output: spec.output, backend, requested: { ...r }, ...(preview.line ? { rule_line: preview.line } : {}), ...(preview.limit ? { limit: preview.limit.name } : {}) },
    },
    req.log,
  );
  return preview;
}
