// The engine as root WITHOUT bubblewrap (engine.sandbox: none, forced here: bwrap is installed on
// this machine and in CI). Two unprivileged jobs working together must not make the root engine
// write or read a host file (the seal/commit link race, run for real many times), must not reach
// each other or the host over the network, and must leave nothing (SysV IPC, /run/lock, /tmp) to the
// next job given the same uid. Every attack here is made by real task uids through a real engine.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitOutput, writeDataset } from '../../src/compute/catalog/index.js';
import { detectIsolation, findWorldWritable, type Isolation, killUidProcesses, parseUidRange, prepareJobArea, removeJobArea, SandboxError, sealJobOutput, secureDataRoot, taskLaunch, UidPool } from '../../src/compute/sandbox/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { EngineClient, type EngineProcess, startEngineProcess } from '../support/engine.js';
import { type Sandbox, sandbox } from '../support/gatehouse.js';
import { until } from '../support/until.js';

const ROOT = process.getuid?.() === 0;
const PYTHON = '/usr/bin/python3';
const SECRET_LINE = `root_only_${randomBytes(6).toString('hex')}`;
const SENTINEL_TEXT = `${SECRET_LINE}\nthe second line of a file only root may read\n`;
const RACES = 15;
const DIRECT_RACES = 30;
const resources = { cores: 1, memory_mb: 256, time_limit_s: 60 };

const cmd = (name: string, output: string, script: string, args: string[] = [], extra: Partial<JobSpec> = {}): JobSpec => ({
  name,
  input: 'seed',
  output,
  runtime: 'command',
  argv: [PYTHON, '-c', script, '{output}', ...args],
  resources,
  partitions: [0],
  max_attempts: 1,
  ...extra,
});

// Job A: writes its partition, opens its out/ to everyone, and slows the seal with many files.
const OPENER = `
import os, sys
out = sys.argv[1]
folder = os.path.dirname(out)
with open(out, "w") as f:
    f.write("c1,c2\\n1,2\\n")
try:
    os.chmod(folder, 0o777)
    print("chmod out/ 0777: allowed")
except OSError as e:
    print("chmod out/ 0777: refused", e.strerror)
for i in range(300):
    try:
        with open(os.path.join(folder, "zz-%04d" % i), "w") as f:
            f.write("x")
    except OSError:
        break
`;

// Job B: waits until the engine has handed A's first partition to root (the seal is under way),
// then plants _dataset.json as a link to the sentinel and swaps the partition for one; says what it
// could do in its own output. It stops when the test drops a file named stop in its work/.
const PLANTER = `
import errno, os, sys, time
out, a_out, sentinel = sys.argv[1:4]
stop = os.path.join(os.environ["HOME"], "stop")
open(os.path.join(os.environ["HOME"], "ready"), "w").close()
seen = set()
acted = []
while not os.path.exists(stop):
    try:
        st = os.lstat(a_out + "/part-00000.csv")
    except OSError as e:
        seen.add("lstat:" + errno.errorcode[e.errno])
        time.sleep(0.001)
        continue
    seen.add("lstat:ok")
    if st.st_uid != 0:
        continue
    for what, act in (
        ("plant", lambda: os.symlink(sentinel, a_out + "/_dataset.json")),
        ("swap", lambda: (os.symlink(sentinel, a_out + "/.swap"), os.rename(a_out + "/.swap", a_out + "/part-00000.csv"))),
    ):
        try:
            act()
            acted.append(what + ":done")
        except OSError as e:
            acted.append(what + ":" + errno.errorcode[e.errno])
    break
with open(out, "w") as f:
    f.write("what\\n" + "\\n".join(sorted(seen) + acted) + "\\n")
`;

