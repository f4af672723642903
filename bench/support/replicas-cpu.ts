// Where the CPU went during a round, from /proc: each process of the bench's worlds (a process and
// its children, so PostgreSQL's backends count with their server), the bench's own client, and the
// whole machine, so a round that other work on the host slowed down says so. Linux only; anything
// unreadable counts as 0 rather than failing a measurement.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux architecture Node runs on

export interface CpuSources {
  /** label → the root pid of a process tree. */
  trees: Record<string, number>;
}

export interface CpuWindow {
  /** Cores used, by label, over the window's wall time; also `client` (this process) and `other` (the rest of the machine). */
  cores: Record<string, number>;
  /** Cores of the machine busy over the window, all processes. */
  busy: number;
  cpus: number;
}

export class CpuClock {
  private started: { at: number; trees: Record<string, number>; client: number; machine: { busy: number; total: number } } | null = null;
  private last: CpuWindow | null = null;

  constructor(private readonly sources: () => CpuSources) {}

  open(): void {
    this.started = { at: performance.now(), trees: this.trees(), client: clientSeconds(), machine: machine() };
  }

  close(): void {
    const s = this.started;
    if (s === null) return;
    const wall = (performance.now() - s.at) / 1000;
    const trees = this.trees();
    const m = machine();
    const cpus = m.cpus;
    const busy = (m.busy - s.machine.busy) / TICKS_PER_SECOND / wall;
    const cores: Record<string, number> = {};
    for (const [label, seconds] of Object.entries(trees)) cores[label] = (seconds - (s.trees[label] ?? seconds)) / wall;
    cores.client = (clientSeconds() - s.client) / wall;
    cores.other = Math.max(0, busy - Object.values(cores).reduce((a, b) => a + b, 0));
    this.last = { cores, busy, cpus };
    this.started = null;
  }

  /** The last window closed, as one line: `gateway-a 0.91, postgres 0.55, ..., machine 1.97/2 cores busy`. */
  describe(): string {
    const w = this.last;
    if (w === null) return 'no CPU window measured';
    const parts = Object.entries(w.cores).map(([label, c]) => `${label} ${c.toFixed(2)}`);
    return `cores used: ${parts.join(', ')}; machine ${w.busy.toFixed(2)}/${w.cpus} busy`;
  }

  private trees(): Record<string, number> {
    const { trees } = this.sources();
    const children = childrenByParent();
    const out: Record<string, number> = {};
    for (const [label, pid] of Object.entries(trees)) out[label] = treeSeconds(pid, children);
    return out;
  }
}

function clientSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Busy and total ticks of all CPUs since boot (/proc/stat's first line), and how many CPUs. */
function machine(): { busy: number; total: number; cpus: number } {
  try {
    const lines = readFileSync('/proc/stat', 'utf8').split('\n');
    const ticks = lines[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0); // idle + iowait
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
    return { busy: total - idle, total, cpus: lines.filter((l) => /^cpu\d+ /.test(l)).length };
  } catch {
    return { busy: 0, total: 0, cpus: 0 };
  }
}

interface Stat {
  ppid: number;
  /** utime + stime, and cutime + cstime: children that ended and were waited for. */
  seconds: number;
}

function stat(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' '); // the name may hold spaces
    const n = (i: number) => Number(fields[i - 3]);
    return { ppid: n(4), seconds: (n(14) + n(15) + n(16) + n(17)) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

function childrenByParent(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s === null) continue;
    const list = map.get(s.ppid);
    if (list === undefined) map.set(s.ppid, [Number(entry)]);
    else list.push(Number(entry));
  }
  return map;
}

function treeSeconds(pid: number, children: Map<number, number[]>): number {
  const own = stat(pid)?.seconds ?? 0;
  return own + (children.get(pid) ?? []).reduce((sum, child) => sum + treeSeconds(child, children), 0);
}
