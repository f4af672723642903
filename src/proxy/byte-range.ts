// One `Range: bytes=…` of RFC 9110 §14, against a partition of `size` bytes. What is not a single
// byte range (several ranges, another unit, a malformed value) is ignored, as the RFC allows: the
// whole partition is served. A range that starts past the end cannot be satisfied (416).
export type RangeAnswer = { start: number; end: number } | 'whole' | 'unsatisfiable';

export function byteRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return 'whole';
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (m === null || (m[1] === '' && m[2] === '')) return 'whole';
  if (m[1] === '') {
    // The last N bytes.
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return 'whole'; // invalid: ignored
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}
