// What several benches' worlds share: the demo policies with the bench user's quota lifted (the
// figure is the path's cost, not a quota wait), and one JSON call to the gateway as that user.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { type Agent, request } from 'node:https';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/version.js';

/** Copies policies/ into `dir`/policies with no quota for user:bench; returns that folder. */
export function unboundedBenchPolicies(dir: string): string {
  const policies = join(dir, 'policies');
  cpSync(join(PACKAGE_ROOT, 'policies'), policies, { recursive: true });
  const lifted = ['max_concurrent_jobs, 100000', 'max_cores, 100000', 'max_memory_mb, 100000000', 'core_hours_per_day, 100000'].map((l) => `p2, user:bench, ${l}`);
  writeFileSync(join(policies, 'policy.csv'), `${readFileSync(join(policies, 'policy.csv'), 'utf8')}\n${lifted.join('\n')}\n`);
  return policies;
}

/** One request to the gateway with a bearer token; the body, if any, sent as JSON. */
export function gatewayCall(at: { url: string; agent: Agent; token: string }, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${at.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const req = request(new URL(path, at.url), { method, agent: at.agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
