// Assembles the job path of one gateway: records, ledger and queues rebuilt from them, the backends,
// the service the routes call and the reconciler that keeps the ledger true.
import type { AuditRecorder } from '../audit/index.js';
import type { PolicySnapshot } from '../policy/index.js';
import { AdmissionControl, UsageLedger } from '../quota/index.js';
import type { Store } from '../store/index.js';
import type { ComputeBackend } from './backend.js';
import { datasetLookup } from './dataset-lookup.js';
import { JobBook, type Logger } from './job-book.js';
import { JobRecords } from './job-records.js';
import { JobService } from './job-service.js';
import { Reconciler } from './reconciler.js';

/** How long a catalog listing serves label lookups. */
const CATALOG_TTL_MS = 1000;
/** Between reconcile passes when no job is live (orphans, the rolling day). */
const IDLE_PASS_MS = 5000;

export interface JobPathOptions {
  store: Store;
  policy: () => PolicySnapshot;
  backends: ComputeBackend[];
  audit: AuditRecorder;
  log: Logger;
  maxPendingPerUser: number;
  pollMs: number;
  statusCacheMs: number;
}

export interface JobPath {
  service: JobService;
  book: JobBook;
  reconciler: Reconciler;
  stop(): Promise<void>;
}

export async function openJobPath(o: JobPathOptions): Promise<JobPath> {
  const records = await JobRecords.open(o.store);
  const admission = new AdmissionControl(new UsageLedger(), o.policy, o.maxPendingPerUser);
  const backends = new Map(o.backends.map((b) => [b.name, b]));
  const book = new JobBook({ records, admission, backends, audit: o.audit, log: o.log, statusCacheMs: o.statusCacheMs });
  await book.restore();
  const first = o.backends[0]!;
  const service = new JobService({ book, policy: o.policy, dataset: datasetLookup(() => first.datasets(), CATALOG_TTL_MS), defaultBackend: first.name });
  book.recheck = (r) => service.recheck(r);
  const reconciler = new Reconciler(book, { busyMs: o.pollMs, idleMs: IDLE_PASS_MS });
  reconciler.start();
  return { service, book, reconciler, stop: () => reconciler.stop() };
}
