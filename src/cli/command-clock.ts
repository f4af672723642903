// When the command the person typed started, so `up`'s banner reports the wall clock they waited.
// Under `npm start` that is npm's own process, which spent its share before we ran: npm runs the
// script through `sh -c`, so it is our parent's parent (or our parent, without the shell). Linux
// gives a process's start in /proc (clock ticks since boot), read against the time since boot
// (/proc/uptime, to the hundredth of a second). Elsewhere, or if /proc cannot be read, the start of
// this process (performance.timeOrigin), a slight undercount.
import { readFileSync } from 'node:fs';

// USER_HZ is 100 on every Linux architecture Node runs on (the kernel fixes it for user space).
const TICKS_PER_SECOND = 100;

interface Proc {
  comm: string;
  ppid: number;
  /** Epoch milliseconds. */
  startedAt: number;
}

function proc(pid: number): Proc {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: fields count after its ')'.
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[19]);
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  if (!Number.isFinite(ticks) || !Number.isFinite(uptime)) throw new Error(`cannot read the start of process ${pid}`);
  return { comm, ppid: Number(fields[1]), startedAt: Date.now() - (uptime - ticks / TICKS_PER_SECOND) * 1000 };
}

export function commandStartedAt(env: NodeJS.ProcessEnv = process.env, ppid = process.ppid): number {
  const own = performance.timeOrigin;
  if (!env.npm_lifecycle_event) return own;
  try {
    let command = proc(ppid);
    if (/^(sh|dash|bash)$/.test(command.comm)) {
      const above = proc(command.ppid);
      if (above.comm.startsWith('npm')) command = above;
    }
    // A process that started long before us (a shell, a supervisor) is not "the command": keep our own.
    return command.startedAt <= own && own - command.startedAt < 30_000 ? command.startedAt : own;
  } catch {
    return own;
  }
}
