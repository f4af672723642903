// The trail in /metrics: events committed, batch sizes (group commit at work), refusals, and
// whether it can be written at all (alert on gatehouse_audit_available == 0).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AuditTrail } from '../audit/index.js';

export function installAuditMetrics(trail: AuditTrail, registry: Registry): void {
  const events = new Counter({ name: 'gatehouse_audit_events_total', help: 'Audit events committed (fsync\'d) to the trail.', registers: [registry] });
  const batches = new Histogram({
    name: 'gatehouse_audit_commit_events',
    help: 'Events per group commit (one transaction, one fsync).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
    registers: [registry],
  });
  const refused = new Counter({ name: 'gatehouse_audit_refused_total', help: 'Decisions refused with 503 audit_unavailable because the trail could not be written.', registers: [registry] });
  new Gauge({
    name: 'gatehouse_audit_available',
    help: '1 while the trail can be written; 0 while every decision that needs it is refused.',
    registers: [registry],
    collect() {
      this.set(trail.health().available ? 1 : 0);
    },
  });
  new Gauge({
    name: 'gatehouse_audit_head_id',
    help: 'The id of the newest event in the trail.',
    registers: [registry],
    collect() {
      this.set(trail.head().id);
    },
  });
  trail.onCommit = (n) => {
    events.inc(n);
    batches.observe(n);
  };
  trail.onRefused = () => refused.inc();
}