describe.skipIf(!ROOT)('the engine as root without bubblewrap', () => {
  let box: Sandbox;
  let engine: EngineProcess;
  let client: EngineClient;
  let data: string;
  let sentinel: string;
  // A world-writable folder of the host's (like Ubuntu's /var/crash), there before the engine starts.
  const shared = `/var/gh-test-ww-${randomBytes(6).toString('hex')}`;
  // And one opened without the sticky bit (a shared tools folder someone chmod 777-ed): read-only to tasks.
  const tools = `/opt/gh-test-ro-${randomBytes(6).toString('hex')}`;

  const staging = (job: string, ...rest: string[]) => join(data, '.staging', job, ...rest);

  async function submit(spec: JobSpec): Promise<string> {
    return client.submit(spec);
  }

  async function outputText(name: string): Promise<string> {
    const dir = join(data, name);
    return readdirSync(dir)
      .filter((f) => f.startsWith('part-'))
      .sort()
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('');
  }

  beforeAll(async () => {
    box = sandbox({ engine: { slots: 4, sandbox: 'none', task_uids: '232000-232099' } });
    data = join(box.dir, 'data');
    await writeDataset(data, 'seed', { format: 'csv', columns: ['k'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'k\n1\n', rows: 1 }] });
    sentinel = join(box.dir, 'root-only.txt');
    await writeFile(sentinel, SENTINEL_TEXT, { mode: 0o600 });
    await mkdir(shared);
    await chmod(shared, 0o1777);
    await mkdir(tools, { recursive: true });
    await writeFile(join(tools, 'tool.txt'), 'a shared tool\n');
    await chmod(tools, 0o777);
    engine = await startEngineProcess(box);
    client = new EngineClient(engine.url, join(box.dir, 'certs'));
  });

  afterAll(async () => {
    await engine?.stop();
    box?.remove();
    await rm(shared, { recursive: true, force: true });
    await rm(tools, { recursive: true, force: true });
  });

  it('says at start-up, loudly, that tasks run without bubblewrap and how they are contained', async () => {
    expect(engine.output()).toMatch(/"level":40[^\n]*without bubblewrap/);
    const health = (await client.request('GET', '/healthz')).json<{ isolation?: string }>();
    expect(health.isolation).toMatch(/no bubblewrap.*network, IPC, pid and mount namespaces/i);
  });

  it(`never writes or reads a host file through links a second job plants during the seal (${RACES} real races)`, async () => {
    const before = await stat(sentinel);
    const outcomes: string[] = [];
    for (let i = 0; i < RACES; i++) {
      const aJob = `race-a-${i}`;
      const planter = await submit(cmd(`planter-${i}`, `planted_${i}`, PLANTER, [staging(aJob, 'out'), sentinel]));
      await until(async () => (existsSync(staging(planter, 'work', 'ready')) ? true : undefined), 30_000, `planter ${i} ready`);
      await client.submit(cmd(`opener-${i}`, `opened_${i}`, OPENER), { job: aJob });
      const a = await client.waitFor(aJob);
      await writeFile(staging(planter, 'work', 'stop'), '').catch(() => undefined); // it may have ended by itself
      const b = await client.waitFor(planter);

      // The sentinel is untouched, and its content is in no answer and no dataset.
      expect(await readFile(sentinel, 'utf8')).toBe(SENTINEL_TEXT);
      expect(JSON.stringify(a)).not.toContain(SECRET_LINE);
      expect(b.state).toBe('succeeded');
      const planted = await outputText(`planted_${i}`);
      expect(a.state, `race ${i}: ${a.error} / planter saw ${planted}`).toBe('succeeded');
      const manifest = readFileSync(join(data, `opened_${i}`, '_dataset.json'), 'utf8');
      expect(manifest).not.toContain(SECRET_LINE);
      expect(JSON.parse(manifest)).toMatchObject({ columns: ['c1', 'c2'], partitions: [{ file: 'part-00000.csv', rows: 1, bytes: 10 }] });
      expect(readdirSync(join(data, `opened_${i}`)).sort()).toEqual(['_dataset.json', 'part-00000.csv']);
      // A could not open its out/ to others, and B never reached it.
      expect(await client.logs(aJob)).toMatch(/chmod out\/ 0777: refused/);
      expect(planted).not.toMatch(/lstat:ok|plant:|swap:/);
      outcomes.push(planted.split('\n').slice(1).join(' ').trim());
    }
    const after = await stat(sentinel);
    expect([after.mtimeMs, after.size, after.mode & 0o777, after.uid]).toEqual([before.mtimeMs, before.size, 0o600, 0]);
    for (const o of outcomes) expect(o).toMatch(/^lstat:(ENOENT|EACCES)$/);
  }, 180_000);

  it('gives each task a network of its own: no connection to another job, nor to the host', async () => {
    const server: Server = createServer((s) => s.end('host port\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const hostPort = (server.address() as { port: number }).port;
    try {
      const LISTENER = `
import os, socket, sys, time
s = socket.socket()
try:
    s.bind(("127.0.0.1", 0)); s.listen(5)
    port = s.getsockname()[1]
except OSError as e:
    port = "none-" + str(e.errno)
with open(os.path.join(os.environ["HOME"], "port.tmp"), "w") as f:
    f.write(str(port))
os.rename(os.path.join(os.environ["HOME"], "port.tmp"), os.path.join(os.environ["HOME"], "port"))
stop = os.path.join(os.environ["HOME"], "stop")
while not os.path.exists(stop):
    time.sleep(0.01)
open(sys.argv[1], "w").write("k\\n" + str(port) + "\\n")
`;
      const listener = await submit(cmd('listener', 'net_listener', LISTENER));
      const port = await until(async () => (existsSync(staging(listener, 'work', 'port')) ? readFileSync(staging(listener, 'work', 'port'), 'utf8') : undefined), 30_000, 'listener port');
      const CONNECTOR = `
import errno, socket, sys
rows = []
for name, port in (("job", sys.argv[2]), ("host", sys.argv[3])):
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
        rows.append(name + ":connected")
    except (OSError, ValueError) as e:
        rows.append(name + ":" + (errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)))
open(sys.argv[1], "w").write("what\\n" + "\\n".join(rows) + "\\n")
`;
      const connector = await client.waitFor(await submit(cmd('connector', 'net_connector', CONNECTOR, [/^\d+$/.test(port) ? port : '1', String(hostPort)])));
      await writeFile(staging(listener, 'work', 'stop'), '');
      expect((await client.waitFor(listener)).state).toBe('succeeded');
      expect(connector.state).toBe('succeeded');
      const seen = await outputText('net_connector');
      expect(seen).not.toContain('connected');
      expect(seen).toMatch(/job:(ENETUNREACH|ECONNREFUSED)/);
      expect(seen).toMatch(/host:(ENETUNREACH|ECONNREFUSED)/);
    } finally {
      server.close();
    }
  });

  it('leaves nothing of a job (SysV shared memory, /run/lock, /tmp, /dev/shm) to the next job with its uid', async () => {
    const LEAVE = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
shmid = libc.shmget(0x6a6f6221, 4096, 0o1000 | 0o666)   # IPC_CREAT, readable by all
names = []
for d in ("/run/lock", "/tmp", "/dev/shm", "/var/tmp"):
    p = os.path.join(d, "gh-left-%d" % os.getuid())
    try:
        with open(p, "w") as f:
            f.write("left behind")
        os.chmod(p, 0o644)
        names.append(d)
    except OSError:
        pass
open(sys.argv[1], "w").write("what\\nuid:%d\\nshm:%d\\n%s\\n" % (os.getuid(), shmid, "\\n".join("wrote:" + n for n in names)))
`;
    const FIND = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
rows = ["uid:%d" % os.getuid()]
rows.append("shm:%d" % libc.shmget(0x6a6f6221, 0, 0))
with open("/proc/sysvipc/shm") as f:
    rows.append("segments:%d" % (len(f.read().strip().split("\\n")) - 1))
for d in ("/run/lock", "/tmp", "/dev/shm", "/var/tmp"):
    if os.path.exists(os.path.join(d, "gh-left-%d" % os.getuid())):
        rows.append("found:" + d)
open(sys.argv[1], "w").write("what\\n" + "\\n".join(rows) + "\\n")
`;
    const first = await client.waitFor(await submit(cmd('leave', 'leftovers_1', LEAVE)));
    expect(first.state).toBe('succeeded');
    const left = await outputText('leftovers_1');
    const uid = Number(/uid:(\d+)/.exec(left)![1]);
    expect(left).toMatch(/shm:\d+/); // the segment was made
    expect(left).toMatch(/wrote:\/tmp/);
    // Nothing of it on the host once the job has ended...
    const hostShm = readFileSync('/proc/sysvipc/shm', 'utf8').split('\n').slice(1).filter((l) => l.trim().split(/\s+/)[7] === String(uid));
    expect(hostShm).toEqual([]);
    for (const d of ['/run/lock', '/tmp', '/dev/shm', '/var/tmp']) expect(existsSync(join(d, `gh-left-${uid}`)), d).toBe(false);
    // ...and nothing for the next job given the same uid.
    const second = await client.waitFor(await submit(cmd('find', 'leftovers_2', FIND)));
    expect(second.state).toBe('succeeded');
    const found = await outputText('leftovers_2');
    expect(found).toContain(`uid:${uid}`);
    expect(found).toMatch(/shm:-1/);
    expect(found).toMatch(/segments:0/);
    expect(found).not.toContain('found:');
  });

  it('bounds /tmp, /var/tmp, /dev/shm, /run/lock and the other shared folders together by ONE share of the task (ENOSPC there)', async () => {
    const FILL = `
import errno, os, sys
chunk = b"x" * (1 << 20)
rows = []
total = 0
cap = int(sys.argv[3])   # never more than a share and a bit in one place, wherever it lands
for d in ("/tmp", "/dev/shm", "/var/tmp", "/run/lock", sys.argv[2]):
    n = 0
    try:
        with open(os.path.join(d, "fill"), "wb", buffering=0) as f:
            while n < cap:
                n += f.write(chunk)
        rows.append("%s:%d:cap" % (d, n))
    except OSError as e:
        rows.append("%s:%d:%s" % (d, n, errno.errorcode[e.errno]))
    total += n
open(sys.argv[1], "w").write("what\\n" + "\\n".join(rows) + "\\ntotal:%d\\n" % total)
`;
    const share = resources.memory_mb * 1024 * 1024;
    const status = await client.waitFor(await submit(cmd('fill', 'filled', FILL, [shared, String(share + 4 * 1024 * 1024)])));
    expect(status.state, status.error ?? '').toBe('succeeded');
    const seen = await outputText('filled');
    const total = Number(/total:(\d+)/.exec(seen)![1]);
    // Every place ran out of space (not of file size), and all of them together held about one share, not 4-5.
    for (const d of ['/tmp', '/dev/shm', '/var/tmp', '/run/lock', shared]) expect(seen, d).toMatch(new RegExp(`${d}:\\d+:ENOSPC`));
    expect(total, seen).toBeLessThanOrEqual(share + 2 * 1024 * 1024);
    expect(total, seen).toBeGreaterThan(share - 16 * 1024 * 1024);
  });

  it('makes a world-writable folder found at start-up private to each task, as /tmp is', async () => {
    expect(engine.output()).toContain(shared); // named where the engine says how tasks are contained
    const KEEPER = `
import os, sys, time
mine = os.path.join(sys.argv[2], "note-%d" % os.getuid())
with open(mine, "w") as f:
    f.write("left for the next job")
os.chmod(mine, 0o644)
seen = sorted(os.listdir(sys.argv[2]))
open(os.path.join(os.environ["HOME"], "ready"), "w").close()
stop = os.path.join(os.environ["HOME"], "stop")
while not os.path.exists(stop):
    time.sleep(0.01)
open(sys.argv[1], "w").write("what\\n" + "\\n".join("saw:" + n for n in seen) + "\\n")
`;
    const LOOKER = `
import os, sys
seen = sorted(os.listdir(sys.argv[2]))
open(sys.argv[1], "w").write("what\\nlooked\\n" + "\\n".join("saw:" + n for n in seen) + "\\n")
`;
    const keeper = await submit(cmd('ww-keeper', 'ww_kept', KEEPER, [shared]));
    await until(async () => (existsSync(staging(keeper, 'work', 'ready')) ? true : undefined), 30_000, 'keeper ready');
    // While the first job runs, having written there: nothing on the host, nothing for a second job.
    expect(readdirSync(shared)).toEqual([]);
    const looker = await client.waitFor(await submit(cmd('ww-looker', 'ww_looked', LOOKER, [shared])));
    await writeFile(staging(keeper, 'work', 'stop'), '');
    const kept = await client.waitFor(keeper);
    expect(kept.state, kept.error ?? '').toBe('succeeded');
    expect(looker.state, looker.error ?? '').toBe('succeeded');
    expect(await outputText('ww_kept')).toMatch(/saw:note-\d+/);
    const looked = await outputText('ww_looked');
    expect(looked).toContain('looked');
    expect(looked).not.toContain('saw:');
    // ...and nothing once it has ended, nor for the next job.
    expect(readdirSync(shared)).toEqual([]);
    const after = await client.waitFor(await submit(cmd('ww-after', 'ww_after', LOOKER, [shared])));
    expect(after.state).toBe('succeeded');
    expect(await outputText('ww_after')).not.toContain('saw:');
  });

  it('keeps a world-writable folder without the sticky bit readable but read-only to tasks', async () => {
    expect(engine.output()).toMatch(new RegExp(`${tools}[^"]*read-only`));
    const TRY = `
import errno, os, sys
rows = ["read:" + open(os.path.join(sys.argv[2], "tool.txt")).read().strip().replace(" ", "-")]
for what, act in (("create", lambda: open(os.path.join(sys.argv[2], "left-%d" % os.getuid()), "w").close()),
                  ("remove", lambda: os.unlink(os.path.join(sys.argv[2], "tool.txt")))):
    try:
        act()
        rows.append(what + ":done")
    except OSError as e:
        rows.append(what + ":" + errno.errorcode[e.errno])
open(sys.argv[1], "w").write("what\\n" + "\\n".join(rows) + "\\n")
`;
    const status = await client.waitFor(await submit(cmd('ro-try', 'ro_tried', TRY, [tools])));
    expect(status.state, status.error ?? '').toBe('succeeded');
    const seen = await outputText('ro_tried');
    expect(seen).toContain('read:a-shared-tool');
    expect(seen).toMatch(/create:EROFS/);
    expect(seen).toMatch(/remove:EROFS/);
    expect(readdirSync(tools)).toEqual(['tool.txt']);
  });

  it("shows a task only its own processes", async () => {
    const PS = `
import os, sys
pids = [p for p in os.listdir("/proc") if p.isdigit()]
open(sys.argv[1], "w").write("what\\nmy-pid:%d\\ncount:%d\\n" % (os.getpid(), len(pids)))
`;
    const status = await client.waitFor(await submit(cmd('ps', 'ps_seen', PS)));
    expect(status.state).toBe('succeeded');
    const seen = await outputText('ps_seen');
    expect(seen).toMatch(/my-pid:1\n/);
    expect(Number(/count:(\d+)/.exec(seen)![1])).toBeLessThan(4);
  });
});

// The same race without the engine around it: a second uid plants links through a descriptor on
// the output folder (opened while the folder was open to everyone) the moment the seal hands the
// first partition to root, then the commit runs. Many times, each a fresh folder.
describe.skipIf(!ROOT)('seal and commit against a planted link (direct)', () => {
  const UIDS = '232100-232199';
  let base = '';
  let dataRoot = '';
  let stagingRoot = '';
  let iso: Isolation;
  let sentinel = '';
  let signals = '';
  const pool = new UidPool(parseUidRange(UIDS));
  const attackerUid = 232199;

  const ATTACKER = `
import errno, os, sys, time
out, sentinel, go, stop = sys.argv[1:5]
fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
open(go, "w").close()
acted = []
while not os.path.exists(stop):
    try:
        st = os.lstat("part-00000.csv", dir_fd=fd)
    except OSError:
        continue
    if st.st_uid != 0:
        continue
    for what, act in (
        ("plant", lambda: os.symlink(sentinel, "_dataset.json", dir_fd=fd)),
        ("swap", lambda: (os.symlink(sentinel, ".swap", dir_fd=fd), os.rename(".swap", "part-00000.csv", src_dir_fd=fd, dst_dir_fd=fd))),
    ):
        try:
            act()
            acted.append(what + ":done")
        except OSError as e:
            acted.append(what + ":" + errno.errorcode[e.errno])
    break
print(" ".join(acted))
`;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'gh-engine-root-'));
    await chmod(base, 0o711);
    dataRoot = join(base, 'data');
    await mkdir(dataRoot);
    iso = await detectIsolation({ mode: 'none', taskUids: UIDS });
    ({ stagingRoot } = await secureDataRoot(dataRoot, iso));
    sentinel = join(base, 'root-only.txt');
    await writeFile(sentinel, SENTINEL_TEXT, { mode: 0o600 });
    signals = join(base, 'signals'); // where the attacker says it is ready
    await mkdir(signals);
    await chmod(signals, 0o1777);
  });

  afterAll(async () => {
    await killUidProcesses(attackerUid);
    if (base) await rm(base, { recursive: true, force: true });
  });

  it(`neither writes the manifest through a link nor reads a partition through one (${DIRECT_RACES} races)`, async () => {
    const seen: string[] = [];
    for (let i = 0; i < DIRECT_RACES; i++) {
      const jobId = `direct-${i}`;
      const uid = pool.take(jobId);
      const area = await prepareJobArea(iso, { stagingRoot, jobId, uid, inputs: [] });
      // What the job wrote, as its own uid's files: a partition and many small files that slow the seal.
      const written = ['part-00000.csv', ...Array.from({ length: 200 }, (_, n) => `zz-${String(n).padStart(4, '0')}`)];
      for (const name of written) {
        await writeFile(join(area.output, name), name === 'part-00000.csv' ? 'c1,c2\n1,2\n' : 'x');
        await chown(join(area.output, name), uid, uid);
      }
      await chmod(area.output, 0o777); // the worst case: the folder was open to every uid while the job ran
      const go = join(signals, `go-${i}`);
      const stop = join(signals, `stop-${i}`);
      const attacker = spawn('/usr/bin/setpriv', ['--reuid', String(attackerUid), '--regid', String(attackerUid), '--clear-groups', '--', PYTHON, '-c', ATTACKER, area.output, sentinel, go, stop], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let said = '';
      attacker.stdout.on('data', (d: Buffer) => (said += d.toString()));
      attacker.stderr.on('data', (d: Buffer) => (said += d.toString()));
      const ended = new Promise<void>((r) => attacker.on('close', () => r()));
      await until(async () => (existsSync(go) ? true : undefined), 10_000, 'attacker ready');

      let committed: unknown = null;
      let refused: Error | null = null;
      try {
        const sealed = await sealJobOutput(area);
        const folder = typeof sealed === 'object' && !Array.isArray(sealed) ? (sealed as { folder: string }).folder : area.output;
        committed = await commitOutput(dataRoot, `out_${i}`, {
          folder,
          format: 'csv',
          rows: [1],
          fallbackColumns: ['k'],
          owner: 'alice',
          labels: [],
          producedBy: jobId,
          overwrite: false,
          trash: join(area.dir, 'replaced'),
          sealed: true,
        });
      } catch (err) {
        refused = err as Error;
      }
      await writeFile(stop, '');
      await ended;
      seen.push(said.trim());

      expect(await readFile(sentinel, 'utf8'), `race ${i}: attacker ${said}`).toBe(SENTINEL_TEXT);
      expect(JSON.stringify(committed ?? '')).not.toContain(SECRET_LINE);
      expect(refused?.message ?? '').not.toContain(SECRET_LINE);
      if (committed !== null) {
        expect(readFileSync(join(dataRoot, `out_${i}`, '_dataset.json'), 'utf8')).not.toContain(SECRET_LINE);
        expect(committed).toMatchObject({ columns: ['c1', 'c2'], partitions: [{ file: 'part-00000.csv', rows: 1, bytes: 10 }] });
      }
      await removeJobArea(area);
      pool.release(jobId);
    }
    // Once the seal has begun the folder is root's alone: every late link is refused.
    expect(seen.every((s) => !s.includes(':done')), seen.join(' | ')).toBe(true);
    expect(statSync(sentinel).size).toBe(SENTINEL_TEXT.length);
  }, 180_000);
});

