// Decision latency: the Authorizer every room asks, wrapped so each answer is timed on its way out.
// Only the policy's evaluation (no I/O); recording the decision is gatehouse_audit_append_duration_seconds.
import { Histogram, type Registry } from 'prom-client';
import type { Authorizer } from '../../identity/index.js';

export function timedAuthorizer(registry: Registry): (authorizer: Authorizer) => Authorizer {
  const seconds = new Histogram({
    name: 'gatehouse_decision_duration_seconds',
    help: 'Time the serving policy took to decide one authorization question (a request, a dataset of a listing, a job\'s input or output).',
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [registry],
  });
  return (authorizer) => ({
    decide: (subject, object, action, options) => {
      const started = performance.now();
      try {
        return authorizer.decide(subject, object, action, options);
      } finally {
        seconds.observe((performance.now() - started) / 1000);
      }
    },
    version: () => authorizer.version(),
  });
}
