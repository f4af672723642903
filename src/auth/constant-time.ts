// Comparing secrets without telling an attacker, through timing, how much of their guess was right:
// both sides are hashed first, so even the lengths compare in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}
