// Where one submission's time goes inside the gateway: `node dist/bench/submit-timeline.js [N]` (after
// `npm run build`). Uses jobs.bench's world (a real engine process, the gateway in this process) and
// submits N jobs one at a time, each left to finish, alternating with N straight to the engine; prints
// the median offset (ms from the client's send) of each step of the gateway's submissions, and the
// direct median. A profiling tool, not a bench row: its steps are the gateway's classes' methods,
// wrapped here, and the HTTP events of node:diagnostics_channel. Run it on a quiet machine. Once the
// job channel is open (after the first submission) submissions are frames, not HTTP requests: no
// `engine POST /jobs` marks then; the handover's end is the engine's answer plus the record's fsync.
// With the held handover the engine is sent a prepare before the audit commit and a release after it;
// on the embedded store the answer waits for job.submit, the record's fsync (written beside the
// commit) and the prepare's answer (`prepare asked ... ends`), not for the release, whose end then
// often comes after `done` and is missing from those submissions' marks (session 36).
import { subscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { Agent } from 'node:https';
import { TokenService } from '../src/auth/tokens.js';
import { HeldEvents } from '../src/proxy/held-events.js';
import { JobBook } from '../src/proxy/job-book.js';
import { JobDatasets } from '../src/proxy/job-datasets.js';
import { JobRecords } from '../src/proxy/job-records.js';
import { JobService } from '../src/proxy/job-service.js';
import type { JobSpec } from '../src/wire/index.js';
import { benchmarks } from './jobs.bench.js';
import { gatewayCall } from './support/gateway-calls.js';

/** What of jobs.bench's world this needs. */
interface World {
  gateway: { url: string };
  gatewayAgent: Agent;
  token: string;
  direct: { submit(s: JobSpec): Promise<string>; waitFinal(id: string, intervalMs: number): Promise<unknown> };
}

type Marks = Record<string, number>;
let t0 = 0;
/** The submission through the gateway being timed, if any. */
let current: Marks | null = null;
const mark = (step: string) => {
  if (current !== null && !(step in current)) current[step] = performance.now() - t0;
};

function wrap(proto: object, method: string, step: string): void {
  const target = proto as Record<string, (...args: unknown[]) => unknown>;
  const original = target[method];
  if (typeof original !== 'function') throw new Error(`no method ${method} to time`);
  target[method] = function (this: unknown, ...args: unknown[]) {
    mark(`${step} begins`);
    const result = original.apply(this, args);
    if (result instanceof Promise) return result.finally(() => mark(`${step} ends`));
    mark(`${step} ends`);
    return result;
  };
}

wrap(TokenService.prototype, 'verifyAccess', 'authentication');
wrap(JobService.prototype, 'submit', 'submit()');
wrap(JobDatasets.prototype, 'forSubmit', 'datasets decided');
wrap(JobBook.prototype, 'admit', 'admission');
wrap(HeldEvents.prototype, 'flush', 'audit group commit');
wrap(JobRecords.prototype, 'insert', 'record insert (its fsync on the thread pool)');
wrap(JobBook.prototype, 'prepare', 'prepare asked (the held handover; sent next in the check phase)');
wrap(JobBook.prototype, 'handOver', 'handover (release, or ticket and request)');
subscribe('http.server.request.start', () => mark('the gateway sees the request'));
subscribe('http.server.response.finish', () => mark('the gateway has answered'));
const outgoing = (name: string) => (message: unknown) => {
  const { method, path } = (message as { request: ClientRequest }).request;
  if (method === 'POST' && path === '/jobs') mark(`engine POST /jobs ${name}`);
  if (method === 'GET' && path.startsWith('/datasets')) mark(`engine catalog listing ${name}`);
};
subscribe('http.client.request.start', outgoing('sent'));
subscribe('http.client.response.finish', outgoing('answered'));

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
let outputs = 0;
const spec = (): JobSpec => ({ name: 'bench', input: 'scratch/bench-in', output: `scratch/timeline-out-${++outputs}`, runtime: 'python', source: COPY, resources: { cores: 1, memory_mb: 256, time_limit_s: 600 } });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const n = Number(process.argv[2] ?? 30);
const bench = benchmarks.find((b) => b.name === 'gateway-submit')!;
const w = (await bench.setup!()) as World;
const timed: Marks[] = [];
const direct: number[] = [];
try {
  for (let i = 0; i <= n; i++) {
    current = {};
    t0 = performance.now();
    const answer = await gatewayCall({ url: w.gateway.url, agent: w.gatewayAgent, token: w.token }, 'POST', '/v1/jobs', spec());
    current.done = performance.now() - t0;
    if (answer.status !== 201) throw new Error(`POST /v1/jobs answered ${answer.status}: ${answer.text}`);
    if (i > 0) timed.push(current); // the first pays for warming up
    current = null;
    await w.direct.waitFinal((JSON.parse(answer.text) as { id: string }).id, 10);
    const d0 = performance.now();
    const id = await w.direct.submit(spec());
    if (i > 0) direct.push(performance.now() - d0);
    await w.direct.waitFinal(id, 10);
  }
} finally {
  await bench.teardown?.(w);
}
const steps = [...new Set(timed.flatMap((m) => Object.keys(m)))].map((step) => {
  const seen = timed.map((m) => m[step]).filter((v): v is number => v !== undefined);
  return { step, ms: median(seen), seen: seen.length };
});
steps.sort((a, b) => a.ms - b.ms);
for (const s of steps) process.stdout.write(`${s.step.padEnd(36)} ${s.ms.toFixed(3).padStart(9)} ms  (in ${s.seen} of ${timed.length})\n`);
process.stdout.write(`${'straight to the engine'.padEnd(36)} ${median(direct).toFixed(3).padStart(9)} ms\n`);
