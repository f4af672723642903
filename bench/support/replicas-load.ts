// The replicas bench's load: real HTTPS POST /v1/jobs with each user's own token, spread over a
// world's gateways in turn (as a load balancer would), every answer required to be the decision the
// workload is built for (201, pending). The jobs a round queued are cancelled after its clock stops,
// so every round meets the same short queues.
import type { Gateway, World } from './replicas-world.js';

export interface RoundResult {
  /** Decisions answered per second over the round. */
  perSecond: number;
  /** Each submission's latency, ms, sorted. */
  latencies: number[];
}

export interface RoundOptions {
  submissions: number;
  /**
   * Submissions in flight at once. Worker k's j-th submission is user k + j * concurrency's (mod the
   * users): with as many workers as users each keeps to one user, alone, one at a time walks all.
   */
  concurrency: number;
  /** A round that takes longer is broken, not slow. */
  limitMs: number;
  /** Opened when the round's clock starts, closed when it stops (before the cancels). */
  window?: { open(): void; close(): void };
}

export async function submitRound(world: World, gateways: readonly Gateway[], o: RoundOptions): Promise<RoundResult> {
  const users = [...world.tokens.keys()];
  const queued: { user: string; id: string }[] = [];
  const latencies: number[] = [];
  let sent = 0;
  let failed = false;
  o.window?.open();
  const started = performance.now();
  const deadline = started + o.limitMs;
  const worker = async (k: number): Promise<void> => {
    for (let j = 0; !failed && sent < o.submissions; j++) {
      const user = users[(k + j * o.concurrency) % users.length]!;
      const token = world.tokens.get(user)!;
      const gateway = gateways[sent % gateways.length]!;
      sent += 1;
      const t0 = performance.now();
      const answer = await gateway.call('POST', '/v1/jobs', token, world.spec());
      latencies.push(performance.now() - t0);
      const created = answer.status === 201 ? (JSON.parse(answer.body) as { id: string; state: string }) : null;
      if (created?.state !== 'pending') throw new Error(`POST /v1/jobs as ${user} answered ${answer.status} ${answer.body.slice(0, 300)}; the workload expects 201 pending`);
      queued.push({ user, id: created.id });
      if (performance.now() > deadline) throw new Error(`a round of ${o.submissions} submissions took over ${o.limitMs / 1000} s`);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, (_, k) => worker(k)));
  } catch (err) {
    failed = true;
    throw err;
  }
  const seconds = (performance.now() - started) / 1000;
  o.window?.close();
  await cancelAll(world, gateways, queued);
  latencies.sort((a, b) => a - b);
  return { perSecond: o.submissions / seconds, latencies };
}

/** Cancels the round's pending jobs (off the clock), a few at a time, through the same gateways. */
async function cancelAll(world: World, gateways: readonly Gateway[], jobs: { user: string; id: string }[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const { user, id } = jobs[i]!;
      const answer = await gateways[i % gateways.length]!.call('DELETE', `/v1/jobs/${id}`, world.tokens.get(user));
      if (answer.status !== 200) throw new Error(`DELETE /v1/jobs/${id} answered ${answer.status} ${answer.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** The p-th percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('percentile of no values');
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}
