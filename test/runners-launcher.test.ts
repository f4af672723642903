// The engine's task launcher (src/compute/runners/launcher.ts and launcher.mjs), run for real: tasks
// started in the launcher process with their streams handed back to this one. What it must keep:
// every byte a task writes reaches the engine (also while earlier handovers still wait for their
// acknowledgement), exits and kills as a spawn here gives them, nothing of the launcher's own
// reaches a task, and neither the launcher nor its tasks outlive the engine.
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { LAUNCHER_OPTIONS, launcherArgv, spawnTask, TaskLauncher, type TaskProcess, type WorkerLaunch } from '../src/compute/runners/index.js';
import { until } from './support/until.js';

const SETPRIV = '/usr/bin/setpriv';
// As every task launch starts (sandbox/launch.ts): setpriv --pdeathsig KILL, so a task ends with its parent, the launcher.
const sh = (script: string): WorkerLaunch => ({ file: SETPRIV, args: ['--pdeathsig', 'KILL', '--', '/bin/sh', '-c', script], env: { PATH: '/usr/bin:/bin' }, cwd: '/' });

const launchers: TaskLauncher[] = [];
const pids: number[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  launchers.splice(0);
});

function launcher(): TaskLauncher {
  const l = new TaskLauncher(SETPRIV);
  launchers.push(l);
  return l;
}

/**
 * Past setpriv: its parent-death signal is set (a parent that dies before setpriv runs leaves the task
 * an orphan without one; that window is the launch's, as it was with the engine as the parent).
 */
function pastSetpriv(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'setpriv';
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

interface Ran {
  stdout: string;
  stderr: string;
  channel: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Everything a task wrote on its three streams, and how it ended ('close': exited, streams drained). */
function ran(task: TaskProcess): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const r: Ran = { stdout: '', stderr: '', channel: '', code: null, signal: null };
    const wire = () => {
      task.stdout!.on('data', (d: Buffer) => (r.stdout += d));
      task.stderr!.on('data', (d: Buffer) => (r.stderr += d));
      task.channel!.on('data', (d: Buffer) => (r.channel += d));
    };
    task.once('spawn', wire);
    task.once('error', reject);
    task.once('exit', (code, signal) => {
      r.code = code;
      r.signal = signal;
    });
    task.once('close', () => resolve(r));
  });
}

describe('the task launcher', () => {
  it('hands every byte of many tasks started at once back to the engine, with their exits', async () => {
    const l = launcher();
    // Each handover waits for the one before it to be acknowledged: the last tasks print long before
    // their streams reach this process. Nothing the launcher read meanwhile may be lost.
    const tasks = Array.from({ length: 24 }, (_, i) => ran(l.start(sh(`echo out-${i}; echo err-${i} >&2; echo chan-${i} >&3; exit ${i % 3}`))));
    const results = await Promise.all(tasks);
    for (const [i, r] of results.entries()) expect(r).toEqual({ stdout: `out-${i}\n`, stderr: `err-${i}\n`, channel: `chan-${i}\n`, code: i % 3, signal: null });
  });

  it('carries the channel both ways', async () => {
    const task = launcher().start(sh('read line <&3; echo "got $line" >&3'));
    const result = ran(task);
    await new Promise<void>((r) => task.once('spawn', r));
    task.channel!.write('hello\n');
    expect((await result).channel).toBe('got hello\n');
  });

  it('kills the process group of a task killed while it was still starting', async () => {
    const task = launcher().start(sh('sleep 300 & echo $! >&3; wait'));
    // Its sleep keeps the task's streams open until the whole group is killed: 'close' says it was.
    task.killGroup(); // before its pid is known here
    const r = await ran(task);
    expect(r.signal).toBe('SIGKILL');
    const sleeper = Number(r.channel.trim());
    if (sleeper > 0) await until(() => !alive(sleeper), 10_000, "the task's sleep gone");
  });

  it('reports a launch that cannot start', async () => {
    const task = launcher().start({ ...sh(''), file: '/nonexistent/gatehouse-task', args: [] });
    await expect(ran(task)).rejects.toThrow(/ENOENT/);
  });

  it('gives a task nothing of its own: no descriptor of its channel, no environment', async () => {
    const l = launcher();
    const task = l.start(sh('ls -l /proc/$$/fd | grep -c socket >&3; env >&2; echo ready >&3; exec sleep 300'));
    // Listening from 'spawn' itself: what the task already wrote flows from there.
    let said = '';
    task.once('spawn', () => task.channel!.on('data', (d: Buffer) => (said += d)));
    const result = ran(task);
    await until(() => said.includes('ready'), 10_000, 'the task running');
    const own = readlinkSync(`/proc/${l.pid}/fd/3`); // the launcher's IPC channel (stdio index 3)
    expect(own).toMatch(/^socket:/);
    // Attacker's view: a task holding the launcher's channel could ask it, as the engine's user, for any command.
    const links = readdirSync(`/proc/${task.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${task.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    expect(links).not.toContain(own);
    task.killGroup();
    const r = await result;
    // The same descriptors as a task this process spawns itself (stdout, stderr, its own channel).
    const direct = await ran(spawnTask(sh('ls -l /proc/$$/fd | grep -c socket >&3')));
    expect(r.channel).toBe(`${direct.channel}ready\n`);
    expect(r.stderr.trim().split('\n').sort()).toEqual(['PATH=/usr/bin:/bin', 'PWD=/']);
  });

  it('reports its tasks killed when the launcher is lost, and starts a new one for the next task', async () => {
    const l = launcher();
    const task = l.start(sh('exec sleep 300'));
    const result = ran(task);
    await until(() => task.pid !== undefined && pastSetpriv(task.pid), 10_000, 'the task started');
    const first = l.pid!;
    process.kill(first, 'SIGKILL');
    const r = await result;
    expect(r.signal).toBe('SIGKILL');
    await until(() => !alive(task.pid!), 10_000, 'the task gone with its launcher');
    const again = await ran(l.start(sh('echo again')));
    expect(again.stdout).toBe('again\n');
    expect(l.pid).not.toBe(first);
  });

  it('goes, with its tasks, when the engine is killed -9', async () => {
    // A stand-in engine: a node process starting the launcher as the engine does, asking it for a task.
    const argv = launcherArgv(SETPRIV);
    const code = `const {spawn} = require('node:child_process');
const l = spawn(${JSON.stringify(argv[0])}, ${JSON.stringify(argv.slice(1))}, ${JSON.stringify(LAUNCHER_OPTIONS)});
l.on('message', (m) => { if (m.op === 'spawned') console.log(JSON.stringify({launcher: l.pid, task: m.pid})); });
l.send(${JSON.stringify({ op: 'spawn', id: 1, ...sh('sleep 300') })});
setInterval(() => {}, 1000);`;
    const engine = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    pids.push(engine.pid!);
    const started = JSON.parse(await new Promise<string>((r) => engine.stdout!.once('data', (d: Buffer) => r(d.toString())))) as { launcher: number; task: number };
    pids.push(started.launcher, started.task);
    await until(() => pastSetpriv(started.task), 10_000, 'the task started');
    expect(alive(started.launcher) && alive(started.task)).toBe(true);
    engine.kill('SIGKILL');
    await until(() => !alive(started.launcher), 10_000, 'the launcher gone');
    await until(() => !alive(started.task), 10_000, 'its task gone');
  });
});
