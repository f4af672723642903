// The trail in /metrics: events committed, batch sizes (group commit at work), how long a decision
// waits to be on record, refusals, the chain's head, the signed checkpoint's age, and whether it can
// be written at all (alert on gatehouse_audit_available == 0). Each gateway has its own chain, so
// every one of these is that gateway's own.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AuditInput, AuditTrail } from '../../audit/index.js';

export function installAuditMetrics(trail: AuditTrail, registry: Registry, counted: (event: AuditInput) => void): void {
  const events = new Counter({ name: 'gatehouse_audit_events_total', help: 'Audit events committed (fsync\'d) to this gateway\'s trail.', registers: [registry] });
  const batches = new Histogram({
    name: 'gatehouse_audit_commit_events',
    help: 'Events per group commit (one transaction, one fsync).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
    registers: [registry],
  });
  const append = new Histogram({
    name: 'gatehouse_audit_append_duration_seconds',
    help: 'From record() to the event being committed (fsync\'d): what every decision waits before it is answered.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
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
    help: 'The id of the newest event in this gateway\'s chain.',
    registers: [registry],
    collect() {
      this.set(trail.head().id);
    },
  });
  const newest = newestCheckpoint(trail);
  new Gauge({
    name: 'gatehouse_audit_checkpoint_timestamp_seconds',
    help: 'When the newest signed checkpoint was made (Unix time; 0 before the first). Its age is time() minus this.',
    registers: [registry],
    collect() {
      const last = newest();
      this.set(last === null ? 0 : Date.parse(last.time) / 1000);
    },
  });
  new Gauge({
    name: 'gatehouse_audit_unsigned_events',
    help: 'Events after the newest signed checkpoint (head id minus the checkpoint\'s).',
    registers: [registry],
    collect() {
      this.set(Math.max(0, trail.head().id - (newest()?.event_id ?? 0)));
    },
  });
  trail.onCommit = (n) => {
    events.inc(n);
    batches.observe(n);
  };
  trail.onRefused = () => refused.inc();
  trail.onRecorded = (event, seconds) => {
    append.observe(seconds);
    counted(event);
  };
}

/**
 * The newest checkpoint: the one this process signed, or before it signs one (a restart with no new
 * event signs none) the newest in the trail, read once, so an idle restarted gateway is not stale.
 */
function newestCheckpoint(trail: AuditTrail): () => { event_id: number; time: string } | null {
  let stored: { event_id: number; time: string } | null | undefined;
  return () => {
    const signed = trail.health().last_checkpoint;
    if (signed !== null) return signed;
    if (stored === undefined) {
      try {
        stored = (trail.reader().prepare('select event_id, time from audit_checkpoints order by event_id desc limit 1').get() as { event_id: number; time: string } | undefined) ?? null;
      } catch {
        return null; // asked again at the next scrape
      }
    }
    return stored;
  };
}
