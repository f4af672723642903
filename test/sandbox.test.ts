// The engine's task isolation, checked with real processes: real uids, real bubblewrap, real
// rlimits. The cases that switch uids need root; the bubblewrap cases need bwrap.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  detectIsolation,
  installRuntime,
  type Isolation,
  type JobArea,
  killTaskGroup,
  killUidProcesses,
  outOfMemoryMessage,
  parseUidRange,
  prepareJobArea,
  removeJobArea,
  SandboxError,
  sealJobOutput,
  secureDataRoot,
  type TaskLimits,
  taskLaunch,
  taskPaths,
  UidPool,
  type WorkerLaunch,
  writeJobSource,
} from '../src/compute/sandbox/index.js';
import { until } from './support/until.js';

const ROOT = process.getuid?.() === 0;
const BWRAP = existsSync('/usr/bin/bwrap');
const PYTHON = '/usr/bin/python3';
const UIDS = '231000-231099';
const SECRET = 'engine-secret-do-not-leak';
const LIMITS: TaskLimits = { memoryMb: 512, addressSpace: true, maxFileBytes: 64 * 1024 * 1024 };

let base = '';
let dataRoot = '';
let stagingRoot = '';
let runtimeDir = '';
let plain: Isolation;
let boxed: Isolation;
let server: Server;
let serverPort = 0;
// Each job here keeps its uid to the end: pid 1 of a test container may never reap orphans, and
// their zombies would count against the RLIMIT_NPROC of the next job given the same uid.
const pool = new UidPool(parseUidRange(UIDS));
const usedUids = new Set<number>();
const spawned: ChildProcess[] = [];

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(launch: WorkerLaunch): ChildProcess {
  const child = spawn(launch.file, launch.args, { env: launch.env, cwd: launch.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.push(child);
  return child;
}

function finish(child: ChildProcess): Promise<Ran> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function runTask(iso: Isolation, area: JobArea, argv: string[], limits: Partial<TaskLimits> = {}, env: Record<string, string> = {}): Promise<Ran> {
  return finish(start(taskLaunch(iso, area, runtimeDir, argv, { ...LIMITS, ...limits }, env)));
}

const sh = (script: string): string[] => ['/bin/sh', '-c', script];

/** Alive and not a zombie waiting for a parent that will never reap it. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Waits for `pid` to end: what it would not do by itself (every pid passed here sleeps 300 s or waits to be killed). */
const gone = (pid: number, what: string): Promise<true> => until(() => !alive(pid), 10_000, `${what} (pid ${pid}) gone`);

/** Kills every process of a task uid and waits until none is left alive (a killed one lingers a moment under load). */
async function clearUid(uid: number): Promise<void> {
  await killUidProcesses(uid);
  await until(async () => (await liveProcesses(uid)).length === 0, 10_000, `uid ${uid}'s processes gone`);
}

/** A fresh job area with its own uid (when root), its inputs the named partitions of `sales`. */
async function newJob(iso: Isolation, jobId: string, parts = ['part-00000.csv', 'part-00001.csv']): Promise<JobArea> {
  const uid = iso.root ? pool.take(jobId) : null;
  if (uid !== null) usedUids.add(uid);
  return prepareJobArea(iso, { stagingRoot, jobId, uid, inputs: parts.map((p) => join(dataRoot, 'sales', p)) });
}

async function writeDataset(dir: string, rows: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'part-00000.csv'), `id,word\n${rows}\n`);
  await writeFile(join(dir, 'part-00001.csv'), 'id,word\n9,nine\n');
  await writeFile(join(dir, '_dataset.json'), JSON.stringify({ format: 'csv', columns: ['id', 'word'] }));
}

