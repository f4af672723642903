// The Slurm ComputeBackend against a real private cluster (test/support/slurm.ts), below the gateway:
// a job's array runs gatehouse-task on each partition as the person's account, its output is
// committed into data.root by the backend with owner, labels and produced_by, and its status, logs,
// cancel and failures read back through the same verbs the gateway uses for the engine.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { ComputeBackend } from '../src/proxy/index.js';
import { createSlurmClient } from '../src/proxy/slurm/client.js';
import { slurmBackend } from '../src/proxy/slurm/slurm-backend.js';
import { createSlurmTokenMinter } from '../src/proxy/slurm/token.js';
import type { Store } from '../src/store/index.js';
import type { JobSpec, JobStatus } from '../src/wire/index.js';
import { type SlurmCluster, slurmTaskRuntime, startSlurm } from './support/slurm.js';
import { openTestStore } from './support/test-store.js';
import { until } from './support/until.js';

let slurm: SlurmCluster;
let backend: ComputeBackend;
let home: string;
let dataRoot: string;
let store: Store;

beforeAll(async () => {
  slurm = await startSlurm();
  home = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-backend-'));
  dataRoot = join(home, 'data');
  mkdirSync(dataRoot, { mode: 0o700 });
  await writeDataset(dataRoot, 'words', { format: 'csv', columns: ['word'], owner: 'ana', labels: ['internal'], produced_by: null, partitions: [['word', 'a', 'b'], ['word', 'c'], ['word', 'd', 'e', 'f']].map((rows) => ({ text: `${rows.join('\n')}\n`, rows: rows.length - 1 })) });
  // The view, always here: a checkout the account cannot reach (under /root) must work too.
  const runtime = slurmTaskRuntime(slurm, { view: true });
  const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 300 });
  const client = createSlurmClient({ url: slurm.restUrl, apiVersion: slurm.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: slurm.user.uid } });
  store = await openTestStore(join(home, 'state'));
  backend = slurmBackend({
    client,
    url: slurm.restUrl,
    dataRoot,
    jobsDir: join(slurm.workDir, 'jobs'),
    store,
    partition: slurm.partition,
    account: '',
    statusUser: 'nobody',
    taskCommand: [runtime.node, join(runtime.installDir, 'bin', 'gatehouse-task.js')],
    python: 'python3',
    pollMs: 100,
  });
}, 120_000);

afterAll(async () => {
  await store?.close();
  await slurm?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

const spec = (o: Partial<JobSpec>): JobSpec => ({ name: 'copy', input: 'words', output: 'out-copy', runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 2, memory_mb: 200, time_limit_s: 120 }, ...o });
let n = 0;
const submit = async (s: JobSpec) => {
  const id = `j-${Date.now()}-${n++}`;
  await backend.submit({ id, user: 'ana', posix_user: slurm.user.name, spec: s, granted: s.resources });
  return id;
};
const ended = (id: string) => until(async () => { const s = await backend.status(id); return s && !['queued', 'running'].includes(s.state) ? s : undefined; }, 60_000, `job ${id} ended`, 100) as Promise<JobStatus>;

describe('the Slurm backend', () => {
  it('answers readiness and capacity', async () => {
    expect(await backend.readiness()).toMatch(/^ok \(.*slurmctld UP, \d+ CPUs/);
    expect((await backend.capacity()).slots).toBeGreaterThan(0);
  });

  it('runs a job as the person and commits its output', async () => {
    const id = await submit(spec({ argv: ['sh', '-c', 'cp {input} {output}; id -un >&2'], labels: ['scratch'] }));
    const s = await ended(id);
    expect(s.error).toBeNull();
    expect(s.state).toBe('succeeded');
    expect(s.posix_user).toBe(slurm.user.name);
    expect(s.backend_job_id).toMatch(/^\d+$/);
    const manifest = JSON.parse(readFileSync(join(dataRoot, 'out-copy', '_dataset.json'), 'utf8'));
    expect(manifest).toMatchObject({ owner: 'ana', labels: ['internal', 'scratch'], produced_by: id });
    expect(manifest.partitions.map((p: { rows: number }) => p.rows)).toEqual([2, 1, 3]);
    const logs = await new Response((await backend.logs(id, false)) as never).text();
    expect(logs).toContain(`[p0] stderr: ${slurm.user.name}`); // id -un >&2: labelled as the engine labels it
    // The gateway's own copy, readable by the engine's sandboxed jobs, never the account's file.
    const committed = statSync(join(dataRoot, 'out-copy', 'part-00000.csv'));
    expect(committed.uid).toBe(0);
    expect(committed.mode & 0o777).toBe(0o644);
    expect(s.rows_in).toBe(6);
  }, 90_000);

  it('reports a failing partition with its error, after its attempts', async () => {
    const id = await submit(spec({ output: 'out-fail', argv: ['sh', '-c', 'echo boom-$(basename {input}) >&2; exit 3'], max_attempts: 2 }));
    const s = await ended(id);
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(/boom/);
    const logs = await new Response((await backend.logs(id, false)) as never).text();
    expect(logs).toMatch(/attempt 1\); trying again/);
  }, 90_000);

  it('cancels a running job and answers once nothing runs', async () => {
    const id = await submit(spec({ output: 'out-cancel', argv: ['sleep', '300'] }));
    await until(async () => ((await backend.status(id))?.state === 'running' ? true : undefined), 30_000, 'running', 100);
    const s = await backend.cancel(id);
    expect(s?.state).toBe('cancelled');
    expect(s?.partitions.running).toBe(0);
  }, 90_000);

  it('stops a job its owner widened on Slurm beyond the grant (scontrol update as themselves), and says why', async () => {
    const id = await submit(spec({ output: 'out-widened', argv: ['sleep', '300'], resources: { cores: 1, memory_mb: 200, time_limit_s: 120 } }));
    const first = await until(async () => { const s = await backend.status(id); return s?.state === 'running' ? s : undefined; }, 30_000, 'running', 100);
    // The person, with a shell on the cluster, lets three tasks run at once where one was granted.
    execFileSync('runuser', ['-u', slurm.user.name, '--', 'scontrol', 'update', `JobId=${first.backend_job_id}`, 'ArrayTaskThrottle=3'], { env: { ...process.env, ...slurm.env } });
    const s = await ended(id);
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(/changed on Slurm to run [23] tasks at once; the gateway granted 1 cores, so it was stopped/);
    expect(s.partitions.running).toBe(0);
  }, 90_000);
});
