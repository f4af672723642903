// A module resolve hook that appends every resolved URL to $TRACE_OUT: which modules a command loads.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (process.env.TRACE_OUT) appendFileSync(process.env.TRACE_OUT, `${resolved.url}\n`);
  return resolved;
}
