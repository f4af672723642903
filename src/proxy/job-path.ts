// Assembles the job path of one gateway: records, ledger and queues rebuilt from them, the backends
// (each with its own catalog for authorization), the dataset decisions, the book of live jobs, the
// service the routes call and the reconciler that keeps the ledger true. Each piece gets what it
// needs through its constructor.
import { type AuditEvent, AuditOutbox, type AuditRecorder, type TrailAdmission } from '../audit/index.js';
import type { Authorizer, LoginLookup, PersonLookup } from '../identity/index.js';
import type { PolicySnapshot } from '../policy/index.js';
import { AdmissionControl, UsageLedger } from '../quota/index.js';
import { exclusive, openLeadership, type Store } from '../store/index.js';
import type { ComputeBackend } from './backend.js';
import { type DatasetLookup, datasetLookup } from './dataset-lookup.js';
import { JobBook, type Logger } from './job-book.js';
import { JobDatasets, policyLabelsOf, recordDatasetDecision } from './job-datasets.js';
import { JobRecords } from './job-records.js';
import { JobService } from './job-service.js';
import { LostSubmissions } from './lost-submissions.js';
import { Reconciler } from './reconciler.js';

/** How long a catalog listing serves label lookups. */
const CATALOG_TTL_MS = 1000;
/** Between reconcile passes when no job is live (orphans, the rolling day). */
const IDLE_PASS_MS = 5000;

export interface JobPathOptions {
  store: Store;
  /** The serving policy: quotas, the labels its g2 lines give, versions. */
  policy: () => PolicySnapshot;
  /** Decides on the serving policy (the job's datasets, other people's jobs). */
  authorizer: Authorizer;
  /** The configured backends; the first is the default. */
  backends: readonly ComputeBackend[];
  audit: AuditRecorder;
  log: Logger;
  maxPendingPerUser: number;
  pollMs: number;
  statusCacheMs: number;
  /** Who a job's owner is now, asked as the job leaves the queue (JobBookOptions.personNow). */
  personNow?: PersonLookup;
  /** Whether the login a job was submitted under still stands (JobBookOptions.loginNow). */
  loginNow?: LoginLookup;
  /** This gateway's admitted submissions its trail never mentions again (lost-submissions.ts), read once at start-up. */
  unended?: () => AuditEvent[];
  /** Whether this gateway's trail holds a job's admission (JobBookOptions.admittedOnTrail), asked at start-up. */
  admittedOnTrail?: (id: string, since: string, user: string) => TrailAdmission;
  /** This gateway's trail, for the ends it owes events to (JobBookOptions.endsOwedTo). */
  endsOwedTo?: { chain: string; actions: (id: string) => string[] };
}

export interface JobPath {
  service: JobService;
  book: JobBook;
  reconciler: Reconciler;
  /** Jobs not yet ended and the datasets they read and write (no dataset they use is removed). */
  liveJobs(): Promise<{ id: string; input: string; output: string }[]>;
  /** `leader`, or `follower` while another gateway over the store reconciles: /readyz's job_path line. */
  role(): string;
  stop(): Promise<void>;
}

export async function openJobPath(o: JobPathOptions): Promise<JobPath> {
  if (o.backends.length === 0) throw new Error('no compute backend is configured');
  const records = await JobRecords.open(o.store);
  const admission = new AdmissionControl(new UsageLedger(), o.policy, o.maxPendingPerUser);
  // Each backend's own catalog: a job's datasets are decided on the labels of the backend it runs on.
  const catalogs = new Map<string, DatasetLookup>(o.backends.map((b) => [b.name, datasetLookup(() => b.datasets(), CATALOG_TTL_MS, b.dataset === undefined ? undefined : (name) => b.dataset!(name))]));
  const datasets = new JobDatasets({
    authorizer: o.authorizer,
    policyLabels: policyLabelsOf(o.policy),
    catalog: (name) => {
      const lookup = catalogs.get(name);
      if (lookup === undefined) throw new Error(`backend ${name} is not configured`);
      return lookup;
    },
    record: recordDatasetDecision(o.audit),
  });
  const outbox = new AuditOutbox(o.audit, o.log);
  const book = new JobBook({ records, admission, backends: o.backends, audit: o.audit, outbox, datasets, log: o.log, statusCacheMs: o.statusCacheMs, exclusive: exclusive(o.store), shared: o.store.dialect === 'postgres', ...(o.personNow !== undefined ? { personNow: o.personNow } : {}), ...(o.loginNow !== undefined ? { loginNow: o.loginNow } : {}), ...(o.admittedOnTrail !== undefined ? { admittedOnTrail: o.admittedOnTrail } : {}), ...(o.endsOwedTo !== undefined ? { endsOwedTo: o.endsOwedTo } : {}) });
  await book.restore();
  const service = new JobService({ book, datasets, authorizer: o.authorizer, audit: o.audit, policy: o.policy });
  // Of several gateways over one store, one reconciles and sweeps orphans (every gateway serves
  // requests, and ends what it sees end); it moves to another within seconds when its process dies.
  const leadership = openLeadership(o.store, { name: 'job-path', log: o.log });
  const reconciler = new Reconciler(book, { busyMs: o.pollMs, idleMs: IDLE_PASS_MS, log: o.log, isLeader: () => leadership.isLeader() });
  leadership.onChange((leader) => {
    if (leader) void reconciler.pass().catch((err: Error) => o.log.error({ err: err.message }, 'reconcile pass failed'));
  });
  // Read before this gateway admits anything, so each one was made by a gateway that has stopped.
  const lost = new LostSubmissions({
    unended: o.unended?.() ?? [],
    recorded: async (id) => (await records.get(id)) !== undefined,
    backend: (name) => (book.hasBackend(name) ? book.backend(name) : undefined),
    claimEnd: (id) => book.claimUnrecordedEnd(id),
    outbox,
    log: o.log,
  });
  lost.start(IDLE_PASS_MS);
  reconciler.start();
  // Backends that push job changes (the bundled engine) are heard at once; polling stays the safety net.
  const watches = o.backends.flatMap((b) =>
    b.watch === undefined
      ? []
      : [
          b.watch({
            onStatus: (status) => book.observePushed(b.name, status),
            onGap: () => {
              book.forgetStatuses();
              void reconciler.pass().catch((err: Error) => o.log.error({ err: err.message }, 'reconcile pass failed'));
            },
            log: o.log,
          }),
        ],
  );
  return {
    service,
    book,
    reconciler,
    liveJobs: async () => (await records.live()).map((r) => ({ id: r.id, input: r.spec.input, output: r.spec.output })),
    role: () => (leadership.isLeader() ? 'leader' : 'follower (another gateway over the store reconciles jobs)'),
    stop: async () => {
      await lost.stop();
      await Promise.all(watches.map((w) => w.close()));
      await reconciler.stop();
      await leadership.close();
      await book.flushEnds();
      outbox.close();
    },
  };
}