// Removing a job's area as root is an rm -rf of folders tasks wrote: a uid holding a descriptor on
// one of them swaps a subfolder for a link to a root-only folder while the engine deletes. The
// removal must delete the job's tree and nothing through the link.
describe.skipIf(!ROOT)('removing a job area against a swapped link', () => {
  const UIDS = '232300-232399';
  const attackerUid = 232399;
  const REMOVALS = 15;
  let base = '';
  let stagingRoot = '';
  let signals = '';
  let iso: Isolation;
  const pool = new UidPool(parseUidRange(UIDS));

  const SWAPPER = `
import os, sys
sub, victim, go, stop = sys.argv[1:5]
fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
open(go, "w").close()
swaps = 0
while not os.path.exists(stop):
    try:
        os.rename("deep", "deep.real", src_dir_fd=fd, dst_dir_fd=fd)
        os.symlink(victim, "deep", dir_fd=fd)
        os.unlink("deep", dir_fd=fd)
        os.rename("deep.real", "deep", src_dir_fd=fd, dst_dir_fd=fd)
        swaps += 1
    except OSError:
        pass
print(swaps)
`;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'gh-engine-rm-'));
    await chmod(base, 0o711);
    await mkdir(join(base, 'data'));
    iso = await detectIsolation({ mode: 'none', taskUids: UIDS });
    ({ stagingRoot } = await secureDataRoot(join(base, 'data'), iso));
    signals = join(base, 'signals');
    await mkdir(signals);
    await chmod(signals, 0o1777);
  });

  afterAll(async () => {
    await killUidProcesses(attackerUid);
    if (base) await rm(base, { recursive: true, force: true });
  });

  it(`deletes the job's tree and never what a link swapped into it leads to (${REMOVALS} removals)`, async () => {
    for (let i = 0; i < REMOVALS; i++) {
      const jobId = `rm-${i}`;
      const uid = pool.take(jobId);
      const area = await prepareJobArea(iso, { stagingRoot, jobId, uid, inputs: [] });
      // What the job left: work/sub/deep/ with many files, all its own, open to everyone.
      const sub = join(area.work, 'sub');
      await mkdir(join(sub, 'deep'), { recursive: true });
      for (let n = 0; n < 100; n++) await writeFile(join(sub, 'deep', `f${n}`), 'x');
      for (const p of [sub, join(sub, 'deep'), ...Array.from({ length: 100 }, (_, n) => join(sub, 'deep', `f${n}`))]) await chown(p, uid, uid);
      await chmod(sub, 0o777);
      await chmod(join(sub, 'deep'), 0o777);
      const victim = join(base, `victim-${i}`);
      await mkdir(victim, { mode: 0o700 });
      for (let n = 0; n < 100; n++) await writeFile(join(victim, `f${n}`), 'root only');

      const go = join(signals, `go-${i}`);
      const stop = join(signals, `stop-${i}`);
      await chmod(area.work, 0o777); // the worst case: a descriptor on sub/ reached another uid
      const swapper = spawn('/usr/bin/setpriv', ['--reuid', String(attackerUid), '--regid', String(attackerUid), '--clear-groups', '--', PYTHON, '-c', SWAPPER, sub, victim, go, stop], { stdio: ['ignore', 'pipe', 'pipe'] });
      let said = '';
      swapper.stdout.on('data', (d: Buffer) => (said += d.toString()));
      swapper.stderr.on('data', (d: Buffer) => (said += d.toString()));
      const ended = new Promise<void>((r) => swapper.on('close', () => r()));
      await until(async () => (existsSync(go) ? true : undefined), 10_000, 'swapper ready');

      await removeJobArea(area).catch(() => undefined); // a refusal is fine; deleting the victim is not
      await writeFile(stop, '');
      await ended;
      expect(readdirSync(victim).length, `removal ${i} (swapper: ${said.trim()})`).toBe(100);
      expect(existsSync(area.dir), `removal ${i}`).toBe(false);
      pool.release(jobId);
    }
    expect(readdirSync(stagingRoot).filter((n) => n.startsWith('.removing-'))).toEqual([]);
  }, 180_000);

  // A task can nest folders far deeper than PATH_MAX (4096 bytes) by creating each one relative to
  // the last; every full path below that depth is refused by the kernel (ENAMETOOLONG). The removal
  // walks the tree by path, so it stopped there and left the job's files behind for good.
  it('removes a tree a task nested deeper than PATH_MAX', async () => {
    const jobId = 'rm-deep';
    const uid = pool.take(jobId);
    const area = await prepareJobArea(iso, { stagingRoot, jobId, uid, inputs: [] });
    const NEST = `
import os, sys
os.chdir(sys.argv[1])
for i in range(int(sys.argv[2])):
    os.mkdir("d" * 60)
    os.chdir("d" * 60)
    if i % 25 == 0:
        open("f", "w").write("x")
print(int(sys.argv[2]) * 61)
`;
    const made = spawnSync('/usr/bin/setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', PYTHON, '-c', NEST, area.work, '300'], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    expect(Number(made.stdout.trim())).toBeGreaterThan(4096 * 4);
    await removeJobArea(area);
    expect(existsSync(area.dir)).toBe(false);
    expect(readdirSync(stagingRoot).filter((n) => n.startsWith('.removing-'))).toEqual([]);
    pool.release(jobId);
  }, 60_000);
});

