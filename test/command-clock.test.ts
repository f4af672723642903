import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commandStartedAt } from '../src/cli/command-clock.js';

describe("up's banner clock (the command's start, npm's share included)", () => {
  it('outside npm, is this process start', () => {
    expect(commandStartedAt({}, process.ppid)).toBe(performance.timeOrigin);
  });

  it("under npm, reads the parent's start from /proc: not after ours, and not long before", () => {
    // Our own process stands in for the parent: /proc knows when it started, a little before timeOrigin.
    const at = commandStartedAt({ npm_lifecycle_event: 'start' }, process.pid);
    expect(at).toBeLessThanOrEqual(performance.timeOrigin);
    expect(performance.timeOrigin - at).toBeLessThan(2_000);
  });

  it('a process that started long before (pid 1, a login shell) or cannot be read is not the command', () => {
    expect(commandStartedAt({ npm_lifecycle_event: 'start' }, 1)).toBe(performance.timeOrigin);
    expect(commandStartedAt({ npm_lifecycle_event: 'start' }, 2 ** 22 + 7)).toBe(performance.timeOrigin);
  });

  it("the number a child under npm reports is its parent's start", () => {
    const script = `import('${new URL('../dist/src/cli/command-clock.js', import.meta.url).pathname}').then(m => console.log(JSON.stringify({ at: m.commandStartedAt(), own: performance.timeOrigin })))`;
    // The compiled module (the suite's global set-up builds dist/). The shell stands for npm's `sh -c`
    // (its parent, vitest, is no npm): the child's figure must be the shell's start, 0.3 s before its own.
    const out = spawnSync('sh', ['-c', `sleep 0.3; ${process.execPath} -e "$0"`, script], {
      env: { ...process.env, npm_lifecycle_event: 'start' },
      encoding: 'utf8',
    });
    if (out.status !== 0) throw new Error(out.stderr);
    const { at, own } = JSON.parse(out.stdout) as { at: number; own: number };
    expect(own - at).toBeGreaterThanOrEqual(250);
  });
});
