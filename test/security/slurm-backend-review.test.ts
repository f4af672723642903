// Attacker's review of the Slurm backend (issue 17), against the real private cluster. The attacker is
// a data scientist whose job runs as their own Unix account (gh-alice) on the cluster: unsandboxed code,
// a shell on the node (played here with `runuser -u gh-alice`), the owner of their job's folder once
// the gateway hands it over, and a person who can submit jobs. The gateway (here: this process, root)
// must never delete, read or copy through what they planted, nor be made to hold unbounded data.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { ComputeBackend } from '../../src/proxy/index.js';
import { createSlurmClient, type SlurmClient } from '../../src/proxy/slurm/client.js';
import { slurmBackend } from '../../src/proxy/slurm/slurm-backend.js';
import { createSlurmTokenMinter } from '../../src/proxy/slurm/token.js';
import type { Store } from '../../src/store/index.js';
import { GatehouseError, type JobSpec, type JobStatus } from '../../src/wire/index.js';
import { ROOT } from '../support/gatehouse.js';
import { ensureUnixUser, type SlurmCluster, startSlurm, type UnixUser } from '../support/slurm.js';
import { openTestStore } from '../support/test-store.js';
import { until } from '../support/until.js';

let slurm: SlurmCluster;
let bob: UnixUser;
let client: SlurmClient;
let home: string;
let dataRoot: string;
let store: Store;
let jobsDir: string;
let backend: ComputeBackend;
const children: ChildProcess[] = [];

function backendOn(jobs: string): ComputeBackend {
  return slurmBackend({
    client,
    url: slurm.restUrl,
    dataRoot,
    jobsDir: jobs,
    store,
    partition: slurm.partition,
    account: '',
    statusUser: 'nobody',
    taskCommand: [process.execPath, join(ROOT, 'bin', 'gatehouse-task.js')],
    python: 'python3',
    pollMs: 100,
  });
}

beforeAll(async () => {
  slurm = await startSlurm();
  bob = await ensureUnixUser('gh-bob');
  home = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-attack-'));
  dataRoot = join(home, 'data');
  store = await openTestStore(join(home, 'state'));
  mkdirSync(dataRoot, { mode: 0o700 });
  await writeDataset(dataRoot, 'words', { format: 'csv', columns: ['word'], owner: 'ana', labels: ['internal'], produced_by: null, partitions: [['word', 'a', 'b'], ['word', 'c'], ['word', 'd', 'e', 'f']].map((rows) => ({ text: `${rows.join('\n')}\n`, rows: rows.length - 1 })) });
  const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 300 });
  // Both test accounts are --system accounts (uids below 1000): the floor is the lower of the two.
  client = createSlurmClient({ url: slurm.restUrl, apiVersion: slurm.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: Math.min(slurm.user.uid, bob.uid) } });
  jobsDir = join(slurm.workDir, 'jobs');
  backend = backendOn(jobsDir);
}, 120_000);

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

