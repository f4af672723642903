// A closed-loop load generator over HTTPS keep-alive: `concurrency` workers each send the next
// request as soon as theirs is answered. Shared by the benchmarks that compare a route through the
// gateway with the same answer from something simpler.
import { type Agent, get } from 'node:https';

export interface LoadOptions {
  agent: Agent;
  url: URL;
  headers?: Record<string, string>;
  concurrency: number;
  requests: number;
  /** A round that takes longer is broken, not slow. */
  limitMs: number;
  timeoutMs: number;
}

/**
 * Answered requests per second. The client shares the event loop with in-process servers, so its
 * cost is in both figures of a comparison: the ratio understates the overhead, while
 * 1/value - 1/baseline_value is the time per request.
 */
export async function throughput(o: LoadOptions): Promise<number> {
  let sent = 0;
  let failed = false;
  const started = performance.now();
  const deadline = started + o.limitMs;
  const worker = async (): Promise<void> => {
    while (!failed && sent < o.requests) {
      sent++;
      await drained(o);
      if (performance.now() > deadline) {
        throw new Error(`a round of ${o.requests} requests to ${o.url.host} took over ${o.limitMs / 1000} s`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, worker));
  } catch (err) {
    failed = true; // stops the other workers after their current request
    throw err;
  }
  return o.requests / ((performance.now() - started) / 1000);
}

/** One GET that must answer 200; the body is drained, not parsed, as a load generator would. */
export function drained(o: Pick<LoadOptions, 'agent' | 'url' | 'headers' | 'timeoutMs'>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get(o.url, { agent: o.agent, headers: o.headers, timeout: o.timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${o.url.href} answered ${res.statusCode}`));
        return;
      }
      res.on('error', reject);
      res.on('end', resolve);
      res.resume();
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${o.url.href} timed out after ${o.timeoutMs} ms`)));
    req.on('error', reject);
  });
}
