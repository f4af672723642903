// Descriptors the engine was handed open by whoever started it. Node and libuv open every descriptor
// of their own close-on-exec (and Node marks its parent's first few so as it starts), but one further
// up without it (a supervisor's, a shell's `exec 40<>file`, a CI runner's pipe) stays open in every
// process the engine starts: setpriv, prlimit and bubblewrap close nothing, so each task, whatever its
// uid and its sandbox, held it. The engine closes them once, at its start, before any task exists.
import { closeSync, readdirSync, readFileSync } from 'node:fs';

/** O_CLOEXEC as /proc/<pid>/fdinfo's `flags` shows it (octal; Linux on every architecture we run on). */
const O_CLOEXEC = 0o2000000;

/** Closes every descriptor past stderr that is not close-on-exec; the numbers closed (none where /proc cannot tell). */
export function closeInheritedDescriptors(): number[] {
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return [];
  }
  const closed: number[] = [];
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    let flags: number;
    try {
      const match = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (match === null) continue;
      flags = Number.parseInt(match[1]!, 8);
    } catch {
      continue; // the listing's own descriptor, closed since
    }
    if ((flags & O_CLOEXEC) !== 0) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return closed;
}