describe.skipIf(!ROOT)('choosing the mode as root', () => {
  it('as root without working bubblewrap, auto gives every task its own namespaces and warns; bwrap refuses', async () => {
    const auto = await detectIsolation({ mode: 'auto', taskUids: '232200-232299', bwrapPath: '/nonexistent/bwrap' });
    expect(auto).toMatchObject({ root: true, bwrap: false, namespaces: true });
    expect(auto.warning).toMatch(/without bubblewrap \(bubblewrap not found.*install bubblewrap/s);
    expect(auto.summary).toMatch(/^NO BUBBLEWRAP/);
    const strict = await detectIsolation({ mode: 'bwrap', taskUids: '232200-232299', bwrapPath: '/nonexistent/bwrap' }).catch((e: unknown) => e);
    expect(strict).toBeInstanceOf(SandboxError);
    expect((strict as Error).message).toMatch(/engine\.sandbox is bwrap but bubblewrap not found/);
    const none = await detectIsolation({ mode: 'none', taskUids: '232200-232299' });
    expect(none).toMatchObject({ root: true, bwrap: false, namespaces: true });
    expect(none.warning).toMatch(/without bubblewrap/);
    expect(none.describe()).toMatch(/own network \(loopback only, down\), IPC, pid and mount namespaces/);
  });

  it('finds the world-writable folders in the places it looks, one level deep, without following links', async () => {
    const top = await mkdtemp(join(tmpdir(), 'gh-ww-scan-'));
    try {
      const place = join(top, 'var');
      const open = join(top, 'srv');
      await mkdir(join(place, 'crash'), { recursive: true });
      await mkdir(join(place, 'lib', 'deep'), { recursive: true });
      await mkdir(join(place, 'closed'));
      await mkdir(join(open, 'inner'), { recursive: true });
      await chmod(join(place, 'crash'), 0o1777);
      await chmod(join(place, 'lib', 'deep'), 0o777); // two levels down: not looked at
      await chmod(join(place, 'closed'), 0o755);
      await chmod(open, 0o777);
      await chmod(join(open, 'inner'), 0o777); // inside a folder already found
      await symlink(join(place, 'crash'), join(place, 'link')); // a link to one is not one
      await writeFile(join(place, 'file'), '');
      await chmod(join(place, 'file'), 0o666);
      expect(findWorldWritable([place, open, join(top, 'missing')])).toEqual([
        { path: join(place, 'crash'), sticky: true },
        { path: open, sticky: false },
      ]);
      expect(findWorldWritable(['/tmp', '/run']).map((f) => f.path)).not.toContain('/run/lock'); // covered anyway
    } finally {
      await rm(top, { recursive: true, force: true });
    }
  });

  it('keeps a job area writable when the data root lies in a read-only (world-writable, not sticky) folder', async () => {
    const top = `/opt/gh-test-ro-root-${randomBytes(6).toString('hex')}`;
    await mkdir(join(top, 'data'), { recursive: true });
    await chmod(top, 0o777);
    try {
      const iso = await detectIsolation({ mode: 'none', taskUids: '232200-232299' });
      expect(iso.readOnlyFolders).toContain(top);
      const { stagingRoot, runtimeDir } = await secureDataRoot(join(top, 'data'), iso);
      const area = await prepareJobArea(iso, { stagingRoot, jobId: 'ro-root', uid: 232250, inputs: [] });
      const script = `echo written > ${area.output}/x && cat ${area.output}/x; touch ${top}/nope 2>&1; test -d ${runtimeDir} && echo runtime-seen`;
      const l = taskLaunch(iso, area, runtimeDir, ['/bin/sh', '-c', script], { memoryMb: 64, addressSpace: true, maxFileBytes: 1e6 });
      const r = spawnSync(l.file, l.args, { env: l.env, cwd: l.cwd, encoding: 'utf8' });
      expect(r.stdout).toMatch(/^written\n.*Read-only file system\nruntime-seen\n$/s);
      expect(await readFile(join(area.output, 'x'), 'utf8')).toBe('written\n');
      expect(existsSync(join(top, 'nope'))).toBe(false);
      await removeJobArea(area);
    } finally {
      await rm(top, { recursive: true, force: true });
    }
  });

  it('refuses to start as root without bubblewrap where unshare cannot make the namespaces', async () => {
    const err = await detectIsolation({ mode: 'none', taskUids: '232200-232299', unsharePath: '/nonexistent/unshare' } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxError);
    expect((err as Error).message).toMatch(/root without bubblewrap.*namespaces.*refusing/s);
  });
});
