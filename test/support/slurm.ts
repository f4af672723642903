// A real single-node Slurm cluster (Debian 12's 22.05: munged, slurmctld, slurmd, slurmrestd) on 127.0.0.1 for a
// test, started by scripts/slurm/cluster in a private folder with free ports, so clusters of parallel files never
// meet. Needs root and the packages `munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin`.
//
//   const slurm = await startSlurm();            // ~1-3 s; one per test file (beforeAll), stop() in afterAll
//   const token = await slurm.token();           // HS256 {sun, iat, exp} for slurm.user, signed with the cluster key
//   await fetch(`${slurm.restUrl}/slurm/${slurm.apiVersion}/job/submit`, { method: 'POST',
//     headers: { 'X-SLURM-USER-NAME': slurm.user.name, 'X-SLURM-USER-TOKEN': token, 'content-type': 'application/json' },
//     body: JSON.stringify({ script, job: { partition: slurm.partition, current_working_directory: slurm.workDir, environment: {...}, ... } }) });
//
// What a cluster gives:
//   restUrl      slurmrestd (http://127.0.0.1:P), JWT only (rest_auth/jwt), API openapi/v0.0.38 (`apiVersion`);
//                a bad or expired token answers 500 with errors[] (check errors[] even with HTTP 200)
//   jwtKeyFile   the HS256 key slurmctld checks tokens with (32 random bytes, mode 0600, root's): the gateway's
//                slurm.jwt_key_file
//   partition    the one partition (default); the node has the machine's CPUs and 90% of its memory, DefMemPerCPU=100
//                MB, finished jobs stay visible for an hour (MinJobAge)
//   user         a real non-root Unix account jobs run as (`gh-alice` by default, created if missing: ensureUnixUser)
//   workDir      a folder (mode 1777) inside the cluster folder where any job may write; removed with the cluster
//   env          { SLURM_CONF } to run sinfo/squeue/scontrol/scancel/sbatch against this cluster (execFile env)
//   startMs      how long the start took, daemons launched to node idle and REST answering
//   signal(d, s) sends a signal to one daemon ('slurmrestd' | 'slurmctld' | 'slurmd' | 'munged'); a slurmrestd
//                that dies is started again on the same port by the script (as a service manager would), any
//                other daemon's death ends the cluster
//   stop()       kills every process of the cluster, jobs included (they live in its PID namespace), and removes
//                its folder; safe to call twice. If the test process dies, the cluster dies with it.
// slurmTaskRuntime(cluster) gives slurm.install_dir and slurm.node a task can run as the cluster's account.
// Also exported: ensureUnixUser(name) for more accounts (gh-bob...), mintSlurmToken(key, user, iat, exp) for tokens
// with any key or times (forged, expired), requireSlurm(), SLURM_SCRIPT, SLURM_API_VERSION.
//
// Good to know: a job sees PIDs of the cluster's namespace (`$$` in a job is not a PID this process can signal; find
// a job's processes by a unique command line in /proc). The first job after a start waits up to ~2 s for the
// scheduler's first pass; later ones start within a few hundred ms (batch_sched_delay=0). A job's files belong to
// its user: give it folders that user can write (workDir, or your own), reachable through world-executable parents.
// scripts/slurm/cluster runs the same cluster by hand (see its header).
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { until } from './until.js';

export const SLURM_SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts/slurm/cluster');
export const SLURM_API_VERSION = 'v0.0.38';
const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PACKAGES = 'munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin';

export type SlurmDaemon = 'slurmrestd' | 'slurmctld' | 'slurmd' | 'munged';

export interface UnixUser {
  name: string;
  uid: number;
  gid: number;
}

export interface SlurmCluster {
  dir: string;
  restUrl: string;
  apiVersion: typeof SLURM_API_VERSION;
  jwtKeyFile: string;
  partition: string;
  user: UnixUser;
  workDir: string;
  env: { SLURM_CONF: string };
  startMs: number;
  /** A token slurmrestd accepts for `user` (default: the cluster's user), valid `ttlSeconds` (default 300). */
  token(user?: string, ttlSeconds?: number): Promise<string>;
  signal(daemon: SlurmDaemon, signal: NodeJS.Signals): void;
  /** The output of the script and the daemons' logs (for a failing test's message). */
  logs(): string;
  stop(): Promise<void>;
}

