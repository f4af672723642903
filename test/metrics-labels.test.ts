// The counters read off audit events keep their labels bounded whatever an event's details hold: a
// method, limit, state or backend outside its closed list counts as `other`, and nothing a person
// typed (an attempted username, a dataset, a job id) becomes a label. Each app's registry is its own.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AuditInput } from '../src/audit/index.js';
import { installEventMetrics } from '../src/gateway/metrics/events.js';

const actor = { user: 'mallory', groups: ['evil'], auth_method: 'ldap', ip: '10.0.0.9' };
const event = (o: Partial<AuditInput>): AuditInput => ({ actor, action: 'auth.login', object: 'login:x', decision: 'allow', reason: 'r', ...o });

async function counted(events: AuditInput[]): Promise<string> {
  const registry = new Registry();
  const count = installEventMetrics(registry, () => ['bundled']);
  for (const e of events) count(e);
  return registry.metrics();
}

describe('event counters', () => {
  it('count a value outside a closed list as other, never as itself', async () => {
    const text = await counted([
      event({ action: 'auth.login_failed', decision: 'deny', reason: 'invalid_credentials', details: { method: 'kerberos-mallory', attempted_user: 'mallory' } }),
      event({ action: 'quota.reject', decision: 'deny', details: { limit: 'max_cores_for_mallory', input: 'secret/payroll' } }),
      event({ action: 'job.finish', decision: 'error', object: 'job:j-123', details: { state: 'exploded', backend: 'mallory-cluster', ran_s: 3 } }),
      event({ action: 'job.admit', details: { backend: 'bundled', waited_s: 7 } }),
      event({ action: 'not.an.action' as AuditInput['action'], decision: 'maybe' as AuditInput['decision'] }),
    ]);
    expect(text).toContain('gatehouse_logins_total{method="other",outcome="failure"} 1');
    expect(text).toContain('gatehouse_quota_refusals_total{limit="other"} 1');
    expect(text).toContain('gatehouse_jobs_finished_total{state="other",backend="other"} 1');
    expect(text).toContain('gatehouse_job_duration_seconds_count{backend="other"} 1');
    expect(text).toContain('gatehouse_job_queue_wait_seconds_sum{backend="bundled"} 7');
    expect(text).toContain('gatehouse_decisions_total{action="other",outcome="other"} 1');
    for (const word of ['mallory', 'kerberos', 'payroll', 'j-123', 'exploded', 'evil', '10.0.0.9']) expect(text).not.toContain(word);
  });

  it('count a throttled login, a reused refresh token and certificates by what they were', async () => {
    const text = await counted([
      event({ action: 'auth.login_failed', decision: 'deny', reason: 'throttled', details: { method: 'ldap' } }),
      event({ action: 'token.refresh', decision: 'deny', reason: 'reused' }),
      event({ action: 'token.refresh', decision: 'allow', reason: 'refresh token rotated' }),
      event({ action: 'cert.issue', decision: 'allow' }),
      event({ action: 'cert.issue', decision: 'deny' }),
      event({ action: 'cert.revoke', decision: 'allow' }),
      event({ action: 'quota.pending', details: { limit: 'max_concurrent_jobs' } }),
    ]);
    expect(text).toContain('gatehouse_logins_total{method="ldap",outcome="throttled"} 1');
    expect(text).toContain('gatehouse_token_refreshes_total{outcome="refused"} 1');
    expect(text).toContain('gatehouse_token_refreshes_total{outcome="success"} 1');
    expect(text).toContain('gatehouse_token_reuse_detections_total 1');
    expect(text).toContain('gatehouse_certificates_issued_total 1');
    expect(text).toContain('gatehouse_certificates_revoked_total 1');
    expect(text).toContain('gatehouse_quota_pending_total{limit="max_concurrent_jobs"} 1');
    expect(text).toContain('gatehouse_decisions_total{action="cert.issue",outcome="deny"} 1');
  });

  it('keep two apps in one process apart', async () => {
    const a = new Registry();
    const b = new Registry();
    installEventMetrics(a, () => ['bundled'])(event({}));
    installEventMetrics(b, () => ['bundled']);
    expect(await a.metrics()).toContain('gatehouse_logins_total{method="other",outcome="success"} 1');
    expect(await b.metrics()).not.toMatch(/gatehouse_logins_total\{[^}]*\} 1$/m);
  });
});
