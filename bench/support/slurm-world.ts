// What the Slurm benchmarks share: a private cluster, the gateway in this process over HTTPS with
// slurm.* set (the real Slurm backend behind it, the engine never started), the bench user logged
// in with a POSIX account, and the input datasets. Built once for every benchmark that asks.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createIdentityService } from '../../src/auth/index.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { loadConfig } from '../../src/config/index.js';
import { type RunningService, startGateway } from '../../src/gateway/index.js';
import { createSlurmClient, type SlurmClient } from '../../src/proxy/slurm/client.js';
import { createSlurmTokenMinter } from '../../src/proxy/slurm/token.js';
import { openStore } from '../../src/store/index.js';
import { FINAL_STATES, type JobSpec, type JobStatus } from '../../src/wire/index.js';
import { until } from '../../test/support/until.js';
import { gatewayCall, unboundedBenchPolicies } from './gateway-calls.js';
import { type BenchCluster, startBenchCluster } from './slurm-cluster.js';

/** 1 partition: what the latency figures submit. */
export const ONE = 'scratch/slurm-one';
/** MANY partitions of ROWS rows: the array's wall time (16, not 32: each task's runner costs about a CPU-second). */
export const MANY = 'scratch/slurm-many';
export const MANY_PARTITIONS = 16;
const ROWS = 200;
/**
 * Between two looks at whether a job ended, on both sides alike: the gateway's own jobs.poll_ms. A
 * faster look costs slurmrestd and slurmctld CPU that the tasks of the job being timed are short of
 * on a 2-core machine (the gateway's reconciler asks Slurm at this pace whatever its clients do).
 */
export const POLL_MS = 250;
const JOB_TIMEOUT_MS = 120_000;

export interface SlurmWorld {
  dir: string;
  cluster: BenchCluster;
  gateway: RunningService;
  agent: Agent;
  token: string;
  dataRoot: string;
  jobsDir: string;
  python: string;
  /** The project's slurmrestd client, as the person: how the baseline's end is seen (as the backend sees it). */
  slurm: SlurmClient;
  /** A counter for output names, job folders and markers. */
  next(): number;
}

let world: Promise<SlurmWorld> | null = null;
let users = 0;

export function useWorld(): Promise<SlurmWorld> {
  users++;
  world ??= build();
  return world;
}

export async function releaseWorld(): Promise<void> {
  if (world === null || --users > 0) return;
  const pending = world;
  world = null;
  const w = await pending.catch(() => null);
  if (w === null) return;
  w.agent.destroy();
  await w.gateway.close();
  await w.cluster.stop();
  rmSync(w.dir, { recursive: true, force: true });
}

async function build(): Promise<SlurmWorld> {
  const cluster = await startBenchCluster();
  try {
    return await gatewayOn(cluster);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function gatewayOn(cluster: BenchCluster): Promise<SlurmWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-slurm-gw-'));
  chmodSync(dir, 0o700); // data.root stays the gateway's: the tasks read the copy staged in their folder
  const policies = unboundedBenchPolicies(dir);
  const jobsDir = join(cluster.workDir, 'jobs');
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(
    configFile,
    stringify({
      server: { port: 0 },
      data: { root: 'data' },
      state: { dir: 'var' },
      certs: { dir: 'certs' },
      policies: { dir: policies },
      log: { level: 'silent' },
      // jobs.poll_ms and jobs.status_cache_ms stay at their defaults (250, 500): what a deployment sees.
      slurm: { url: cluster.restUrl, api_version: cluster.apiVersion, jwt_key_file: cluster.jwtKeyFile, partition: cluster.partition, jobs_dir: jobsDir, min_uid: cluster.user.uid },
    }),
  );
  const dataRoot = join(dir, 'data');
  const csv = (from: number) => `id,word\n${Array.from({ length: ROWS }, (_, i) => `${from + i},w${from + i}`).join('\n')}\n`;
  await writeDataset(dataRoot, ONE, { format: 'csv', columns: ['id', 'word'], owner: 'bench', labels: [], produced_by: 'bench', partitions: [{ text: csv(0), rows: ROWS }] });
  await writeDataset(dataRoot, MANY, { format: 'csv', columns: ['id', 'word'], owner: 'bench', labels: [], produced_by: 'bench', partitions: Array.from({ length: MANY_PARTITIONS }, (_, p) => ({ text: csv(p * ROWS), rows: ROWS })) });
  const { config } = loadConfig({ path: configFile, cwd: dir, env: {} });
  const gateway = await startGateway(config);
  try {
    // A login as the gateway issues it (same store and keys), naming the account jobs run as.
    const store = await openStore({ stateDir: config.state.dir });
    const identity = await createIdentityService(config, store);
    const token = (await identity.tokens.login({ user: 'bench', groups: ['analysts'], auth_method: 'ldap', posix_user: cluster.user.name })).access_token;
    identity.close();
    await store.close();
    const minter = createSlurmTokenMinter({ keyFile: cluster.jwtKeyFile, ttlSeconds: 300 });
    let n = 0;
    return {
      dir,
      cluster,
      gateway,
      agent: new Agent({ keepAlive: true, maxSockets: 4, ca: readFileSync(join(config.certs.dir, 'ca.crt'), 'utf8') }),
      token,
      dataRoot,
      jobsDir,
      python: config.engine.python,
      slurm: createSlurmClient({ url: cluster.restUrl, apiVersion: cluster.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: cluster.user.uid } }),
      next: () => ++n,
    };
  } catch (err) {
    await gateway.close();
    throw err;
  }
}

function call(w: SlurmWorld, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return gatewayCall({ url: w.gateway.url, agent: w.agent, token: w.token }, method, path, body);
}

/** POST /v1/jobs; the gateway's job id. */
export async function gatewaySubmit(w: SlurmWorld, spec: JobSpec): Promise<string> {
  const answer = await call(w, 'POST', '/v1/jobs', spec);
  if (answer.status !== 201) throw new Error(`POST /v1/jobs answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  return (JSON.parse(answer.text) as { id: string }).id;
}

/** Polls GET /v1/jobs/:id as the person would, until the job is final; fails unless it succeeded. */
export async function gatewayFinished(w: SlurmWorld, id: string): Promise<JobStatus> {
  const status = await until(
    async () => {
      const answer = await call(w, 'GET', `/v1/jobs/${id}`);
      if (answer.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      const s = JSON.parse(answer.text) as JobStatus;
      return FINAL_STATES.includes(s.state) ? s : undefined;
    },
    JOB_TIMEOUT_MS,
    `gateway job ${id} final`,
    POLL_MS,
  );
  if (status.state !== 'succeeded') throw new Error(`gateway job ${id} ${status.state}: ${status.error}`);
  return status;
}

/**
 * Removes a finished job's committed output from data.root, so every submission meets the same
 * catalog (the two inputs): the gateway reads the whole listing for a submission once its 1 s cache
 * has expired, as it has at nearly every submission here, and that grows with each dataset left.
 */
export async function dropOutput(w: SlurmWorld, output: string): Promise<void> {
  await rm(join(w.dataRoot, output), { recursive: true, force: true });
}
