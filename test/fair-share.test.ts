import { describe, expect, it } from 'vitest';
import { fairShare } from '../src/compute/jobs/fair-share.js';

const job = (id: string, user: string, seq: number, wants: number) => ({ id, user, seq, wants });

describe('fair share of engine slots', () => {
  it('splits slots evenly between users whatever the order of arrival', () => {
    const share = fairShare(4, [job('a1', 'alice', 1, 4), job('b1', 'bob', 2, 4)]);
    expect(Object.fromEntries(share)).toEqual({ a1: 2, b1: 2 });
  });

  it('counts a user’s jobs together: two jobs of one user do not get twice the share', () => {
    const share = fairShare(4, [job('a1', 'alice', 1, 4), job('a2', 'alice', 2, 4), job('b1', 'bob', 3, 4)]);
    expect(share.get('b1')).toBe(2);
    expect(share.get('a1')! + share.get('a2')!).toBe(2);
    expect(share.get('a1')).toBe(2); // within a user, the older job first
  });

  it('gives what one user cannot use to the others', () => {
    const share = fairShare(8, [job('a1', 'alice', 1, 1), job('b1', 'bob', 2, 16)]);
    expect(Object.fromEntries(share)).toEqual({ a1: 1, b1: 7 });
  });

  it('never hands out more than the slots or more than a job wants', () => {
    const share = fairShare(3, [job('a1', 'alice', 1, 2), job('b1', 'bob', 2, 2), job('c1', 'carol', 3, 0)]);
    expect([...share.values()].reduce((a, b) => a + b, 0)).toBe(3);
    expect(share.get('c1')).toBe(0);
    expect(share.get('a1')).toBeLessThanOrEqual(2);
  });

  it('breaks ties by age: with one slot the older job gets it', () => {
    expect(Object.fromEntries(fairShare(1, [job('b1', 'bob', 5, 2), job('a1', 'alice', 3, 2)]))).toEqual({ a1: 1, b1: 0 });
  });
});
