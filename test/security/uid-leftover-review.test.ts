// orphan39, as a process a dead engine left running as a task uid. An engine killed together with its
// launcher (one process group SIGKILL, the OOM killer) leaves whatever of its launch chains had not
// yet set its parent-death signal (launcher-orphan-review shows that window; it is microseconds wide,
// and a group SIGKILL of an engine as its workers started left nothing in 6 tries here, so the survivor is started by the
// test as that uid directly: a job uid's process in a session of its own that no engine will end). With
// engine.sandbox none a real survivor sees the host's file system through permissions as this one does
// (its pid namespace aside). A job restored after the restart had its uid's processes killed;
// a uid given fresh did not, so the next job of another person given the uid shared it with the
// survivor, which read that job's files. Now the engine kills every process of its range as it opens.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { killRangeLeftovers, killUidProcesses, UidPool } from '../../src/compute/sandbox/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { EngineClient, type EngineProcess, startEngineProcess } from '../support/engine.js';
import { type Sandbox, sandbox } from '../support/gatehouse.js';
import { liveProcesses } from '../support/uid-processes.js';
import { until } from '../support/until.js';

const ROOT = process.getuid?.() === 0;
const PYTHON = '/usr/bin/python3';
// No other suite's (launcher suites 2340xx-2342xx, engine-root 232xxx, stacks 300000+). The neighbour
// engine's range starts where this one's ends: two engines side by side, as two sites would run them.
const RANGE = { first: 234300, last: 234309 };
const NEIGHBOUR = { first: 234310, last: 234319 };
const UNCLEARABLE = 234330;

interface Planted {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A python process running as `uid` (and its gid), no groups, in a session of its own. */
function asUid(uid: number, script: string, args: string[] = []): Planted {
  const child = spawn('/usr/bin/setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--no-new-privs', '--', PYTHON, '-c', script, ...args], {
    detached: true,
    cwd: '/',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, out: () => out, exited };
}

// The survivor: holds a file open in its session, and reads whatever path the test names (a job's
// area path is not a secret the uid keeps: the point here is that the uid no longer separates jobs).
const SURVIVOR = `
import os, sys, time
held = open("/proc/self/status")
print("ready", flush=True)
while True:
    try:
        path = open(sys.argv[1]).read().strip()
    except OSError:
        path = ""
    if path:
        try:
            print("read:" + open(path).read().strip(), flush=True)
        except OSError as e:
            print("refused:" + e.strerror, flush=True)
        break
    time.sleep(0.02)
time.sleep(600)
`;
const SLEEPER = 'import time\nprint("ready", flush=True)\ntime.sleep(600)\n';

// A job that leaves a secret in its work folder (0600, its uid's), says it is ready, waits for go,
// then writes the uid it ran as.
const HOLDER = [
  '/bin/sh',
  '-c',
  'umask 077; echo "$1" > "$HOME/secret"; touch "$HOME/ready"; while [ ! -e "$HOME/go" ]; do sleep 0.05; done; printf "k\\n%s\\n" "$(id -u)" > "$0"',
  '{output}',
];
const holder = (name: string, secret: string): JobSpec => ({
  name,
  input: 'seed',
  output: name,
  runtime: 'command',
  argv: [...HOLDER, secret],
  resources: { cores: 1, memory_mb: 256, time_limit_s: 120 },
  partitions: [0],
  max_attempts: 1,
});

async function seeded(range: { first: number; last: number }): Promise<Sandbox> {
  const box = sandbox({ engine: { slots: 2, sandbox: 'none', task_uids: `${range.first}-${range.last}`, spare_sandboxes: false } });
  await writeDataset(join(box.dir, 'data'), 'seed', { format: 'csv', columns: ['k'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'k\n1\n', rows: 1 }] });
  return box;
}