export interface SlurmOptions {
  /** The Unix account jobs run as (created if missing). Default gh-alice. */
  user?: string;
}

/** Fails with the command to run when Slurm is not installed or this is not root. */
export function requireSlurm(): void {
  if (process.getuid?.() !== 0) throw new Error('the Slurm tests need root (slurmd runs jobs as their own users)');
  const needed = ['/usr/sbin/munged', '/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/slurmrestd', '/usr/bin/scontrol', '/usr/bin/sinfo', '/var/lib/dpkg/info/slurm-wlm-jwt-plugin.list'];
  const missing = needed.filter((p) => !existsSync(p));
  if (missing.length > 0) throw new Error(`the Slurm tests need Debian's Slurm (missing: ${missing.join(', ')}); install it with: apt-get install ${PACKAGES}`);
}

/** The Unix account `name`, created (no home, no login shell) if it does not exist yet. */
export async function ensureUnixUser(name: string): Promise<UnixUser> {
  const lookup = (): UnixUser | undefined => {
    try {
      const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()));
      return { name, uid: uid!, gid: gid! };
    } catch {
      return undefined;
    }
  };
  // Files in parallel may create it at the same time (useradd then fails on the lock or the name): look again.
  let failure = '';
  return until(
    () => {
      const found = lookup();
      if (found) return found;
      try {
        execFileSync(existsSync('/usr/sbin/useradd') ? '/usr/sbin/useradd' : 'useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        failure = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim();
      }
      return lookup() ?? false;
    },
    10_000,
    () => `the Unix account ${name} (useradd: ${failure})`,
    100,
  );
}

/** HS256 `{sun, iat, exp}` as slurmctld's auth/jwt expects, signed with `key` (a key file's bytes). */
export function mintSlurmToken(key: Uint8Array, user: string, iat: number, exp: number): Promise<string> {
  return new SignJWT({ sun: user }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(iat).setExpirationTime(exp).sign(key);
}

/** What a Slurm backend's tasks run: slurm.install_dir and slurm.node. */
export interface TaskRuntime {
  installDir: string;
  node: string;
}

/**
 * Where the cluster's account can run this checkout's gatehouse-task from: the checkout itself when
 * the account can reach it, else (a checkout under a folder only root may enter, such as /root) a view
 * of it inside the cluster's folder: hard links (a copy across file systems) of bin/, dist/,
 * node_modules/, package.json, the runners and node, made in about a second. `view: true` makes the
 * view whatever the checkout allows (the tests use it, so the fallback is run too).
 */
export function slurmTaskRuntime(cluster: Pick<SlurmCluster, 'dir' | 'user'>, options: { view?: boolean } = {}): TaskRuntime {
  const readable = (path: string) => spawnSync('runuser', ['-u', cluster.user.name, '--', 'test', '-r', path]).status === 0;
  if (!options.view && [join(CHECKOUT, 'dist', 'src', 'compute', 'index.js'), join(CHECKOUT, 'node_modules', 'typebox', 'package.json'), process.execPath].every(readable)) {
    return { installDir: CHECKOUT, node: process.execPath };
  }
  const view = join(cluster.dir, 'gatehouse');
  rmSync(view, { recursive: true, force: true });
  mkdirSync(join(view, 'src', 'compute'), { recursive: true });
  const link = (from: string, to: string) => {
    if (spawnSync('cp', ['-al', from, to]).status !== 0) execFileSync('cp', ['-a', from, to]);
  };
  for (const part of ['bin', 'dist', 'node_modules', 'package.json', join('src', 'compute', 'runners')]) link(join(CHECKOUT, part), join(view, part));
  link(process.execPath, join(view, 'node'));
  for (const dir of [view, join(view, 'src'), join(view, 'src', 'compute')]) chmodSync(dir, 0o755);
  return { installDir: view, node: join(view, 'node') };
}

export async function startSlurm(options: SlurmOptions = {}): Promise<SlurmCluster> {
  requireSlurm();
  const user = await ensureUnixUser(options.user ?? 'gh-alice');
  const started = Date.now();
  // A port chosen free can be taken before slurmctld binds it: then the cluster stops itself; try again.
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-cluster-'));
    const run = launch(dir);
    try {
      const env = await until(async () => (run.exited() ? 'exited' : await ready(dir, user.name)), 30_000, () => `the Slurm cluster in ${dir} ready\n${run.output()}${daemonLogs(dir)}`, 100);
      if (env === 'exited') throw new Error(`the Slurm cluster in ${dir} stopped while starting\n${run.output()}`);
      return cluster(dir, env, user, run, Date.now() - started);
    } catch (err) {
      await run.stop();
      if (attempt >= 3) throw err;
    }
  }
}

