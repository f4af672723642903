// When the command the person typed started, so `up`'s banner reports the wall clock they waited.
// Under `npm start` that is npm's own process (our parent), which spent its share before we ran:
// Linux gives its start time in /proc (clock ticks since boot, plus the boot time). Elsewhere, or if
// /proc cannot be read, the start of this process (performance.timeOrigin), a slight undercount.
import { readFileSync } from 'node:fs';

// USER_HZ is 100 on every Linux architecture Node runs on (the kernel fixes it for user space).
const TICKS_PER_SECOND = 100;

export function commandStartedAt(env: NodeJS.ProcessEnv = process.env, ppid = process.ppid): number {
  const own = performance.timeOrigin;
  if (!env.npm_lifecycle_event) return own;
  try {
    const stat = readFileSync(`/proc/${ppid}/stat`, 'utf8');
    // Field 22 (starttime); the command name (field 2) may hold spaces, so count after its ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const boot = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1];
    if (!Number.isFinite(ticks) || !boot) return own;
    const parent = Number(boot) * 1000 + (ticks / TICKS_PER_SECOND) * 1000;
    // A parent that started long before us (a shell, a supervisor) is not "the command": keep our own.
    return parent <= own && own - parent < 30_000 ? parent : own;
  } catch {
    return own;
  }
}
