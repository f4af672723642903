// Job ids the gateway hands out: `j` and 12 hex digits (48 random bits), short enough to type.
// The reconciler cancels a backend job of this shape that has no live record (ours, orphaned by a
// request that never got its answer); other ids on a shared backend are not the gateway's to end.
import { randomBytes } from 'node:crypto';

const GATEWAY_JOB_ID = /^j[0-9a-f]{12}$/;

export function newJobId(): string {
  return `j${randomBytes(6).toString('hex')}`;
}

export function isGatewayJobId(id: string): boolean {
  return GATEWAY_JOB_ID.test(id);
}
