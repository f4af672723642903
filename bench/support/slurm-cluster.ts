// A private single-node Slurm cluster for the Slurm benchmarks, from scripts/slurm/cluster as
// test/support/slurm.ts starts it for the tests. Not that starter itself: it finds the script next to
// its own file, which from dist/test/support/ is a path that does not exist; this one finds it from
// the package root. The account, token and package checks are the tests' own.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/version.js';
import { ensureUnixUser, mintSlurmToken, requireSlurm, SLURM_API_VERSION, type UnixUser } from '../../test/support/slurm.js';
import { until } from '../../test/support/until.js';

const SCRIPT = join(PACKAGE_ROOT, 'scripts', 'slurm', 'cluster');
const START_TIMEOUT_MS = 45_000;

export interface BenchCluster {
  restUrl: string;
  apiVersion: string;
  jwtKeyFile: string;
  partition: string;
  /** Mode 1777, removed with the cluster: job folders and markers go here. */
  workDir: string;
  /** For sbatch and squeue run against this cluster. */
  slurmConf: string;
  user: UnixUser;
  /** A token slurmrestd accepts for the cluster's user, valid five minutes. */
  token(): Promise<string>;
  /** When slurmctld allocated the first task of an array (ms since the epoch, from its log), if it did. */
  allocatedAt(slurmJobId: number): number | undefined;
  stop(): Promise<void>;
}

/** Fails at once, in one line, when this is not root or Slurm is not installed. */
export function checkSlurmBench(): void {
  try {
    requireSlurm();
  } catch (err) {
    throw new Error(`the Slurm benchmarks cannot run: ${(err as Error).message.replace('the Slurm tests need', 'they need')}`);
  }
  if (!existsSync(SCRIPT)) throw new Error(`the Slurm benchmarks cannot run: ${SCRIPT} is missing`);
}

export async function startBenchCluster(userName = 'gh-alice'): Promise<BenchCluster> {
  checkSlurmBench();
  const user = await ensureUnixUser(userName);
  // A free port can be taken before slurmctld binds it (the script then exits): try again, twice.
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-slurm-'));
    // --pdeathsig: if the bench dies, the cluster's namespace dies with it.
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', SCRIPT, 'start', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    child.on('error', (err) => (output += err.message));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((done) => execFile(SCRIPT, ['stop', dir], () => done()));
        await closed;
      }
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      const env = await until<ClusterEnv | 'exited'>(() => (exited(child) ? 'exited' : ready(dir, user.name)), START_TIMEOUT_MS, () => `the bench's Slurm cluster (${lastLine(output)})`, 100);
      if (env === 'exited') throw new Error(`the bench's Slurm cluster stopped while starting: ${lastLine(output)}`);
      return {
        restUrl: env.SLURM_REST_URL,
        apiVersion: SLURM_API_VERSION,
        jwtKeyFile: env.SLURM_JWT_KEY_FILE,
        partition: env.SLURM_PARTITION,
        workDir: env.SLURM_WORK_DIR,
        slurmConf: env.SLURM_CONF,
        user,
        token: () => {
          const now = Math.floor(Date.now() / 1000);
          return mintSlurmToken(readFileSync(env.SLURM_JWT_KEY_FILE), user.name, now, now + 300);
        },
        allocatedAt: (id) => allocatedAt(join(dirname(env.SLURM_CONF), 'log', 'slurmctld.log'), id),
        stop,
      };
    } catch (err) {
      await stop();
      if (attempt >= 3) throw err;
    }
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) || 'no output';
}

type ClusterEnv = Record<'SLURM_CONF' | 'SLURM_REST_URL' | 'SLURM_JWT_KEY_FILE' | 'SLURM_PARTITION' | 'SLURM_WORK_DIR', string>;

/** The cluster's settings once its node is idle and slurmrestd takes a token; else undefined. */
async function ready(dir: string, user: string): Promise<ClusterEnv | undefined> {
  const file = join(dir, 'cluster.env');
  if (!existsSync(file)) return undefined;
  const env = Object.fromEntries(
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  ) as ClusterEnv;
  const up = await new Promise<boolean>((done) => execFile(SCRIPT, ['ready', dir], (err) => done(!err)));
  if (!up) return undefined;
  try {
    const now = Math.floor(Date.now() / 1000);
    const token = await mintSlurmToken(readFileSync(env.SLURM_JWT_KEY_FILE), user, now, now + 60);
    const res = await fetch(`${env.SLURM_REST_URL}/slurm/${SLURM_API_VERSION}/ping`, { headers: { 'X-SLURM-USER-NAME': user, 'X-SLURM-USER-TOKEN': token } });
    const body = (await res.json()) as { errors?: unknown[]; pings?: { ping?: string }[] };
    return res.status === 200 && body.errors?.length === 0 && body.pings?.[0]?.ping === 'UP' ? env : undefined;
  } catch {
    return undefined;
  }
}

/** slurmctld logs each start as `[2026-12-02T13:14:28.082] sched: Allocate JobId=4_0(4) ...`, in local time. */
function allocatedAt(log: string, id: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return undefined;
  }
  const m = new RegExp(`^\\[([0-9T:.-]+)\\] (?:sched: Allocate|sched/backfill: _start_job: Started) JobId=${id}_\\d+\\(`, 'm').exec(text);
  return m?.[1] === undefined ? undefined : new Date(m[1]).getTime();
}