describe.skipIf(!ROOT)('a process a dead engine left as a task uid never meets the next job given that uid', () => {
  let box: Sandbox;
  let neighbourBox: Sandbox;
  let engine: EngineProcess | undefined;
  let neighbour: EngineProcess | undefined;
  let client: EngineClient;
  let neighbourClient: EngineClient;
  let talk = '';
  let neighbourJob = '';
  const planted: Planted[] = [];
  let survivor: Planted;
  let spareUid: Planted;
  let below: Planted;

  const ready = (p: Planted) => until(() => p.out().includes('ready'), 30_000, `a process as uid ${p.child.pid} ready`);
  const alive = async (uid: number) => (await liveProcesses(uid)).length > 0;

  beforeAll(async () => {
    box = await seeded(RANGE);
    neighbourBox = await seeded(NEIGHBOUR);
    talk = await mkdtemp(join(tmpdir(), 'gh-uid-leftover-'));
    await chmod(talk, 0o755);
    writeFileSync(join(talk, 'path'), '', { mode: 0o644 });

    // The neighbour engine runs a job of its own, held until the test lets it go.
    neighbour = await startEngineProcess(neighbourBox);
    neighbourClient = new EngineClient(neighbour.url, join(neighbourBox.dir, 'certs'));
    neighbourJob = await neighbourClient.submit(holder('neighbour_out', 'neighbour'), { user: 'bob' });
    await until(() => existsSync(join(neighbourBox.dir, 'data', '.staging', neighbourJob, 'work', 'ready')), 60_000, "the neighbour engine's job running");

    // What the dead engine left: a survivor of mallory's job as the range's first uid (the next fresh
    // take's), one as its last (a spare's, taken from the top), and, outside the range, one just below it.
    survivor = asUid(RANGE.first, SURVIVOR, [join(talk, 'path')]);
    spareUid = asUid(RANGE.last, SLEEPER);
    below = asUid(RANGE.first - 1, SLEEPER);
    planted.push(survivor, spareUid, below);
    for (const p of planted) await ready(p);

    // The engine starts again on its state and data.
    engine = await startEngineProcess(box);
    client = new EngineClient(engine.url, join(box.dir, 'certs'));
  }, 180_000);

  afterAll(async () => {
    for (const p of planted) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await engine?.stop();
    await neighbour?.stop();
    for (const uid of [RANGE.first, RANGE.last, RANGE.first - 1]) await killUidProcesses(uid);
    box?.remove();
    neighbourBox?.remove();
    if (talk) await rm(talk, { recursive: true, force: true });
  });

  it("alice's job given the survivor's uid: the survivor is gone before it starts and reads nothing of hers", async () => {
    const secret = `alice-${process.pid}-${Date.now()}`;
    const id = await client.submit(holder('alice_out', secret), { user: 'alice' });
    const work = join(box.dir, 'data', '.staging', id, 'work');
    await until(() => existsSync(join(work, 'ready')), 60_000, "alice's job running");
    // The survivor is told where her secret is; it answers, or it is dead.
    writeFileSync(join(talk, 'path'), join(work, 'secret'));
    const gone = () => survivor.child.exitCode !== null || survivor.child.signalCode !== null;
    const outcome = await until(() => /^(read|refused):.*$/m.exec(survivor.out())?.[0] ?? (gone() ? `exited by ${survivor.child.signalCode ?? survivor.child.exitCode}` : undefined), 30_000, 'the survivor reading, or its end');
    expect(outcome).not.toContain(secret);
    expect(outcome).toBe('exited by SIGKILL');
    writeFileSync(join(work, 'go'), '');
    const status = await client.waitFor(id);
    expect(status.state).toBe('succeeded');
    // She was given the uid the survivor had: the lowest of the range.
    expect(readFileSync(join(box.dir, 'data', 'alice_out', 'part-00000.csv'), 'utf8')).toBe(`k\n${RANGE.first}\n`);
  }, 120_000);

  it("ends every process of its range (a spare's uid too), and nothing of another engine's range or outside it", async () => {
    expect(await spareUid.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await alive(RANGE.last)).toBe(false);
    // Just below the range: untouched.
    expect(below.child.exitCode === null && below.child.signalCode === null).toBe(true);
    expect(await alive(RANGE.first - 1)).toBe(true);
    // The neighbour engine's job lived through this engine's start, and ends as it would have.
    expect(await alive(NEIGHBOUR.first)).toBe(true);
    writeFileSync(join(neighbourBox.dir, 'data', '.staging', neighbourJob, 'work', 'go'), '');
    const status = await neighbourClient.waitFor(neighbourJob);
    expect(status.state).toBe('succeeded');
    expect(readFileSync(join(neighbourBox.dir, 'data', 'neighbour_out', 'part-00000.csv'), 'utf8')).toBe(`k\n${NEIGHBOUR.first}\n`);
  }, 120_000);

  it('withholds a uid a process still holds after every kill: no job is given it or restored to it', async () => {
    // root's process acting as the uid (effective only): `kill -1` as the uid cannot reach it.
    const code = `process.seteuid(${UNCLEARABLE}); console.log('ready'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await until(() => out.includes('ready'), 30_000, 'a process of root acting as the uid');
      const range = { first: UNCLEARABLE, last: UNCLEARABLE + 1 };
      const held = await killRangeLeftovers(range);
      expect(held).toEqual([UNCLEARABLE]);
      const pool = new UidPool(range);
      for (const uid of held) pool.withhold(uid);
      expect(pool.free).toBe(1);
      expect(pool.take('a')).toBe(UNCLEARABLE + 1);
      expect(() => pool.take('b')).toThrow(/held by running jobs or withheld \(1\)/);
      expect(() => pool.restore('c', UNCLEARABLE)).toThrow(/withheld/);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
