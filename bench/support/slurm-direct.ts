// The baseline a Slurm user has today: the same runner (bin/gatehouse-task.js, through the same batch
// script the backend submits) on a job folder prepared exactly as the backend prepares one, submitted
// straight to Slurm as the same Unix account, by `sbatch --array` or by one slurmrestd call. Preparing
// the folder is not timed: a Slurm user's data is already on the shared file system.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, openRoot } from '../../src/catalog/index.js';
import { arraySpec } from '../../src/proxy/slurm/client.js';
import { giveToAccount, prepareJobFolder } from '../../src/proxy/slurm/job-folder.js';
import { mapSlurmArray } from '../../src/proxy/slurm/states.js';
import { taskScript } from '../../src/proxy/slurm/task-script.js';
import { PACKAGE_ROOT } from '../../src/version.js';
import type { JobSpec } from '../../src/wire/index.js';
import { until } from '../../test/support/until.js';
import { POLL_MS, type SlurmWorld } from './slurm-world.js';

const RUNUSER = existsSync('/usr/sbin/runuser') ? '/usr/sbin/runuser' : 'runuser';
/** What the backend puts in every task's environment (slurm-backend.ts), and nothing else. */
const PATH = '/usr/local/bin:/usr/bin:/bin';

export interface DirectJob {
  id: string;
  dir: string;
  script: string;
  spec: JobSpec;
  tasks: number[];
}

/** A job folder as the backend makes one (input staged, spec.json, given to the account), and its script. */
export async function prepareDirect(w: SlurmWorld, spec: JobSpec): Promise<DirectJob> {
  const id = `direct-${w.next()}`;
  const input = await openDataset(await openRoot(w.dataRoot), spec.input);
  const dir = await prepareJobFolder(w.jobsDir, { id, spec, granted: spec.resources }, input, spec.input);
  await giveToAccount(dir, { uid: w.cluster.user.uid, gid: w.cluster.user.gid });
  const script = taskScript({ command: [process.execPath, join(PACKAGE_ROOT, 'bin', 'gatehouse-task.js')], python: w.python, jobDir: dir, attempts: spec.max_attempts });
  return { id, dir, script, spec, tasks: input.manifest.partitions.map((_, i) => i) };
}

/** `runuser -u <account> -- sbatch --array=...` with the script on stdin, the backend's resources; Slurm's job id. */
export function sbatch(w: SlurmWorld, job: DirectJob): Promise<number> {
  const r = job.spec.resources;
  const args = [
    '-u',
    w.cluster.user.name,
    '--',
    'sbatch',
    '--parsable',
    `--job-name=${job.id}`,
    `--array=${arraySpec(job.tasks)}%${r.cores}`,
    '--cpus-per-task=1',
    `--mem-per-cpu=${r.memory_mb}`,
    `--time=${Math.max(1, Math.ceil(r.time_limit_s / 60))}`,
    `--partition=${w.cluster.partition}`,
    `--chdir=${job.dir}`,
    `--output=${join(job.dir, 'log-%a.txt')}`,
    `--export=PATH=${PATH},GATEHOUSE_JOB=${job.id}`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(RUNUSER, args, { env: { PATH: `${PATH}:/usr/sbin:/sbin`, SLURM_CONF: w.cluster.slurmConf }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const id = Number.parseInt(out.trim().split(';')[0] ?? '', 10);
      if (code === 0 && Number.isInteger(id) && id > 0) resolve(id);
      else reject(new Error(`sbatch exited ${code}: ${(err || out).trim().split('\n')[0]}`));
    });
    child.stdin.end(job.script);
  });
}

/** The headers of a direct slurmrestd call as the account (minted before the call is timed). */
export async function restHeaders(w: SlurmWorld): Promise<Record<string, string>> {
  return { 'X-SLURM-USER-NAME': w.cluster.user.name, 'X-SLURM-USER-TOKEN': await w.cluster.token(), 'content-type': 'application/json' };
}

/** One POST /job/submit, the body the backend sends less `hold`; Slurm's job id. */
export async function restSubmit(w: SlurmWorld, job: DirectJob, headers: Record<string, string>): Promise<number> {
  const r = job.spec.resources;
  const body = {
    script: job.script,
    job: {
      name: job.id,
      array: `${arraySpec(job.tasks)}%${r.cores}`,
      cpus_per_task: 1,
      memory_per_cpu: r.memory_mb,
      time_limit: Math.max(1, Math.ceil(r.time_limit_s / 60)),
      current_working_directory: job.dir,
      environment: { PATH, GATEHOUSE_JOB: job.id },
      standard_output: join(job.dir, 'log-%a.txt'),
      partition: w.cluster.partition,
    },
  };
  const res = await fetch(`${w.cluster.restUrl}/slurm/${w.cluster.apiVersion}/job/submit`, { method: 'POST', headers, body: JSON.stringify(body) });
  const answer = (await res.json()) as { errors?: unknown[]; job_id?: unknown };
  if (res.status !== 200 || (answer.errors?.length ?? 0) > 0 || typeof answer.job_id !== 'number') throw new Error(`slurmrestd submit answered ${res.status}: ${JSON.stringify(answer.errors ?? answer).slice(0, 300)}`);
  return answer.job_id;
}

/** Polls Slurm (as the backend reads it) until every task ended; fails unless all completed. */
export async function slurmFinished(w: SlurmWorld, slurmJobId: number, tasks: number): Promise<void> {
  const view = await until(
    async () => {
      const found = await w.slurm.arrayTasks(w.cluster.user.name, slurmJobId);
      const v = found === null ? undefined : mapSlurmArray(found, tasks, Math.floor(Date.now() / 1000));
      return v !== undefined && v.state !== 'queued' && v.state !== 'running' ? v : undefined;
    },
    120_000,
    `Slurm job ${slurmJobId} ended`,
    POLL_MS,
  );
  if (view.state !== 'succeeded') throw new Error(`Slurm job ${slurmJobId} ${view.state}: ${view.error}`);
}
