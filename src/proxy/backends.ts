// The backends of one gateway, built from configuration, and what the rest of the gateway asks of
// them as a list: the datasets (each from its own backend), a dataset's labels for explain, and one
// readiness line per backend. To add a backend kind, implement ComputeBackend (backend.ts) and build
// it here from its configuration section; nothing outside src/proxy names a concrete backend.
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { type Config, durationSeconds } from '../config/index.js';
import type { Store } from '../store/index.js';
import { PACKAGE_ROOT } from '../version.js';
import type { DatasetInfo, TlsMaterial } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';
import { bundledBackend } from './bundled-backend.js';
import { engineClient } from './engine-client.js';
import { gatewayReads, resolveGatewayReads } from './gateway-reads.js';
import { createSlurmClient } from './slurm/client.js';
import { slurmBackend } from './slurm/slurm-backend.js';
import { createSlurmTokenMinter } from './slurm/token.js';

/**
 * The configured backends, the default (a job spec without `backend`) first: the bundled engine
 * at engine.host:engine.port, over mTLS with the gateway's client certificate (`tls`), whose key
 * also signs the admission tickets the engine checks; then Slurm when slurm.url is set (first when
 * slurm.default is true), keeping its job records in `store`. The bundled engine's partitions are
 * read by the gateway itself when data.gateway_reads says so (gateway-reads.ts).
 */
export function createBackends(config: Pick<Config, 'engine' | 'slurm' | 'data' | 'state'>, tls: TlsMaterial, store: Store): ComputeBackend[] {
  const engine = engineClient({ host: config.engine.host, port: config.engine.port, tls });
  const bundled = bundledBackend(engine, createPrivateKey(tls.key));
  // A partition is read by the gateway itself when it shares the engine's disk (data.gateway_reads).
  const reads = resolveGatewayReads(config.data.gateway_reads, config.engine.host, config.data.root);
  const backends: ComputeBackend[] = [{ ...bundled, ...gatewayReads(reads, config.data.root, { readDataset: bundled.readDataset!, readPartition: bundled.readPartition! }) }];
  const { slurm } = config;
  if (slurm.url === '') return backends;
  const minter = createSlurmTokenMinter({ keyFile: slurm.jwt_key_file, ttlSeconds: durationSeconds(slurm.token_ttl) });
  const client = createSlurmClient({ url: slurm.url, apiVersion: slurm.api_version, timeoutMs: slurm.timeout_ms, minter, accountUids: { min: slurm.min_uid, max: slurm.max_uid } });
  const onSlurm = slurmBackend({
    client,
    url: slurm.url,
    dataRoot: config.data.root,
    jobsDir: slurm.jobs_dir !== '' ? slurm.jobs_dir : join(config.state.dir, 'slurm-jobs'),
    store,
    legacyDir: join(config.state.dir, 'slurm'),
    partition: slurm.partition,
    account: slurm.account,
    statusUser: slurm.status_user,
    // A built checkout on every node, this one's path unless configured (see the README's Slurm section).
    taskCommand: [slurm.node !== '' ? slurm.node : process.execPath, join(slurm.install_dir !== '' ? slurm.install_dir : PACKAGE_ROOT, 'bin', 'gatehouse-task.js')],
    python: config.engine.python,
  });
  return slurm.default ? [onSlurm, ...backends] : [...backends, onSlurm];
}

/** A dataset as GET /v1/datasets lists it: with its backend's name when there is more than one backend. */
export type ListedDataset = DatasetInfo & { backend?: string };

/**
 * Every backend's datasets: one backend's as it lists them (the response of a gateway with one
 * backend is unchanged), several backends' one after the other, each entry naming its backend.
 * A backend that cannot answer fails the listing (nothing is shown as if it were complete).
 */
export async function listDatasets(backends: readonly ComputeBackend[]): Promise<ListedDataset[]> {
  if (backends.length === 1) return backends[0]!.datasets();
  const lists = await Promise.all(backends.map(async (b) => (await b.datasets()).map((d) => ({ ...d, backend: b.name }))));
  return lists.flat();
}

/**
 * The labels a dataset's manifests give it on every backend that has one by that name (their
 * union: explain shows the decision as strict as any backend would make it); null when none has.
 */
export function datasetLabelsIn(backends: readonly ComputeBackend[]): (name: string) => Promise<string[] | null> {
  return async (name) => {
    const found = (await Promise.all(backends.map(async (b) => (await b.datasets()).find((d) => d.name === name)))).filter((d) => d !== undefined);
    if (found.length <= 1) return found[0]?.labels ?? null;
    return [...new Set(found.flatMap((d) => d.labels))].sort();
  };
}

/**
 * One readiness line per backend, under the name each gives itself. The default backend (the first)
 * not answering makes the gateway not ready; another one shows as unavailable and the gateway stays
 * ready: logins, the audit trail and the default backend's jobs go on while, say, Slurm is down (its
 * jobs wait or are refused with 503 until it answers).
 */
export function backendReadiness(backends: readonly ComputeBackend[]): Record<string, () => Promise<string>> {
  return Object.fromEntries(
    backends.map((b, i) => [b.readinessCheck, i === 0 ? () => b.readiness() : () => b.readiness().catch((err: Error) => `unavailable: ${err.message}`)]),
  );
}

/** Closes every backend's connections. */
export function closeBackends(backends: readonly ComputeBackend[]): void {
  for (const b of backends) b.close();
}
