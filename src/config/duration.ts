// Lifetimes in configuration are written for people (15m, 12h, 7d) and used in seconds.
export const DURATION_PATTERN = '^[1-9][0-9]{0,8}(s|m|h|d)$';

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

export function durationSeconds(text: string): number {
  const match = /^([1-9][0-9]{0,8})(s|m|h|d)$/.exec(text);
  if (!match) throw new Error(`not a duration: ${JSON.stringify(text)} (expected a number and s, m, h or d, e.g. 15m)`);
  return Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
}