beforeAll(async () => {
  process.env.GATEHOUSE_SANDBOX_TEST_SECRET = SECRET; // must never reach a task
  base = await mkdtemp(join(tmpdir(), 'gh-sandbox-'));
  await chmod(base, 0o711); // task uids pass through to the staging folders
  dataRoot = join(base, 'data');
  await writeDataset(join(dataRoot, 'sales'), '1,one');
  await writeDataset(join(dataRoot, 'secret'), '7,classified');
  await writeDataset(join(dataRoot, 'scratch', 'alice', 'notes'), '3,alice-private');
  await chmod(join(dataRoot, 'secret', 'part-00000.csv'), 0o666); // even a world-writable file stays out of reach

  plain = await detectIsolation({ mode: 'none', taskUids: UIDS });
  boxed = BWRAP ? await detectIsolation({ mode: 'bwrap', taskUids: UIDS }) : plain;
  ({ stagingRoot, runtimeDir } = await secureDataRoot(dataRoot, plain));
  const runner = join(base, 'runner.py');
  await writeFile(runner, 'import sys\nprint("runner ran", sys.argv[1:])\n');
  await installRuntime(stagingRoot, [runner]);

  server = createServer((s) => s.end('engine port\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serverPort = (server.address() as { port: number }).port;
});

afterAll(async () => {
  delete process.env.GATEHOUSE_SANDBOX_TEST_SECRET;
  for (const child of spawned) if (child.pid && child.exitCode === null) killTaskGroup(child.pid);
  for (const uid of usedUids) await killUidProcesses(uid);
  server?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('detectIsolation', () => {
  it('parses a task uid range and refuses one that could reach a real account', () => {
    expect(parseUidRange('200000-265535')).toEqual({ first: 200000, last: 265535 });
    const bad: [string, RegExp][] = [
      ['200000', /expected "first-last"/],
      ['-5-10', /expected "first-last"/],
      ['300000-200000', /first 300000 is above last 200000/],
      ['0-99999', /overlaps the system uids 0-999/],
      ['500-2000', /overlaps the system uids/],
      ['60000-70000', /65534 \(nobody\/nogroup\)/],
      ['2147483000-2147483700', /above 2147483647/],
    ];
    for (const [text, message] of bad) {
      expect(() => parseUidRange(text), text).toThrow(message);
      expect(() => parseUidRange(text)).toThrow(SandboxError);
    }
  });

  it.skipIf(!ROOT)('as root, refuses to start without a task uid range', async () => {
    await expect(detectIsolation({ mode: 'none', taskUids: '' })).rejects.toThrow(/engine.task_uids: required when the engine runs as root/);
    await expect(detectIsolation({ mode: 'none', taskUids: '1-x' })).rejects.toThrow(/expected "first-last"/);
  });

  const account = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => Number(f[2]) >= 1000 && Number(f[2]) < 65534);
  it.skipIf(!ROOT || !account)('as root, refuses a range that holds a local account', async () => {
    const uid = Number(account![2]);
    await expect(detectIsolation({ mode: 'none', taskUids: `${uid}-${uid + 10}` })).rejects.toThrow(new RegExp(`holds ${uid}, the (user|group) ${account![0]}`));
  });

  it("mode 'bwrap' without bubblewrap stops start-up with the reason", async () => {
    const err = await detectIsolation({ mode: 'bwrap', taskUids: UIDS, bwrapPath: '/nonexistent/bwrap' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxError);
    expect((err as SandboxError).code).toBe('unavailable');
    expect((err as Error).message).toMatch(/engine.sandbox is bwrap but bubblewrap not found \(\/nonexistent\/bwrap\); install the bubblewrap package/);
  });

  it("mode 'auto' without bubblewrap: namespaces of its own for every task as root, plain tasks otherwise", async () => {
    const iso = await detectIsolation({ mode: 'auto', taskUids: UIDS, bwrapPath: '/nonexistent/bwrap' });
    expect(iso.bwrap).toBe(false);
    expect(iso.namespaces).toBe(ROOT);
    expect(iso.warning).toMatch(/without bubblewrap/);
    expect(iso.describe()).toMatch(/without bubblewrap \(bubblewrap not found/);
  });

  it.skipIf(!BWRAP)("mode 'auto' uses bubblewrap when running it works", async () => {
    const iso = await detectIsolation({ mode: 'auto', taskUids: UIDS });
    expect(iso.bwrap).toBe(true);
    expect(iso.root).toBe(ROOT);
    expect(iso.taskUids).toEqual(ROOT ? { first: 231000, last: 231099 } : null);
    expect(iso.describe()).toMatch(ROOT ? /each job runs as its own uid from 231000-231099; inside bubblewrap/ : /inside bubblewrap/);
  });

  it('refuses an unknown mode', async () => {
    await expect(detectIsolation({ mode: 'docker' as never, taskUids: UIDS })).rejects.toThrow(/expected auto, bwrap or none/);
  });
});

describe('UidPool', () => {
  it('gives each job the lowest free uid, the same one when asked again', () => {
    const p = new UidPool({ first: 300000, last: 300002 });
    expect(p.take('a')).toBe(300000);
    expect(p.take('b')).toBe(300001);
    expect(p.take('a')).toBe(300000);
    p.release('a');
    expect(p.take('c')).toBe(300000);
    expect(p.uidOf('b')).toBe(300001);
    expect(p.inUse).toBe(2);
  });

  it('throws when every uid is held', () => {
    const p = new UidPool({ first: 300000, last: 300001 });
    p.take('a');
    p.take('b');
    expect(() => p.take('c')).toThrow(/all 2 task uids \(300000-300001\) are held/);
    p.release('unknown'); // no-op
    p.release('a');
    expect(p.take('c')).toBe(300000);
  });

  it('restores uids after a restart and refuses conflicting ones', () => {
    const p = new UidPool({ first: 300000, last: 300009 });
    p.restore('a', 300005);
    expect(p.take('b')).toBe(300000);
    expect(p.take('a')).toBe(300005);
    expect(() => p.restore('c', 300005)).toThrow(/already held by job a/);
    expect(() => p.restore('c', 299999)).toThrow(/outside engine.task_uids/);
    expect(() => p.restore('a', 300006)).toThrow(/already holds uid 300005/);
  });

  it("gives spares uids going down from the top, round the range, and passes a spare's to the job that takes it", () => {
    const p = new UidPool({ first: 300000, last: 300004 });
    expect(p.take('a')).toBe(300000);
    expect(p.take('.spare-1', true)).toBe(300004);
    // The job that takes it holds it; the spare holds nothing any more.
    expect(p.transfer('.spare-1', 'b')).toBe(300004);
    expect(p.uidOf('b')).toBe(300004);
    expect(p.uidOf('.spare-1')).toBeUndefined();
    expect(() => p.transfer('.spare-1', 'c')).toThrow(/holds no uid/);
    // b gives it back at its end: the next spare does not take it at once.
    p.release('b');
    expect(p.take('.spare-2', true)).toBe(300003);
    expect(() => p.transfer('.spare-2', 'a')).toThrow(/already holds uid 300000/);
    expect(p.take('.spare-3', true)).toBe(300002);
    expect(p.take('.spare-4', true)).toBe(300001);
    expect(p.take('.spare-5', true)).toBe(300004); // round the range
    expect(p.free).toBe(0);
    expect(() => p.take('c')).toThrow(/are held/);
  });
});

describe.skipIf(!ROOT)('job areas', () => {
  it('locks the data root: datasets 0700 root, the root and .staging 0711, the runners 0755/0644', async () => {
    const mode = async (p: string): Promise<string> => {
      const st = await stat(p);
      return `${(st.mode & 0o777).toString(8)} ${st.uid}`;
    };
    expect(await mode(dataRoot)).toBe('711 0');
    expect(await mode(join(dataRoot, 'sales'))).toBe('700 0');
    expect(await mode(join(dataRoot, 'scratch'))).toBe('700 0');
    expect(await mode(join(dataRoot, 'scratch', 'alice'))).toBe('700 0');
    expect(await mode(stagingRoot)).toBe('711 0');
    expect(await mode(runtimeDir)).toBe('755 0');
    expect(await mode(join(runtimeDir, 'runner.py'))).toBe('644 0');
  });

  it('links inputs read-only, gives out/ and work/ to the job, and is idempotent', async () => {
    const area = await newJob(plain, 'idem');
    const uid = area.uid!;
    const st = await stat(join(area.input, 'part-00000.csv'));
    const src = await stat(join(dataRoot, 'sales', 'part-00000.csv'));
    expect(st.ino).toBe(src.ino); // a hard link, not a copy
    expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o644, 0, 0]);
    const dirs = await Promise.all([area.dir, area.input, area.output, area.work].map((d) => stat(d)));
    expect(dirs.map((d) => [(d.mode & 0o777).toString(8), d.uid, d.gid])).toEqual([
      ['711', 0, 0],
      ['550', 0, uid],
      ['770', 0, uid], // root's: the job writes through its group but cannot open the folder to others
      ['770', 0, uid],
    ]);

    await runTask(plain, area, sh(`echo done > "${area.output}/part-00000.csv"`));
    const again = await prepareJobArea(plain, { stagingRoot, jobId: 'idem', uid, inputs: [join(dataRoot, 'sales', 'part-00001.csv')] });
    expect(again).toEqual({ ...area });
    expect(await readFile(join(area.output, 'part-00000.csv'), 'utf8')).toBe('done\n');
    expect(await readdir(area.input)).toEqual(['part-00001.csv']);
    await removeJobArea(area);
    expect(existsSync(area.dir)).toBe(false);
  });

  it('refuses inputs that are links, odd job ids and a root-run job', async () => {
    const link = join(dataRoot, 'sales', 'part-link.csv');
    await symlink('/etc/shadow', link);
    try {
      await expect(prepareJobArea(plain, { stagingRoot, jobId: 'links', uid: 231050, inputs: [link] })).rejects.toThrow(/is not a regular file/);
    } finally {
      await rm(link);
    }
    // A FIFO (root may hard-link one): refused once linked, and its link is not left in in/.
    const fifo = join(dataRoot, 'sales', 'part-fifo.csv');
    execFileSync('mkfifo', [fifo]);
    try {
      await expect(prepareJobArea(plain, { stagingRoot, jobId: 'fifo', uid: 231050, inputs: [fifo] })).rejects.toThrow(/part-fifo.csv is not a regular file/);
      expect(await readdir(join(stagingRoot, 'fifo', 'in'))).toEqual([]);
    } finally {
      await rm(fifo);
      await rm(join(stagingRoot, 'fifo'), { recursive: true, force: true });
    }
    await expect(prepareJobArea(plain, { stagingRoot, jobId: '../escape', uid: 231050, inputs: [] })).rejects.toThrow(/is not a plain name/);
    await expect(prepareJobArea(plain, { stagingRoot, jobId: 'asroot', uid: null, inputs: [] })).rejects.toThrow(/tasks never run as root/);
    await expect(prepareJobArea(plain, { stagingRoot, jobId: 'outside', uid: 5000, inputs: [] })).rejects.toThrow(/outside engine.task_uids/);
    await rm(join(stagingRoot, 'links'), { recursive: true, force: true });
  });

  it('writes the source 0400 for the job and never through a link the job planted', async () => {
    const area = await newJob(plain, 'plant');
    const victim = join(base, 'victim.txt');
    await writeFile(victim, 'untouched');
    await runTask(plain, area, sh(`ln -s "${victim}" job.py`));
    expect((await lstat(join(area.work, 'job.py'))).isSymbolicLink()).toBe(true);
    const path = await writeJobSource(area, 'job.py', 'print("hi")\n');
    expect(await readFile(victim, 'utf8')).toBe('untouched');
    const st = await lstat(path);
    expect([st.isFile(), st.mode & 0o777, st.uid]).toEqual([true, 0o400, area.uid]);
    await expect(writeJobSource(area, '../x.py', '')).rejects.toThrow(/not a plain name/);
    await removeJobArea(area);
  });

  it('seals outputs for commit out of the tasks\' reach, and refuses links and hard links a job wrote', async () => {
    const area = await newJob(plain, 'seal');
    // The second file's mode is the task's own choice (set-id bits and all): the seal still makes it 0644.
    await runTask(plain, area, sh(`cd "${area.output}" && echo a > part-00000.csv && echo b > part-00001.csv && chmod 6777 part-00001.csv`));
    const sealed = await sealJobOutput(area);
    expect({ folder: sealed.folder, files: sealed.files }).toEqual({ folder: join(area.dir, '.sealed', 'out'), files: ['part-00000.csv', 'part-00001.csv'] });
    for (const name of sealed.files) {
      const st = await stat(join(sealed.folder, name));
      expect([(st.mode & 0o7777).toString(8), st.uid, st.gid]).toEqual(['644', 0, 0]);
      // What the commit lists the file by (it does not look again): the sealed file itself.
      expect(sealed.identities.get(name)).toEqual({ ino: st.ino, dev: st.dev, size: 2 });
    }
    const folder = await stat(sealed.folder);
    expect([(folder.mode & 0o777).toString(8), folder.uid, folder.gid]).toEqual(['700', 0, 0]);
    expect(((await stat(join(area.dir, '.sealed'))).mode & 0o777).toString(8)).toBe('700');
    expect(existsSync(area.output)).toBe(false); // moved, not copied

    const again = async (plant: (out: string) => Promise<void>) => {
      await prepareJobArea(plain, { stagingRoot, jobId: 'seal', uid: area.uid, inputs: [] }); // a fresh out/
      await runTask(plain, area, sh(`cd "${area.output}" && echo a > part-00000.csv`));
      await plant(area.output);
      return sealJobOutput(area);
    };
    await expect(again((out) => symlink('/etc/passwd', join(out, 'part-00002.csv')))).rejects.toThrow(/part-00002.csv, which is not a plain file/);
    await expect(again((out) => link(join(out, 'part-00000.csv'), join(area.work, 'elsewhere')))).rejects.toThrow(/part-00000.csv as a hard link/);
    await expect(again((out) => mkdir(join(out, 'sub')))).rejects.toThrow(/sub, which is not a plain file/);
    // A FIFO is refused by its lstat, never opened (an open could block, or wake a device).
    await expect(again(async (out) => void execFileSync('mkfifo', [join(out, 'part-00003.csv')]))).rejects.toThrow(/part-00003.csv, which is not a plain file/);
    await removeJobArea(area);
    expect(existsSync(area.dir)).toBe(false);
  });

  it('tells tasks host paths in plain mode and /job paths in bubblewrap', async () => {
    const area = await newJob(plain, 'paths');
    expect(taskPaths(plain, area, runtimeDir)).toEqual({ input: area.input, output: area.output, work: area.work, runtime: runtimeDir });
    expect(taskPaths({ ...plain, bwrap: true }, area, runtimeDir)).toEqual({ input: '/job/in', output: '/job/out', work: '/job/work', runtime: '/job/runtime' });
    await removeJobArea(area);
  });
});

describe('taskLaunch', () => {
  it('refuses to replace the sandbox environment or run a root task', async () => {
    const area: JobArea = { jobId: 'x', dir: '/nonexistent', input: '/nonexistent/in', output: '/nonexistent/out', work: '/nonexistent/work', uid: ROOT ? 231098 : null, gid: ROOT ? 231098 : null };
    expect(() => taskLaunch(plain, area, runtimeDir, ['true'], LIMITS, { PATH: '/evil' })).toThrow(/PATH is set by the sandbox/);
    expect(() => taskLaunch(plain, area, runtimeDir, ['true'], LIMITS, { 'A=B': '1' })).toThrow(/not a valid variable/);
    expect(() => taskLaunch(plain, area, runtimeDir, ['true'], { ...LIMITS, memoryMb: 0 })).toThrow(/memoryMb must be a positive/);
    if (ROOT) expect(() => taskLaunch(plain, { ...area, uid: null, gid: null }, runtimeDir, ['true'], LIMITS)).toThrow(/refusing to run a task as root/);
  });

  it('leaves RLIMIT_AS off when the caller says so (node)', () => {
    const area: JobArea = { jobId: 'x', dir: '/n', input: '/n/in', output: '/n/out', work: '/n/work', uid: ROOT ? 231098 : null, gid: ROOT ? 231098 : null };
    expect(taskLaunch(plain, area, runtimeDir, ['node'], LIMITS).args.some((a) => a.startsWith('--as='))).toBe(true);
    expect(taskLaunch(plain, area, runtimeDir, ['node'], { ...LIMITS, addressSpace: false }).args.some((a) => a.startsWith('--as='))).toBe(false);
  });

  it('words an out-of-memory failure', () => {
    expect(outOfMemoryMessage(7, 1024)).toBe('partition 7: out of memory at 1024 MB');
  });

  it('refuses to kill process group 0 or 1', () => {
    expect(() => killTaskGroup(0)).toThrow(/refusing/);
    expect(() => killTaskGroup(1)).toThrow(/refusing/);
  });
});

// What holds in both modes, run once without and once with bubblewrap.
for (const mode of ['plain', 'bubblewrap'] as const) {
  describe.skipIf(!ROOT || (mode === 'bubblewrap' && !BWRAP))(`tasks (${mode}, as root)`, () => {
    const iso = (): Isolation => (mode === 'plain' ? plain : boxed);
    const prefix = mode === 'plain' ? 'p' : 'b';
    let a: JobArea;
    let b: JobArea;

    beforeAll(async () => {
      a = await newJob(iso(), `${prefix}-job-a`);
      b = await newJob(iso(), `${prefix}-job-b`, ['part-00001.csv']);
      await writeJobSource(a, 'job.py', 'SECRET_SOURCE = 1\n');
      const pa = taskPaths(iso(), a, runtimeDir);
      const r = await runTask(iso(), a, sh(`echo a-output > "${pa.output}/part-00000.csv"`));
      expect(r.code).toBe(0);
    });
    // Nothing of one case's tasks is left for the next to count: a case that failed half-way left its
    // `sleep 300` running, and the next case took it for its own (suite39, four workers at load ~10).
    afterEach(async () => {
      if (a) await clearUid(a.uid!);
    });
    afterAll(async () => {
      for (const area of [a, b]) {
        if (!area) continue;
        await removeJobArea(area);
      }
    });

    it('runs as the job uid with a clean environment in its work folder', async () => {
      const r = await runTask(iso(), a, sh('id -u; id -g; id -G; pwd; env'), {}, { GATEHOUSE_PARTITION: '3' });
      expect(r.stderr).toBe('');
      const [uid, gid, groups, cwd, ...env] = r.stdout.trim().split('\n');
      const work = taskPaths(iso(), a, runtimeDir).work;
      expect([uid, gid, groups, cwd]).toEqual([String(a.uid), String(a.uid), String(a.uid), work]);
      const vars = Object.fromEntries(env.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      delete vars.PWD; // the shell's own
      delete vars.SHLVL;
      delete vars._;
      expect(vars).toEqual({
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: work,
        TMPDIR: work,
        LANG: 'C.UTF-8',
        PYTHONUNBUFFERED: '1',
        PYTHONDONTWRITEBYTECODE: '1',
        GATEHOUSE_PARTITION: '3',
      });
      expect(r.stdout).not.toContain(SECRET);
    });

    it("reads its own inputs and the runners, and nothing of another job's or an unrequested dataset", async () => {
      const pb = taskPaths(iso(), b, runtimeDir);
      const probes = [
        `own-input:cat "${pb.input}/part-00001.csv"`,
        `runner:${PYTHON} "${pb.runtime}/runner.py" x`,
        `a-output:cat "${a.output}/part-00000.csv"`,
        `a-source:cat "${a.work}/job.py"`,
        `a-inputs:ls "${a.input}"`,
        `a-area:ls "${a.dir}"`,
        `data-root:ls "${dataRoot}"`,
        `other-dataset:ls "${dataRoot}/secret"`,
        `other-partition:cat "${dataRoot}/secret/part-00000.csv"`,
        `namespace:cat "${dataRoot}/scratch/alice/notes/part-00000.csv"`,
        `unlinked-partition:cat "${dataRoot}/sales/part-00000.csv"`,
        `write-input:echo x >> "${pb.input}/part-00001.csv"`,
        `plant-input:touch "${pb.input}/extra.csv"`,
        `write-runner:echo x >> "${pb.runtime}/runner.py"`,
      ];
      const script = probes.map((p) => {
        const [name, cmd] = [p.slice(0, p.indexOf(':')), p.slice(p.indexOf(':') + 1)];
        const said = `$(head -c 300 "$TMPDIR/said" | tr '\\n' ' ')`;
        return `if ${cmd} >"$TMPDIR/said" 2>&1; then echo "${name}=allowed ${said}"; else echo "${name}=refused ${said}"; fi`;
      });
      const r = await runTask(iso(), b, sh(script.join('\n')));
      const seen = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(seen['own-input']).toMatch(/^allowed id,word 9,nine/);
      expect(seen.runner).toMatch(/^allowed runner ran \['x'\]/);
      for (const name of ['a-output', 'a-source', 'a-inputs', 'a-area', 'data-root', 'other-dataset', 'other-partition', 'namespace', 'unlinked-partition', 'write-input', 'plant-input', 'write-runner']) {
        expect(seen[name], name).toMatch(/^refused /);
        // Plain mode: the permissions say no, or the path is not there at all (the data root of this
        // test is under /tmp, which is the task's own tmpfs: only its area is bound back in).
        // Bubblewrap: the host paths do not even exist.
        if (mode === 'plain') expect(seen[name], name).toMatch(/Permission denied|No such file or directory|Read-only file system/);
      }
      expect(await readFile(join(dataRoot, 'sales', 'part-00001.csv'), 'utf8')).toBe('id,word\n9,nine\n');
    });

    it('stops a 2 GB allocation at memoryMb (RLIMIT_AS): python raises MemoryError', async () => {
      const r = await runTask(iso(), a, [PYTHON, '-c', 'b = bytearray(2 * 1024**3)'], { memoryMb: 256 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('MemoryError');
    });

    it('stops a write past maxFileBytes (RLIMIT_FSIZE) with EFBIG', async () => {
      const script = 'import errno\ntry:\n  open("big", "wb").write(b"x" * (2 << 20))\nexcept OSError as e:\n  print(errno.errorcode[e.errno])';
      const r = await runTask(iso(), a, [PYTHON, '-c', script], { maxFileBytes: 1 << 20 });
      expect(r.stdout.trim()).toBe('EFBIG');
      expect((await stat(join(a.work, 'big'))).size).toBe(1 << 20);
    });

    it('runs node without RLIMIT_AS, its heap capped by the flag the caller passes', async () => {
      const script = 'const a = []; try { for (;;) a.push(new Array(1e6).fill(1)); } catch (e) { console.log("caught", e.message); }';
      const r = await runTask(iso(), a, ['/usr/bin/node', '--max-old-space-size=64', '-e', 'console.log("node", process.versions.node)'], { memoryMb: 64, addressSpace: false });
      expect(r.stdout.trim()).toBe(`node ${process.versions.node}`);
      const oom = await runTask(iso(), a, ['/usr/bin/node', '--max-old-space-size=64', '-e', script], { memoryMb: 64, addressSpace: false });
      expect(oom.code).not.toBe(0); // V8 aborts at its heap limit
      expect(oom.stderr).toMatch(/heap out of memory/);
    });

    it('caps the processes of the job uid (RLIMIT_NPROC)', async () => {
      const r = await runTask(iso(), a, sh('i=0; while [ $i -lt 40 ]; do sleep 5 >/dev/null 2>&1 & i=$((i+1)); done; echo started'), { maxProcesses: 12 });
      expect(r.stderr).toMatch(/fork/i);
    });

    it('killTaskGroup kills the task and the children it started', async () => {
      const child = start(taskLaunch(iso(), a, runtimeDir, sh('sleep 300 & echo ready; wait'), LIMITS));
      const done = finish(child);
      // "ready" comes after the fork, not after the exec: wait for the child to be `sleep`.
      await new Promise<void>((r) => child.stdout!.once('data', () => r()));
      const before = await until(
        async () => {
          const sleeps = await liveProcesses(a.uid!, 'sleep');
          return sleeps.length > 0 && sleeps;
        },
        10_000,
        "the task's sleep running",
      );
      expect(before.length).toBe(1);
      killTaskGroup(child.pid!);
      const r = await done;
      expect(r.signal ?? r.code).toBeTruthy();
      await gone(before[0]!, "the task's sleep");
    });

    it('dies with the engine when the engine is killed -9', async () => {
      // A stand-in engine: a node process that starts the task and then waits to be killed.
      const launch = taskLaunch(iso(), a, runtimeDir, sh('sleep 300 & wait'), LIMITS);
      const engine = spawn(
        process.execPath,
        ['-e', `const {spawn} = require('node:child_process'); const l = ${JSON.stringify(launch)}; const c = spawn(l.file, l.args, {env: l.env, cwd: l.cwd, detached: true, stdio: 'ignore'}); console.log(c.pid); setInterval(() => {}, 1000);`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      spawned.push(engine);
      const pid = Number(await new Promise<string>((r) => engine.stdout!.once('data', (d: Buffer) => r(d.toString()))));
      await until(async () => (await liveProcesses(a.uid!, 'sleep')).length === 1, 10_000, "the task's sleep running");
      const [sleepPid] = await liveProcesses(a.uid!, 'sleep');
      expect(alive(pid)).toBe(true);
      engine.kill('SIGKILL');
      await gone(pid, 'the task');
      // Both modes: the task's pid namespace goes with it (bubblewrap's init, or unshare's child
      // as root without bubblewrap): nothing the task started survives.
      await gone(sleepPid!, "the task's sleep");
    });
  });
}

describe.skipIf(!ROOT)('root without bubblewrap: namespaces and clean-up', () => {
  it('ends what a task left running in its pid namespace, and keeps its /tmp private', async () => {
    const area = await newJob(plain, 'escape');
    const r = await runTask(plain, area, sh('setsid sleep 300 >/dev/null 2>&1 & touch /tmp/gh-sandbox-left-$(id -u); ls /tmp'));
    // Its own /tmp: nothing of the host's but the way to its own area (this test's data root is in /tmp).
    // Compared as sets: ls orders by bytes, and mkdtemp's random suffix sorts before or after "left".
    expect(r.stdout.trim().split('\n').sort()).toEqual([basename(base), `gh-sandbox-left-${area.uid}`].sort());
    expect(await liveProcesses(area.uid!, 'sleep')).toEqual([]);
    expect(existsSync(`/tmp/gh-sandbox-left-${area.uid}`)).toBe(false);
    await removeJobArea(area);
    expect(existsSync(area.dir)).toBe(false);
  });

  it('removeJobArea kills by uid and sweeps what the uid left in /tmp, /run/lock and SysV IPC', async () => {
    const area = await newJob(plain, 'sweep');
    const uid = area.uid!;
    // Left the way a task outside any namespace would: as the uid, on the host.
    const asUid = (script: string) => finish(spawn('/usr/bin/setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', '/bin/sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const made = await asUid('mkdir /tmp/gh-sweep-$(id -u) && touch /tmp/gh-sweep-$(id -u)/x /run/lock/gh-sweep-$(id -u) && ipcmk -M 4096 >/dev/null && ipcmk -Q >/dev/null && echo ok');
    expect(made.stdout.trim()).toBe('ok');
    const owned = () => ['shm', 'msg'].flatMap((k) => readFileSync(`/proc/sysvipc/${k}`, 'utf8').split('\n').slice(1).filter((l) => l.trim().split(/\s+/).includes(String(uid))));
    expect(owned().length).toBe(2);
    await removeJobArea(area);
    expect(owned()).toEqual([]);
    expect(existsSync(`/tmp/gh-sweep-${uid}`)).toBe(false);
    expect(existsSync(`/run/lock/gh-sweep-${uid}`)).toBe(false);
    expect(readdirSync('/tmp').filter((n) => n.startsWith('.removing-'))).toEqual([]);
  });

  it('has no network without bubblewrap either: a network namespace of its own', async () => {
    const area = await newJob(plain, 'net-plain');
    const script = `import socket\ntry:\n  socket.create_connection(("127.0.0.1", ${serverPort}), timeout=2)\n  print("connected")\nexcept OSError as e:\n  print(type(e).__name__, e.errno)`;
    const r = await runTask(plain, area, [PYTHON, '-c', script]);
    expect(r.stdout.trim()).toBe('OSError 101'); // ENETUNREACH: its loopback is down, and the only interface
    await removeJobArea(area);
  });
});

describe.skipIf(!ROOT)('a non-root engine', () => {
  it('runs tasks as itself (no uid switch), with a clean environment, bubblewrap when it works', async () => {
    // The compiled sandbox (test set-up builds dist/), driven by a node process running as a plain
    // uid in a folder of its own: that process is the engine here.
    const uid = 231099;
    const home = join(base, 'nonroot');
    await mkdir(home);
    await chown(home, uid, uid);
    const face = new URL('../dist/src/compute/sandbox/index.js', import.meta.url).href;
    const script = `
      import { spawnSync } from 'node:child_process';
      import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
      import * as sb from ${JSON.stringify(face)};
      const data = ${JSON.stringify(join(home, 'data'))};
      mkdirSync(data + '/sales', { recursive: true });
      writeFileSync(data + '/sales/part-00000.csv', 'id\\n1\\n');
      const out = {};
      for (const mode of ['auto', 'none']) {
        const iso = await sb.detectIsolation({ mode, taskUids: '' });
        const { stagingRoot, runtimeDir } = await sb.secureDataRoot(data, iso);
        const area = await sb.prepareJobArea(iso, { stagingRoot, jobId: 'j-' + mode, uid: null, inputs: [data + '/sales/part-00000.csv'] });
        await sb.prepareJobArea(iso, { stagingRoot, jobId: 'j-' + mode, uid: null, inputs: [data + '/sales/part-00000.csv'] });
        const p = sb.taskPaths(iso, area, runtimeDir);
        const l = sb.taskLaunch(iso, area, runtimeDir, ['/bin/sh', '-c', 'id -u; cat ' + p.input + '/part-00000.csv; ls ' + data + ' 2>&1; env | grep -c SECRET'], { memoryMb: 256, addressSpace: true, maxFileBytes: 1e6 });
        const r = spawnSync(l.file, l.args, { env: l.env, cwd: l.cwd, encoding: 'utf8' });
        await sb.removeJobArea(area);
        out[mode] = { bwrap: iso.bwrap, root: iso.root, taskUids: iso.taskUids, describe: iso.describe(), stdout: r.stdout, removed: !existsSync(area.dir) };
      }
      console.log(JSON.stringify(out));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      uid,
      gid: uid,
      cwd: home,
      env: { PATH: '/usr/bin:/bin', HOME: home, GATEHOUSE_SANDBOX_TEST_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = await finish(child);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as Record<'auto' | 'none', { bwrap: boolean; root: boolean; taskUids: unknown; describe: string; stdout: string; removed: boolean }>;
    for (const mode of ['auto', 'none'] as const) {
      expect(out[mode]).toMatchObject({ root: false, taskUids: null, removed: true });
      expect(out[mode].describe).toMatch(/tasks run as the engine's own uid 231099 \(the engine is not root, so there is no per-job uid/);
      expect(out[mode].stdout).toMatch(/^231099\nid\n1\n/);
      expect(out[mode].stdout).toMatch(/\n0\n$/); // the engine's SECRET is not passed on
    }
    expect(out.auto.bwrap).toBe(BWRAP);
    if (BWRAP) expect(out.auto.stdout).toMatch(/No such file or directory/); // the data root is not in the sandbox
    expect(out.none.stdout).toMatch(/\nsales\n/); // without bubblewrap, it reads what the engine reads
  });
});

describe.skipIf(!BWRAP)('bubblewrap mode', () => {
  let area: JobArea;
  beforeAll(async () => {
    area = await newJob(boxed, 'boxed', ['part-00000.csv']);
  });
  afterAll(async () => {
    if (!area) return;
    await removeJobArea(area);
  });

  it('shows the task /usr, its /job folders and nothing of the host', async () => {
    const r = await runTask(boxed, area, sh(`ls /; echo --; ls /job; echo --; ls /job/in; echo --; ls /etc; echo --; ls "${base}" "${dataRoot}" "${stagingRoot}" 2>&1; ls /proc | grep -c '^[0-9]'`));
    const [root, job, input, etc, rest] = r.stdout.split('--\n').map((s) => s.trim().split('\n'));
    expect(root).toEqual(['bin', 'dev', 'etc', 'job', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr'].filter((d) => d !== 'lib64' || existsSync('/lib64')));
    expect(job).toEqual(['in', 'out', 'runtime', 'work']);
    expect(input).toEqual(['part-00000.csv']);
    expect(etc!.every((e) => ['alternatives', 'ld.so.cache', 'ssl'].includes(e))).toBe(true);
    expect(rest!.filter((l) => l.includes('No such file')).length).toBe(3);
    expect(Number(rest!.at(-1))).toBeLessThan(6); // its own pid namespace: bwrap's init, sh, ls, grep
  });

  it('has no network: the engine port on 127.0.0.1 is out of reach', async () => {
    const script = `import socket\nfor host in ("127.0.0.1", "1.1.1.1"):\n  try:\n    socket.create_connection((host, ${serverPort}), timeout=2)\n    print(host, "connected")\n  except OSError as e:\n    print(host, type(e).__name__)`;
    const r = await runTask(boxed, area, [PYTHON, '-c', script]);
    expect(r.stdout).not.toContain('connected');
    expect(r.stdout).toMatch(/127\.0\.0\.1 ConnectionRefusedError/);
    expect(r.stdout).toMatch(/1\.1\.1\.1 OSError/); // ENETUNREACH: no route, only a loopback of its own
  });

  it('keeps the sandbox root, /dev and the inputs read-only, and sizes /tmp', async () => {
    const r = await runTask(boxed, area, sh('touch /x 2>&1; touch /dev/x 2>&1; touch /job/in/x 2>&1; touch /job/out/ok && echo out-ok; { head -c 2000000 /dev/zero > /tmp/fill; } 2>&1; echo tmp=$?'), { memoryMb: 1, addressSpace: false });
    expect(r.stdout).toMatch(/'\/x': Read-only file system/);
    expect(r.stdout).toMatch(/'\/dev\/x': Read-only file system/);
    expect(r.stdout).toMatch(/'\/job\/in\/x': Read-only file system/);
    expect(r.stdout).toContain('out-ok');
    expect(r.stdout).toMatch(/No space left on device[\s\S]*tmp=1/);
  });
});

/** Pids of the live (not zombie) processes of `uid`, optionally only those named `name`. */
async function liveProcesses(uid: number, name?: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
      if (field('Uid').split(/\s+/)[0] !== String(uid) || field('State').startsWith('Z')) continue;
      if (name !== undefined && field('Name') !== name) continue;
      pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids.sort((x, y) => x - y);
}
