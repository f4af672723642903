// Starts the gateway process: certificates, store, policy, the backends' connections, then the listener.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AuditTrail, loadAuditKey, witnessFileOf } from '../audit/index.js';
import { createIdentityService, ensureServiceCertificates } from '../auth/index.js';
import { checkGatewayFiles, type Config, durationSeconds, storePassword } from '../config/index.js';
import { httpsUrl } from '../http/index.js';
import { PolicyReloader } from '../policy/index.js';
import { closeBackends, createBackends } from '../proxy/index.js';
import { type GatewayRegistry, openStore, registerGateway } from '../store/index.js';
import { GatehouseError, readTlsMaterial } from '../wire/index.js';
import { buildGateway } from './app.js';
import type { ChainBook } from './audit-chains.js';

export interface RunningService {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * `ready`, under `gatehouse up`: resolves with the configuration read again once the engine and the
 * development provider listen (their ports were not known at the go). What needs neither (the
 * certificates, the store, the audit trail, the policy) is set up while they start; the backends,
 * the logins and the listener after. Run alone, the configuration is complete from the start.
 * `certificatesEnsured`: `up` has just made or checked the service certificates.
 */
export async function startGateway(first: Config, ready?: () => Promise<Config>, { certificatesEnsured = false } = {}): Promise<RunningService> {
  checkGatewayFiles(first);
  // Under `up`, which has made or checked them a moment before (reading the CA costs a few hundred ms of CPU at start).
  if (!certificatesEnsured) ensureServiceCertificates(first);
  const serverTls = readTlsMaterial(first.certs.dir, 'gateway');
  const clientTls = readTlsMaterial(first.certs.dir, 'gatewayClient');
  const password = storePassword(first);
  const store = await openStore({ stateDir: first.state.dir, url: first.store.url, ...(password !== undefined ? { password } : {}) });
  let config = first;
  const auditDir = config.audit.dir || join(config.state.dir, 'audit');
  const archiveDir = config.audit.archive_dir || join(auditDir, 'archive');
  // The trail's writer thread starts (on the other core) while the policy is linted and tested here.
  const [opened, loaded] = await Promise.allSettled([
    (async () => {
      // No trail, no gateway: nothing may be decided that cannot be recorded. Nor one that disagrees
      // with its own signed checkpoints or its witness: nothing is signed over a rewritten trail.
      const witnessFile = witnessFileOf(config.audit.witness_file, config.state.dir, auditDir);
      return AuditTrail.open({ dir: auditDir, key: loadAuditKey(config.certs.dir), checkpointMs: durationSeconds(config.audit.checkpoint_interval) * 1000, witnessFile, archiveDir });
    })(),
    // A bad policy stops start-up with every problem; once running, a bad edit is refused instead.
    PolicyReloader.start(config.policies.dir, { requireTests: config.policies.require_tests }),
  ]);
  if (opened.status === 'rejected' || loaded.status === 'rejected') {
    if (loaded.status === 'fulfilled') loaded.value.close();
    if (opened.status === 'fulfilled') await opened.value.close();
    await store.close();
    // The trail's problem first, as when they ran one after the other.
    throw opened.status === 'rejected' ? opened.reason : (loaded as PromiseRejectedResult).reason;
  }
  const audit: AuditTrail = opened.value;
  const policy: PolicyReloader = loaded.value;
  let identity: Awaited<ReturnType<typeof createIdentityService>> | undefined;
  let backends: ReturnType<typeof createBackends> | undefined;
  try {
    if (ready) config = await ready();
    // The configured backends (the bundled engine over mTLS with the gateway's client certificate;
    // Slurm's job records live in the store).
    backends = createBackends(config, clientTls, store);
    identity = await createIdentityService(config, store);
    let listeningUrl = config.server.public_url.replace(/\/$/, '');
    // Filled once this gateway listens and has registered where the others reach it.
    let registry: GatewayRegistry | undefined;
    const auditPeers = { self: '', ca: serverTls.ca.toString(), list: async () => (registry === undefined ? [] : registry.peers()) };
    const notYet = () => new GatehouseError('not_ready', 'this gateway has not registered with the store yet');
    const auditChains: ChainBook = {
      chains: async () => {
        if (registry === undefined) throw notYet();
        return registry.chains();
      },
      retire: async (name, by, reason) => {
        if (registry === undefined) throw notYet();
        return registry.retire(name, by, reason);
      },
    };
    const app = await buildGateway({
      tls: serverTls,
      clientCertificate: clientTls.cert,
      logLevel: config.log.level,
      bodyLimit: config.server.body_limit_bytes,
      store,
      policy,
      backends,
      jobs: { maxPendingPerUser: config.jobs.max_pending_per_user, pollMs: config.jobs.poll_ms, statusCacheMs: config.jobs.status_cache_ms },
      identity,
      publicUrl: () => listeningUrl,
      audit,
      auditRetention: { maxAgeMs: config.audit.retention ? durationSeconds(config.audit.retention) * 1000 : 0, archiveDir },
      auditPeers,
      auditChains,
      peerPolicyVersions: async () => (registry === undefined ? [] : registry.policyVersions()),
    });
    await app.listen({ host: config.server.host, port: config.server.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.server.port;
    const url = httpsUrl(config.server.host, port);
    if (listeningUrl === '') listeningUrl = url;
    const peerUrl = config.server.peer_url !== '' ? config.server.peer_url.replace(/\/$/, '') : peerUrlOf(config.server.host, port);
    auditPeers.self = new URL(peerUrl).host;
    registry = await registerGateway(store, {
      name: auditPeers.self,
      url: peerUrl,
      chainId: audit.chainId(),
      log: app.log,
      policyVersion: () => policy.current().version,
      // Our chain had been retired (we were stopped, killed or frozen): that it counts again is in our trail, with the retirement it undoes.
      onResumed: async ({ name, retired }) => {
        await audit.record({
          actor: { user: null, groups: [], auth_method: 'system', ip: null },
          action: 'audit.chain_resumed',
          object: 'audit:chains',
          decision: 'allow',
          reason: `gateway ${name} runs again: its chain, retired by ${retired.by} at ${retired.at}, counts again in merged answers`,
          details: { gateway: name, retired_at: retired.at, retired_by: retired.by, retired_reason: retired.reason },
        });
        app.log.warn({ gateway: name, retired_by: retired.by, retired_at: retired.at }, "this gateway's audit chain had been retired; it counts again (audit.chain_resumed)");
      },
    });
    app.log.info({ port, store: store.location, instance: store.instanceId, policy_version: policy.current().version, login: identity.methods }, 'gateway listening');
    return {
      url,
      port,
      close: async () => {
        policy.close();
        await registry?.close();
        await app.close();
        identity?.close();
        if (backends) closeBackends(backends);
        await audit.close(); // after the last request: its events are committed and the tail signed
        await store.close();
      },
    };
  } catch (err) {
    policy.close();
    identity?.close();
    if (backends) closeBackends(backends);
    await audit.close();
    await store.close();
    throw err;
  }
}

/** Where other gateways reach this one by default: its listening address, or this machine's name when it listens on every address. */
function peerUrlOf(host: string, port: number): string {
  return host === '0.0.0.0' || host === '::' ? `https://${hostname()}:${port}` : httpsUrl(host, port);
}
