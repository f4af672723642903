// Request ids ordered by time (the UUIDv7 layout of RFC 9562: 48 bits of milliseconds, then random
// bits): the audit trail indexes them, and ids that grow keep that index appending at its end
// instead of touching a random page per event.
import { randomBytes } from 'node:crypto';

export function timeOrderedId(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70; // version 7
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
