// Counters read off the decisions this gateway records. Every login, refresh, certificate, decision,
// quota refusal and job end goes through the audit trail before it is answered ("record, then act"),
// so counting there counts each exactly once, only once it is on record, and needs no hook in the
// rooms that decide. Each counter is this gateway's own: with several gateways, sum them.
// Label values come from closed lists; anything else counts as `other` (never a user, a dataset or
// a job id, whatever an event's details hold).
import { Counter, Histogram, type Registry } from 'prom-client';
import { AUDIT_ACTION_NAMES, type AuditInput } from '../../audit/index.js';
import { QUOTA_LIMITS } from '../../policy/index.js';
import { BACKEND_SLOTS } from '../../quota/index.js';

const PER_GATEWAY = 'This gateway\'s own: with several gateways, sum over them.';
const LOGIN_METHODS = ['oidc', 'ldap'] as const;
const DECISIONS = ['allow', 'deny', 'error'] as const;
/** The limits a job can be refused or kept waiting by: the policy's quota lines and the gateway's own caps. */
const LIMITS = [...QUOTA_LIMITS, 'max_pending_jobs', BACKEND_SLOTS, 'queue'] as const;
const END_STATES = ['succeeded', 'failed', 'cancelled', 'refused'] as const;

/** `value` when it is one of `allowed`, else `other`: a label never takes a value from outside its list. */
function bounded(value: unknown, allowed: readonly string[]): string {
  return typeof value === 'string' && allowed.includes(value) ? value : 'other';
}

/** A backend's name is a label only when it is a configured one. */
export type BackendNames = () => readonly string[];

export function installEventMetrics(registry: Registry, backends: BackendNames): (event: AuditInput) => void {
  const registers = [registry];
  const logins = new Counter({ name: 'gatehouse_logins_total', help: `Login attempts by method (oidc, ldap) and outcome (success, failure, throttled). ${PER_GATEWAY}`, labelNames: ['method', 'outcome'], registers });
  for (const method of LOGIN_METHODS) for (const outcome of ['success', 'failure', 'throttled']) logins.inc({ method, outcome }, 0);
  const refreshes = new Counter({ name: 'gatehouse_token_refreshes_total', help: `Refresh-token trades by outcome (success, refused). ${PER_GATEWAY}`, labelNames: ['outcome'], registers });
  for (const outcome of ['success', 'refused']) refreshes.inc({ outcome }, 0);
  const reuse = new Counter({ name: 'gatehouse_token_reuse_detections_total', help: `Refresh tokens presented a second time (stolen or replayed); each ends its login. ${PER_GATEWAY}`, registers });
  const issued = new Counter({ name: 'gatehouse_certificates_issued_total', help: `Client certificates issued for a CSR. ${PER_GATEWAY}`, registers });
  const revoked = new Counter({ name: 'gatehouse_certificates_revoked_total', help: `Client certificates revoked (by their owner, an admin, or with their login). ${PER_GATEWAY}`, registers });
  const decisions = new Counter({
    name: 'gatehouse_decisions_total',
    help: `Decisions recorded in the audit trail, by audit action (the closed list of the README's audit table) and outcome (allow, deny, error). ${PER_GATEWAY}`,
    labelNames: ['action', 'outcome'],
    registers,
  });
  for (const action of AUDIT_ACTION_NAMES) for (const outcome of ['allow', 'deny']) decisions.inc({ action, outcome }, 0);
  const refusals = new Counter({ name: 'gatehouse_quota_refusals_total', help: `Jobs refused by quota (at submission, or from the queue after a limit was lowered), by the limit that refused them. ${PER_GATEWAY}`, labelNames: ['limit'], registers });
  const pending = new Counter({ name: 'gatehouse_quota_pending_total', help: `Jobs queued as pending, by the limit they wait on (queue: behind the same user's earlier jobs). ${PER_GATEWAY}`, labelNames: ['limit'], registers });
  for (const limit of LIMITS) {
    if (limit !== 'queue') refusals.inc({ limit }, 0);
    pending.inc({ limit }, 0);
  }
  const finished = new Counter({ name: 'gatehouse_jobs_finished_total', help: `Jobs ended, by state (succeeded, failed, cancelled, refused: never started) and backend; counted by the gateway that recorded the end. ${PER_GATEWAY}`, labelNames: ['state', 'backend'], registers });
  const duration = new Histogram({
    name: 'gatehouse_job_duration_seconds',
    help: `How long jobs ran on their backend, from start to end, observed as they end. ${PER_GATEWAY}`,
    labelNames: ['backend'],
    buckets: [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400],
    registers,
  });
  const wait = new Histogram({
    name: 'gatehouse_job_queue_wait_seconds',
    help: `Time from submission to admission (0 for a job admitted at once), observed at admission. ${PER_GATEWAY}`,
    labelNames: ['backend'],
    buckets: [0, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400, 86400],
    registers,
  });

  return (event) => {
    const d = event.details ?? {};
    decisions.inc({ action: bounded(event.action, AUDIT_ACTION_NAMES), outcome: bounded(event.decision, DECISIONS) });
    const backend = () => bounded(d.backend, backends());
    switch (event.action) {
      case 'auth.login':
        logins.inc({ method: bounded(d.method, LOGIN_METHODS), outcome: 'success' });
        break;
      case 'auth.login_failed':
        logins.inc({ method: bounded(d.method, LOGIN_METHODS), outcome: event.reason === 'throttled' ? 'throttled' : 'failure' });
        break;
      case 'token.refresh':
        refreshes.inc({ outcome: event.decision === 'allow' ? 'success' : 'refused' });
        if (event.reason === 'reused') reuse.inc();
        break;
      case 'cert.issue':
        if (event.decision === 'allow') issued.inc();
        break;
      case 'cert.revoke':
        if (event.decision === 'allow') revoked.inc();
        break;
      case 'quota.reject':
        refusals.inc({ limit: bounded(d.limit, LIMITS) });
        break;
      case 'quota.pending':
        pending.inc({ limit: bounded(d.limit, LIMITS) });
        break;
      case 'job.submit':
        // Admitted at once (a pending job's submission says state: pending; its admission comes later).
        if (event.decision === 'allow' && d.state !== 'pending') wait.observe({ backend: backend() }, 0);
        break;
      case 'job.admit':
        if (typeof d.waited_s === 'number') wait.observe({ backend: backend() }, d.waited_s);
        break;
      case 'job.finish':
        finished.inc({ state: bounded(d.state, END_STATES), backend: backend() });
        if (typeof d.ran_s === 'number') duration.observe({ backend: backend() }, d.ran_s);
        break;
    }
  };
}
