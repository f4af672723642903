// RFC 8785 (JSON Canonicalization Scheme) for the values events hold: object keys sorted by UTF-16
// code units, no whitespace, strings and numbers as ECMAScript's JSON.stringify writes them. An
// auditor can recompute any event's hash with any JCS library; nothing of ours is needed.
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonical JSON has no NaN or Infinity');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${Array.from(value, (v) => canonicalJson(v === undefined ? null : v)).join(',')}]`; // holes are null, as JSON.stringify writes them
  if (typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') return canonicalJson((value as { toJSON(): unknown }).toJSON()); // a Date is its ISO string
  if (typeof value === 'object') {
    const parts: string[] = [];
    for (const key of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined || typeof v === 'function') continue;
      parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`);
    }
    return `{${parts.join(',')}}`;
  }
  throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
}