afterAll(async () => {
  await store?.close();
  await slurm?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

/** What the backend kept of a finished job's logs, in the store. */
const keptLogs = (id: string) => store.db.selectFrom('slurm_job_logs').select(['partition', 'content']).where('job_id', '=', id).execute();

/** A shell command as the attacker (or another account) on the node. */
function shellAs(user: string, script: string): string {
  return execFileSync('runuser', ['-u', user, '--', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const asAlice = (script: string) => shellAs(slurm.user.name, script);
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

const spec = (o: Partial<JobSpec>): JobSpec => ({ name: 'attack', input: 'words', output: 'out', runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 3, memory_mb: 200, time_limit_s: 120 }, ...o });
let n = 0;
async function submit(s: JobSpec, on = backend, as = slurm.user.name): Promise<string> {
  const id = `a-${Date.now()}-${n++}`;
  await on.submit({ id, user: 'ana', posix_user: as, spec: s, granted: s.resources });
  return id;
}
const ended = (id: string, on = backend) =>
  until(
    async () => {
      const s = await on.status(id);
      return s && !['queued', 'running'].includes(s.state) ? s : undefined;
    },
    120_000,
    `job ${id} ended`,
    100,
  ) as Promise<JobStatus>;
const text = async (stream: NodeJS.ReadableStream | null) => new Response(stream as never).text();
/** A command that copies its partition and then waits for `flag` to exist. */
const waitFor = (flag: string): string[] => ['sh', '-c', `cp {input} {output}; while [ ! -e ${flag} ]; do sleep 0.1; done`];

describe('Slurm backend review: the job folder is removed without following what the person swapped in', () => {
  // Node's fs.rm({recursive}) walks by path: it lstat()s every child of a folder, then unlink()s each
  // by its path. The person owns every folder inside their job folder: once the first file of `a/`
  // is gone they rename `a` away and put a symbolic link to any folder in its place, and root's
  // remaining unlinks of a/<name> delete <that folder>/<name>. Here the victim is a root-only folder
  // whose files have the same names.
  const SWAPPER = [
    'import os, sys',
    'd, victim, n = sys.argv[1], sys.argv[2], int(sys.argv[3])',
    "a = os.path.join(d, 'a')",
    'os.mkdir(a)',
    "names = ['f%05d' % i for i in range(n)]",
    'for name in names: open(os.path.join(a, name), "w").close()',
    'samples = [os.path.join(a, x) for x in names[::500]]',
    "print('ready', flush=True)",
    'while all(os.path.lexists(s) for s in samples): pass',
    "os.rename(a, os.path.join(d, 'a2'))",
    'os.symlink(victim, a)',
    "print('swapped', flush=True)",
  ].join('\n');
  const FILES = 20_000;

  it("deletes nothing outside the folder when a folder in it becomes a link while it is removed", async () => {
    const victim = join(home, 'victim-files');
    mkdirSync(victim, { mode: 0o700 });
    for (let i = 0; i < FILES; i++) writeFileSync(join(victim, `f${String(i).padStart(5, '0')}`), 'root\n');
    const id = await submit(spec({ output: 'out-race', partitions: [0] }));
    const dir = join(jobsDir, id);
    const swapper = spawn('runuser', ['-u', slurm.user.name, '--', 'python3', '-c', SWAPPER, dir, victim, String(FILES)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(swapper);
    let said = '';
    swapper.stdout?.on('data', (c: Buffer) => (said += c.toString()));
    swapper.stderr?.on('data', (c: Buffer) => (said += c.toString()));
    await until(() => said.includes('ready'), 60_000, () => `the swapper ready (${said})`);
    const s = await ended(id).catch((err: Error) => err);
    await until(() => said.includes('swapped'), 30_000, () => `the swap done (${said})`);
    expect(FILES - readdirSync(victim).length, 'files of the victim folder the gateway deleted').toBe(0);
    expect(s instanceof Error ? s.message : s.state).toBe('succeeded');
    expect(existsSync(dir)).toBe(false);
  }, 180_000);
});

describe('Slurm backend review: a folder nested past PATH_MAX', () => {
  // fs.rm walks by path: 3000 nested folders make a path of 6000 characters, and ENAMETOOLONG made
  // every later status of the job fail, so it never ended (nor released its quota).
  it('still ends the job and removes its folder', async () => {
    const id = await submit(spec({ output: 'out-deep', partitions: [0] }));
    const dir = join(jobsDir, id);
    execFileSync('runuser', ['-u', slurm.user.name, '--', 'python3', '-c', 'import os, sys\nos.chdir(sys.argv[1])\nfor _ in range(3000):\n  os.mkdir("d"); os.chdir("d")\nopen("leaf", "w").close()', dir]);
    const s = await ended(id).catch((err: Error) => err);
    expect(s instanceof Error ? s.message : s.state).toBe('succeeded');
    expect(existsSync(dir)).toBe(false);
  }, 120_000);
});

describe('Slurm backend review: slurm.jobs_dir must be the gateway’s', () => {
  // jobs_dir under a folder everyone may write (a scratch file system, the test cluster's work/):
  // a person who makes it first owns every job folder's name, or points it anywhere.
  it('refuses a jobs_dir that is a link the person planted, and changes nothing where it leads', async () => {
    const victim = join(home, 'victim-folder');
    mkdirSync(victim, { mode: 0o755 });
    const planted = join(slurm.workDir, 'jobs-link');
    asAlice(`ln -s ${q(victim)} ${q(planted)}`);
    const err = await submit(spec({ output: 'out-link', partitions: [0] }), backendOn(planted)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, 'a job was prepared in a folder reached through the person’s link').toBeInstanceOf(GatehouseError);
    expect((err as Error).message).toMatch(/slurm\.jobs_dir/);
    expect(statSync(victim).mode & 0o7777).toBe(0o755);
    expect(readdirSync(victim)).toEqual([]);
  });

  it('refuses a jobs_dir the person made (they could rename anyone’s job folder in it)', async () => {
    const planted = join(slurm.workDir, 'jobs-own');
    asAlice(`mkdir -m 0755 ${q(planted)}`);
    const err = await submit(spec({ output: 'out-own', partitions: [0] }), backendOn(planted)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, 'a job folder was made in a folder the person owns').toBeInstanceOf(GatehouseError);
    expect((err as Error).message).toMatch(/slurm\.jobs_dir/);
    expect(readdirSync(planted)).toEqual([]);
  });
});

describe('Slurm backend review: what the person leaves in the folder cannot fill the gateway’s disks', () => {
  // A sparse file costs its writer nothing: `truncate -s 1G` on their own output. Copied byte by
  // byte into data.root it becomes a gigabyte of real zeros; a larger one fills data.root's file
  // system for every dataset of everyone.
  it('copies holes as holes: a sparse output takes no space it did not take in the job folder', async () => {
    const id = await submit(spec({ output: 'out-sparse', partitions: [0] }));
    const out = join(jobsDir, id, 'out', 'part-00000.csv');
    await until(() => existsSync(join(jobsDir, id, 'done', 'part-00000.json')), 60_000, 'partition 0 done');
    asAlice(`truncate -s 1G ${q(out)}`);
    const s = await ended(id);
    expect(s.state, s.error ?? '').toBe('succeeded');
    const committed = statSync(join(dataRoot, 'out-sparse', 'part-00000.csv'));
    expect(committed.size).toBe(1024 ** 3);
    expect([committed.uid, committed.mode & 0o022], 'the committed copy is root’s, writable by nobody else').toEqual([0, 0]);
    expect(committed.blocks * 512, 'bytes the committed copy takes on disk').toBeLessThan(16 * 1024 * 1024);
  }, 120_000);

  it('refuses an output larger than data.root’s file system at once', async () => {
    const id = await submit(spec({ output: 'out-huge', partitions: [0] }));
    const out = join(jobsDir, id, 'out', 'part-00000.csv');
    await until(() => existsSync(join(jobsDir, id, 'done', 'part-00000.json')), 60_000, 'partition 0 done');
    asAlice(`truncate -s 8T ${q(out)}`);
    const s = await ended(id);
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(/file system/);
    expect(existsSync(join(dataRoot, 'out-huge'))).toBe(false);
  }, 120_000);

  // `gatehouse logs --follow` kept a partition's unfinished line in memory until its newline came:
  // a log of gigabytes without one grew the gateway's heap until it died. And each partition's log
  // was kept up to 8 MiB after the job: a job of many partitions left gigabytes in state.dir.
  it('bounds a log line shown and the logs kept of a job', async () => {
    const flag = join(slurm.workDir, `go-logs-${Date.now()}`);
    const id = await submit(spec({ output: 'out-logs', partitions: [0, 1], argv: waitFor(flag) }));
    const dir = join(jobsDir, id);
    let shown: string;
    try {
      await until(() => [0, 1].every((p) => existsSync(join(dir, `log-${p}.txt`))), 60_000, 'both tasks started');
      for (const p of [0, 1]) asAlice(`head -c 20000000 /dev/zero | tr '\\0' x >> ${q(join(dir, `log-${p}.txt`))}`);
      const reading = text(await backend.logs(id, true));
      writeFileSync(flag, '');
      shown = await reading;
    } finally {
      writeFileSync(flag, '');
    }
    const longest = Math.max(...shown.split('\n').map((l) => l.length));
    expect(longest, 'the longest line logs gave').toBeLessThanOrEqual(64 * 1024 + 64);
    expect((await ended(id)).state).toBe('succeeded');
    const kept = (await keptLogs(id)).reduce((sum, l) => sum + l.content.length, 0);
    expect(kept, 'bytes of logs kept for one job').toBeGreaterThan(0);
    expect(kept, 'bytes of logs kept for one job').toBeLessThanOrEqual(8 * 1024 * 1024);
  }, 120_000);
});

describe('Slurm backend review: whose account', () => {
  // The gateway may run as a service account in the people's uid range (a plain `useradd
  // gatehouse`). A person whose directory attribute or IdP claim names that account would run
  // code as the gateway: its JWT key file, its CA key, its database.
  it('never releases a job that Slurm would run as the gateway’s own account', async () => {
    const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 300 });
    const asGateway = createSlurmClient({ url: slurm.restUrl, apiVersion: slurm.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: slurm.user.uid }, gatewayUid: slurm.user.uid });
    const name = `gateway-self-${Date.now()}`;
    const err = await asGateway
      .submitArray(slurm.user.name, { name, script: '#!/bin/sh\nid -un\n', tasks: [0], throttle: 1, cpusPerTask: 1, memoryPerCpuMb: 100, timeLimitS: 60, partition: slurm.partition, workDir: slurm.workDir, environment: { PATH: '/usr/bin:/bin' }, stdout: join(slurm.workDir, `${name}.out`) })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err, 'a job as the gateway’s own account was released').toBeInstanceOf(GatehouseError);
    expect((err as GatehouseError).status).toBe(403);
    const states = execFileSync('squeue', ['-h', '-a', '-t', 'all', '-n', name, '-o', '%T'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).trim().split('\n');
    expect(states.every((st) => st === 'CANCELLED'), states.join(',')).toBe(true);
  });
});

describe('Slurm backend review: what already holds (regressions)', () => {
  it('reads no link or FIFO the person put in place of a log or a done record', async () => {
    const id = await submit(spec({ output: 'out-links', partitions: [0, 1] }));
    const dir = join(jobsDir, id);
    await until(() => [0, 1].every((p) => existsSync(join(dir, 'done', `part-0000${p}.json`))), 60_000, 'both partitions done');
    asAlice(`ln -sf ${q(slurm.jwtKeyFile)} ${q(join(dir, 'log-0.txt'))}; rm ${q(join(dir, 'done', 'part-00001.json'))}; mkfifo ${q(join(dir, 'done', 'part-00001.json'))}`);
    const s = await ended(id);
    expect(s.state).toBe('failed');
    expect(s.error).toMatch(/not a plain file/);
    const key = readFileSync(slurm.jwtKeyFile);
    const logs = Buffer.from(await text(await backend.logs(id, false)));
    expect(logs.includes(key)).toBe(false);
    const kept = await keptLogs(id);
    expect(kept.map((l) => l.partition)).not.toContain(0);
    for (const l of kept) expect(Buffer.from(l.content).includes(key)).toBe(false);
  }, 120_000);

  it('gives the task no token, key or gateway setting in its environment', async () => {
    // The command's own environment, and the batch step's (its parent, gatehouse-task, readable as the same uid).
    const s = await ended(await submit(spec({ output: 'out-env', partitions: [0], argv: ['sh', '-c', 'env > {output}; tr "\\0" "\\n" < /proc/$PPID/environ >> {output}'] })));
    expect(s.state, s.error ?? '').toBe('succeeded');
    const env = readFileSync(join(dataRoot, 'out-env', 'part-00000.csv'), 'utf8');
    expect(env).toMatch(/^SLURM_ARRAY_TASK_ID=0$/m);
    expect(env).not.toMatch(/SLURM_JWT|eyJ|GATEHOUSE_(?!JOB=)/);
    expect(env.includes(readFileSync(slurm.jwtKeyFile).toString('base64'))).toBe(false);
  }, 120_000);

  it('keeps another person’s job folder and staged input closed to the attacker', async () => {
    const flag = join(slurm.workDir, `go-bob-${Date.now()}`);
    const id = await submit(spec({ output: 'out-bob', partitions: [0], argv: waitFor(flag) }), backend, bob.name);
    const dir = join(jobsDir, id);
    await until(async () => ((await backend.status(id))?.state === 'running' ? true : undefined), 60_000, "bob's job running", 100);
    const tries = [`ls ${q(jobsDir)}`, `ls ${q(dir)}`, `cat ${q(join(dir, 'in', 'words', 'part-00000.csv'))}`, `cat ${q(join(dir, 'spec.json'))}`, `cat ${q(join(dataRoot, 'words', 'part-00000.csv'))}`];
    try {
      for (const t of tries) expect(() => asAlice(t), t).toThrow(/Permission denied/);
    } finally {
      writeFileSync(flag, '');
    }
    expect((await ended(id)).state).toBe('succeeded');
  }, 120_000);
});
