// What a test process hands on to a child it starts: its descriptors past stderr without close-on-exec
// (vitest's own, say). A worker's descriptors are checked against these, so the test's are not blamed
// on the sandbox.
import { readdirSync, readFileSync } from 'node:fs';

/** This process's descriptors past stderr without close-on-exec: what it was handed and passes on. */
export function inheritedHere(): number[] {
  return readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => {
      try {
        const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
        return fd > 2 && flags !== undefined && (Number.parseInt(flags, 8) & 0o2000000) === 0;
      } catch {
        return false;
      }
    });
}
