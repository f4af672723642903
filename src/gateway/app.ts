// The gateway, composed in pipeline order: reading this file is reading the road a request walks.
import cookie from '@fastify/cookie';
import Fastify, { type FastifyInstance } from 'fastify';
import { type AuditPeers, type AuditTrail, admissionOnTrail, installAuditRoutes, jobEvents, unendedSubmissions } from '../audit/index.js';
import type { IdentityService } from '../auth/index.js';
import { installConsole } from '../console/index.js';
import { installPlumbing, loggerOptions, serverOptions } from '../http/index.js';
import { installAuthorization, installPolicyRoutes, policyAuthorizer, type PolicyReloader, PolicyVersions, requireDeclaredAccess } from '../policy/index.js';
import { backendReadiness, type ComputeBackend, datasetLabelsIn, installDatasetDeleteRoute, installDatasetReadRoutes, installDatasetUploadRoutes, installDatasetRoutes, installJobRoutes, listDatasets, openJobPath } from '../proxy/index.js';
import type { Store } from '../store/index.js';
import type { TlsMaterial } from '../wire/index.js';
import { type ChainBook, installChainRoutes } from './audit-chains.js';
import { startRetention } from './audit-retention.js';
import { installComputeViews } from './compute-views.js';
import { installHealth } from './health.js';
import { installLineageRoute } from './lineage.js';
import { installMetrics } from './metrics/index.js';
import { installOpenApi } from './openapi.js';

export interface GatewayDeps {
  tls: TlsMaterial;
  /** The client certificate the gateway presents to the engine (PEM): its expiry is in /metrics. */
  clientCertificate?: string;
  logLevel: string;
  bodyLimit: number;
  store: Store;
  /** The serving policy version, kept current from policies/. */
  policy: PolicyReloader;
  /** Where approved jobs go (src/proxy's createBackends); the first is the default. Datasets, their labels and readiness come from them too. */
  backends: ComputeBackend[];
  jobs: { maxPendingPerUser: number; pollMs: number; statusCacheMs: number };
  identity: IdentityService;
  /** Where browsers and the IdP reach the gateway (known once it listens). */
  publicUrl: () => string;
  /** The hash-chained trail every decision is recorded in before it is answered. */
  audit: AuditTrail;
  /** Retention: events older than this (ms; 0 keeps them) go to archiveDir, then leave the trail. */
  auditRetention: { maxAgeMs: number; archiveDir: string };
  /** The other gateways over a shared store, whose trails the audit routes ask too (known once this one listens). */
  auditPeers?: AuditPeers;
  /** Every gateway's chain over the store, and retiring a gone one's (GET /v1/audit/chains). */
  auditChains?: ChainBook;
  /** The policy version each other gateway over the store serves (for /readyz). */
  peerPolicyVersions?: () => Promise<{ name: string; version: string | null }[]>;
}