interface Run {
  child: ChildProcess;
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

function launch(dir: string): Run {
  // setpriv --pdeathsig KILL: if this process dies, unshare dies and takes the cluster's namespace with it.
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', SLURM_SCRIPT, 'start', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  const closed = new Promise<void>((resolveClosed) => child.on('close', () => resolveClosed()));
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  child.on('exit', () => (exited = true));
  child.on('error', (err) => {
    output += `\n${err.message}`;
    exited = true;
  });
  return {
    child,
    output: () => output,
    exited: () => exited,
    stop: async () => {
      if (!exited && child.exitCode === null) {
        await new Promise<void>((done) => execFile(SLURM_SCRIPT, ['stop', dir], () => done()));
        await closed;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type ClusterEnv = Record<'SLURM_CONF' | 'SLURM_REST_URL' | 'SLURM_JWT_KEY_FILE' | 'SLURM_PARTITION' | 'SLURM_WORK_DIR', string>;

/** The cluster's settings once slurmctld answers, the node is idle and slurmrestd accepts a token; else undefined. */
async function ready(dir: string, user: string): Promise<ClusterEnv | undefined> {
  const file = join(dir, 'cluster.env');
  if (!existsSync(file)) return undefined;
  const env = Object.fromEntries(
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  ) as ClusterEnv;
  const up = await new Promise<boolean>((done) => execFile(SLURM_SCRIPT, ['ready', dir], (err) => done(!err)));
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

function daemonLogs(dir: string): string {
  const logs = join(dir, 'log');
  if (!existsSync(logs)) return '';
  return readdirSync(logs)
    .filter((f) => f.endsWith('.out'))
    .map((f) => `== ${f}\n${readFileSync(join(logs, f), 'utf8').trim().split('\n').slice(-8).join('\n')}\n`)
    .join('');
}

function cluster(dir: string, env: ClusterEnv, user: UnixUser, run: Run, startMs: number): SlurmCluster {
  let stopped: Promise<void> | undefined;
  return {
    dir,
    restUrl: env.SLURM_REST_URL,
    apiVersion: SLURM_API_VERSION,
    jwtKeyFile: env.SLURM_JWT_KEY_FILE,
    partition: env.SLURM_PARTITION,
    user,
    workDir: env.SLURM_WORK_DIR,
    env: { SLURM_CONF: env.SLURM_CONF },
    startMs,
    token: (name = user.name, ttlSeconds = 300) => {
      const now = Math.floor(Date.now() / 1000);
      return mintSlurmToken(readFileSync(env.SLURM_JWT_KEY_FILE), name, now, now + ttlSeconds);
    },
    signal: (daemon, signal) => {
      const pid = daemonPid(run.child.pid, daemon);
      if (pid === undefined) throw new Error(`no ${daemon} is running in the Slurm cluster ${dir}`);
      process.kill(pid, signal);
    },
    logs: () => `${run.output()}${daemonLogs(dir)}`,
    stop: () => (stopped ??= run.stop()),
  };
}

/** The host PID of a daemon: a child of the cluster's init, itself the only child of unshare (our child). */
function daemonPid(unsharePid: number | undefined, daemon: SlurmDaemon): number | undefined {
  const children = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  if (unsharePid === undefined) return undefined;
  for (const init of children(unsharePid)) {
    for (const pid of children(init)) {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (comm === daemon) return pid;
    }
  }
  return undefined;
}
