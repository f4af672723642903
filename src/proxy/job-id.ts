// Job ids the gateway hands out: `j` and 12 hex digits (48 random bits), short enough to type.
// The reconciler cancels a backend job of this shape that has no live record (ours, orphaned by a
// request that never got its answer); other ids on a shared backend are not the gateway's to end.
import { randomUUID } from 'node:crypto';

const GATEWAY_JOB_ID = /^j[0-9a-f]{12}$/;

/**
 * The first 12 hex digits of a random (v4) UUID: 48 bits from the CSPRNG, drawn from node's buffered
 * pool of them (randomBytes(6) asked the kernel on every submission, about ten times the cost).
 */
export function newJobId(): string {
  const u = randomUUID();
  return `j${u.slice(0, 8)}${u.slice(9, 13)}`;
}

export function isGatewayJobId(id: string): boolean {
  return GATEWAY_JOB_ID.test(id);
}