export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...serverOptions(),
    logger: loggerOptions('gateway', deps.logLevel),
    bodyLimit: deps.bodyLimit,
    // A client certificate is asked for but optional: people without one use tokens; one that is
    // presented but not ours is refused by stage 1, not by the handshake, so the refusal is audited.
    https: { ...deps.tls, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false },
  });
  const audit = deps.audit;
  audit.attachLog(app.log);

  installPlumbing(app); // request ids, one log line a request, error bodies, schemas required
  requireDeclaredAccess(app); // and each route declares public: true or what it needs, or start-up fails
  await installOpenApi(app); // before any route, so it sees them all
  // /metrics: request durations, and counters from every recorded decision, jobs, the trail, certificates, the engine's
  const metrics = installMetrics(app, { audit, store: deps.store, backends: deps.backends, certificates: { gateway: deps.tls.cert, ca: deps.tls.ca, ...(deps.clientCertificate !== undefined ? { gateway_client: deps.clientCertificate } : {}) } });

  await app.register(cookie); // the browser session (src/auth)

  // The pipeline, each stage from its own room. Who may do what is asked of one Authorizer, the
  // serving policy version (src/policy), and every answer is recorded through src/audit.
  const authorizer = metrics.timed(policyAuthorizer(() => deps.policy.current()));
  //   1 authenticate (src/auth): every route unless marked public; login, token and certificate routes
  deps.identity.install(app, { audit, authorizer, publicUrl: deps.publicUrl, extraJwks: () => audit.publicJwks }); // the audit keys, current and retired
  //   2 authorize (src/policy): before each handler, the need its route declares is decided and
  //     recorded (403, or 404 where declared); what depends on the body or on each item of an
  //     answer is decided by the handler through the same port and recording. The policy API itself.
  installAuthorization(app, { authorizer, audit });
  // Every version's text is kept in the store before it serves (this one now, each reload before
  // its swap): the lineage of a decision shows its rule as that version had it.
  const versions = new PolicyVersions(deps.store);
  await versions.remember(deps.policy.current());
  installPolicyRoutes(app, {
    versions,
    reloader: deps.policy,
    audit,
    registry: metrics.registry,
    knownGroups: (user) => deps.identity.knownGroups(user),
    datasetLabels: datasetLabelsIn(deps.backends),
  });
  //   3 admit (src/quota) → 4 dispatch (src/proxy): the backends' datasets, filtered by policy;
  //     jobs authorized on their datasets (on their own backend's catalog), admitted within quota
  //     or pending, handed to their backend
  installDatasetRoutes(app, { datasets: () => listDatasets(deps.backends), authorizer, audit, policy: () => deps.policy.current() });
  //     one dataset read (its manifest, a partition's bytes or first rows), decided like a job's input
  installDatasetReadRoutes(app, { backends: deps.backends, authorizer, audit });
  const jobs = await openJobPath({ store: deps.store, policy: () => deps.policy.current(), authorizer, backends: deps.backends, audit, log: app.log, personNow: deps.identity.personNow, loginNow: deps.identity.loginNow, unended: () => unendedSubmissions(audit.reader()), admittedOnTrail: (id, since, user) => admissionOnTrail(audit.reader(), id, Date.parse(since), user), endsOwedTo: { chain: audit.chainId(), actions: (id) => jobEvents(audit.reader(), id).map((e) => e.action) }, ...deps.jobs });
  app.addHook('onClose', () => jobs.stop());
  installJobRoutes(app, jobs.service);
  //     removing a dataset: its owner's or an admin's, never while a live job uses it
  installDatasetDeleteRoute(app, { backends: deps.backends, authorizer, audit, liveJobs: () => jobs.liveJobs() });
  //     uploading: into a namespace the caller may write, within max_storage_mb, committed in one rename
  installDatasetUploadRoutes(app, { backends: deps.backends, authorizer, audit, policy: () => deps.policy.current() });
  //     IT's view: everyone's usage against their limits, the backends' slots, the pending queue
  installComputeViews(app, { jobs, backends: deps.backends, store: deps.store, authorizer, audit });
  //   5 audit (src/audit): each decision above was recorded (fsync'd) before its answer; auditors
  //     query, export and verify the trail, and each of those asks is recorded too
  installAuditRoutes(app, {
    reader: () => audit.reader(),
    verify: () => audit.verify(),
    ...(deps.auditPeers !== undefined ? { peers: deps.auditPeers } : {}),
  });
  installLineageRoute(app, { audit, versions }); // a job's inputs → job → output, with each rule as it was
  if (deps.auditChains !== undefined) installChainRoutes(app, deps.auditChains, { authorizer, audit });
  //   the web console: the same API underneath, its pages and buttons shown as the serving policy allows
  installConsole(app, { authorizer });
  const retention = startRetention(audit, deps.auditRetention, app.log);
  app.addHook('onClose', () => retention.stop());

  installHealth(app, {
    store: async () => {
      await deps.store.ping();
      return 'ok';
    },
    policy: async () => {
      const last = deps.policy.lastOutcome();
      const version = deps.policy.current().version;
      const serving = `ok (version ${version})`;
      // Still ready: the previous version serves. The refusal shows here, in /metrics and in GET /v1/policy.
      const refused = last.outcome === 'failed' ? `; latest edit refused (${last.problems.length} problem(s))` : '';
      // Still ready too while gateways over one store disagree (a deploy reaches them one by one), but said.
      const others = (await deps.peerPolicyVersions?.().catch(() => [])) ?? [];
      const differ = others.filter((o) => o.version !== version);
      const disagree = differ.length > 0 ? `; other gateways serve another version: ${differ.map((o) => `${o.name} ${o.version ?? 'unknown'}`).join(', ')}` : '';
      return `${serving}${refused}${disagree}`;
    },
    audit: async () => {
      const h = audit.health();
      if (!h.available) throw new Error(`the trail cannot be written since ${h.since} (${h.reason}); ${h.refused} decision(s) refused`);
      return `ok (#${h.head.id}${h.last_checkpoint ? `, signed to #${h.last_checkpoint.event_id}` : ''})${h.warning ? '; warning: witness on the same device as audit.dir (see the log)' : ''}`;
    },
    job_path: async () => jobs.role(),
    ...backendReadiness(deps.backends), // one line per backend (`engine` for the bundled one)
  });
  return app;
}
