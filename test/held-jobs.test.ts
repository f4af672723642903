// The engine's table of held (prepared, not admitted) jobs, on an injected clock: only the connection
// that prepared a job takes it, once; a job held past the bound is dropped, so a late release finds
// nothing (and the gateway submits the job whole); a connection's end drops its jobs and no other's.
import { describe, expect, it } from 'vitest';
import { type DropReason, HeldJobs } from '../src/compute/held-jobs.js';
import type { PreparedJob } from '../src/compute/jobs/intake.js';

const prepared = (job: string): PreparedJob => ({ claims: { job } } as unknown as PreparedJob);

function table() {
  let now = 1_000;
  const dropped: [string, DropReason][] = [];
  const held = new HeldJobs({ boundMs: 10_000, now: () => now, drop: (j, why) => dropped.push([j.claims.job, why]) });
  return { held, dropped, advance: (ms: number) => (now += ms) };
}

describe('held jobs', () => {
  it('are taken once, by the connection that holds them', () => {
    const { held, dropped } = table();
    const a = {};
    const b = {};
    const job = prepared('j-1');
    held.hold(a, job);
    expect(held.take(b, 'j-1')).toBeUndefined();
    expect(held.drop(b, 'j-1')).toBe(false);
    expect(held.take(a, 'j-2')).toBeUndefined();
    expect(held.take(a, 'j-1')).toBe(job);
    expect(held.take(a, 'j-1')).toBeUndefined();
    expect(dropped).toEqual([]);
  });

  it('past the bound are dropped, on the next touch or sweep; a release then finds nothing', () => {
    const { held, dropped, advance } = table();
    const a = {};
    held.hold(a, prepared('j-late'));
    held.hold(a, prepared('j-swept'));
    advance(9_999);
    held.sweep();
    expect(held.size).toBe(2);
    advance(1);
    expect(held.take(a, 'j-late')).toBeUndefined();
    expect(dropped).toEqual([
      ['j-late', 'held past its bound'],
      ['j-swept', 'held past its bound'],
    ]);
    expect(held.size).toBe(0);
  });

  it("a connection's end drops its own jobs, not another's; a drop lets one go", () => {
    const { held, dropped } = table();
    const a = {};
    const b = {};
    held.hold(a, prepared('j-a1'));
    held.hold(a, prepared('j-a2'));
    held.hold(b, prepared('j-b'));
    held.dropAll(a);
    expect(dropped).toEqual([
      ['j-a1', 'its channel ended'],
      ['j-a2', 'its channel ended'],
    ]);
    expect(held.drop(b, 'j-b')).toBe(true);
    expect(dropped.at(-1)).toEqual(['j-b', 'dropped by the gateway']);
    expect(held.size).toBe(0);
  });
});
