// A JobBook (src/proxy/job-book.ts) as a gateway makes it, over a suite's own store, trail, policy and
// test backend: for suites that drive the job path's bookkeeping directly, one or several "gateways"
// over the same store.
import type { AuditTrail } from '../../src/audit/index.js';
import { AuditOutbox } from '../../src/audit/index.js';
import { type PolicySnapshot, policyAuthorizer } from '../../src/policy/index.js';
import { datasetLookup, JobBook, type JobRecords } from '../../src/proxy/index.js';
import { JobDatasets, policyLabelsOf, recordDatasetDecision } from '../../src/proxy/job-datasets.js';
import { AdmissionControl, UsageLedger } from '../../src/quota/index.js';
import { exclusive, type Store } from '../../src/store/index.js';
import type { TestBackend } from './test-backend.js';

/** What the book logs to (it hands the same to its outbox). */
type Log = ConstructorParameters<typeof JobBook>[0]['log'];

export function testJobBook(o: { store: Store; records: JobRecords; audit: AuditTrail; policy: PolicySnapshot; backend: TestBackend; log: Log; shared: boolean }): JobBook {
  const { policy, backend } = o;
  return new JobBook({
    records: o.records,
    admission: new AdmissionControl(new UsageLedger(), () => policy, 4),
    backends: [backend],
    audit: o.audit,
    outbox: new AuditOutbox(o.audit, o.log),
    datasets: new JobDatasets({ authorizer: policyAuthorizer(() => policy), policyLabels: policyLabelsOf(() => policy), catalog: () => datasetLookup(() => backend.datasets(), 1000), record: recordDatasetDecision(o.audit) }),
    log: o.log,
    statusCacheMs: 0,
    exclusive: exclusive(o.store),
    shared: o.shared,
  });
}
