// Job ids: `j` and 12 hex digits from the CSPRNG (job-id.ts), the shape the reconciler recognises as ours.
import { describe, expect, it } from 'vitest';
import { isGatewayJobId, newJobId } from '../src/proxy/job-id.js';

describe('a new job id', () => {
  it('has the gateway shape and does not repeat', () => {
    const ids = Array.from({ length: 5000 }, () => newJobId());
    for (const id of ids) expect(isGatewayJobId(id), id).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('varies in every one of its 12 digits (no fixed UUID version or variant digit among them)', () => {
    const seen = Array.from({ length: 12 }, () => new Set<string>());
    for (let i = 0; i < 2000; i++) {
      const digits = newJobId().slice(1);
      for (let k = 0; k < digits.length; k++) seen[k]!.add(digits[k]!);
    }
    for (const digits of seen) expect(digits.size).toBeGreaterThan(8);
  });
});
