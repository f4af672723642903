// What one submission through the gateway costs in counts that a shared machine does not change:
// `node dist/bench/submit-profile.js [N]` (after `npm run build`). Uses jobs.bench's world (a real
// engine process, the gateway in this process), submits N jobs one at a time (each left to finish
// outside the measured window) and prints, per submission, from the client's send to its answer:
// the gateway process's CPU time (every thread: the event loop, the audit writer, the client too),
// the event loop's busy time, the requests to the engine by route, async resources created by kind
// (promises ~ awaits, ticks, immediates: turns; fs and crypto requests: thread-pool hops), and
// messages to the audit writer thread. fsyncs are counted from outside:
//   SUBMIT_PROFILE_PAUSE=1 node dist/bench/submit-profile.js 30 &   # prints its pid, waits for SIGUSR2
//   strace -f -tt -e trace=fsync,fdatasync,statx,newfstatat,access -o trace.txt -p <pid> & kill -USR2 <pid>
//   awk '/submit-profile-start/{on=1} /submit-profile-end/{on=0} on && /fsync|fdatasync/' trace.txt | wc -l
// (the engine is another process, started before the attach, so only the gateway's fsyncs count;
// each window is cut by a failing look-up of /nonexistent/submit-profile-start and -end).
import { createHook } from 'node:async_hooks';
import { existsSync, writeFileSync } from 'node:fs';
import { subscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { Agent } from 'node:https';
import { performance } from 'node:perf_hooks';
import { MessagePort, Worker } from 'node:worker_threads';
import type { JobSpec } from '../src/wire/index.js';
import { benchmarks } from './jobs.bench.js';
import { gatewayCall } from './support/gateway-calls.js';

interface World {
  gateway: { url: string };
  gatewayAgent: Agent;
  token: string;
  direct: { waitFinal(id: string, intervalMs: number): Promise<unknown> };
}

const counts = new Map<string, number>();
let measuring = false;
const count = (what: string) => {
  if (measuring) counts.set(what, (counts.get(what) ?? 0) + 1);
};
createHook({
  init: (_id, type) => {
    count(`async ${type}`);
    // SUBMIT_PROFILE_STACK=<kind> prints where each resource of that kind is made (e.g. SIGNREQUEST).
    if (measuring && process.env.SUBMIT_PROFILE_STACK === type) process.stdout.write(`${new Error(type).stack}\n`);
  },
}).enable();
subscribe('http.client.request.start', (message) => {
  const { method, path } = (message as { request: ClientRequest }).request;
  count(`engine ${method} ${path.replace(/\?.*/, '?…').replace(/\/j-[0-9a-z-]+/, '/:id')}`);
});
for (const proto of [Worker.prototype, MessagePort.prototype] as unknown as Record<string, (...a: unknown[]) => unknown>[]) {
  const post = proto.postMessage!;
  proto.postMessage = function (this: unknown, ...args: unknown[]) {
    count('postMessage to a thread');
    return post.apply(this, args);
  };
}

// A TLS connection made (a handshake): by tls.connect, which https.Agent calls for every new socket.
const tlsModule = (await import('node:tls')).default as unknown as Record<string, (...a: unknown[]) => unknown>;
const connect = tlsModule.connect!;
tlsModule.connect = function (this: unknown, ...args: unknown[]) {
  count('tls.connect (a new connection and handshake)');
  return connect.apply(this, args);
};

/** A failing stat of a path that names the moment, for a syscall trace to cut the submissions' windows out by. */
const mark = (what: string) => existsSync(`/nonexistent/submit-profile-${what}`);

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
let outputs = 0;
const spec = (): JobSpec => ({ name: 'bench', input: 'scratch/bench-in', output: `scratch/profile-out-${++outputs}`, runtime: 'python', source: COPY, resources: { cores: 1, memory_mb: 256, time_limit_s: 600 } });

const n = Number(process.argv[2] ?? 30);
const bench = benchmarks.find((b) => b.name === 'gateway-submit')!;
const w = (await bench.setup!()) as World;
const submit = async (): Promise<string> => {
  const answer = await gatewayCall({ url: w.gateway.url, agent: w.gatewayAgent, token: w.token }, 'POST', '/v1/jobs', spec());
  if (answer.status !== 201) throw new Error(`POST /v1/jobs answered ${answer.status}: ${answer.text}`);
  return (JSON.parse(answer.text) as { id: string }).id;
};
/** The measured windows, µs of the monotonic clock (a --cpu-prof profile's own timestamps): SUBMIT_PROFILE_WINDOWS=file writes them. */
const windows: [bigint, bigint][] = [];
let cpuUs = 0;
let busyMs = 0;
let wallMs = 0;
try {
  await w.direct.waitFinal(await submit(), 10); // warm-up, not counted
  if (process.env.SUBMIT_PROFILE_PAUSE === '1') {
    process.stdout.write(`pid ${process.pid}: attach now, then kill -USR2 ${process.pid}\n`);
    await new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve()));
  }
  for (let i = 0; i < n; i++) {
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    mark('start');
    const w0 = process.hrtime.bigint();
    measuring = true;
    const id = await submit();
    measuring = false;
    windows.push([w0 / 1000n, process.hrtime.bigint() / 1000n]);
    mark('end');
    wallMs += performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    cpuUs += cpu.user + cpu.system;
    busyMs += performance.eventLoopUtilization(elu0).active;
    await w.direct.waitFinal(id, 10);
  }
} finally {
  await bench.teardown?.(w);
}
if (process.env.SUBMIT_PROFILE_WINDOWS) writeFileSync(process.env.SUBMIT_PROFILE_WINDOWS, JSON.stringify(windows.map(([a, b]) => [Number(a), Number(b)])));
const per = (x: number) => (x / n).toFixed(2).padStart(9);
process.stdout.write(`${n} submissions through the gateway, per submission (client included):\n`);
process.stdout.write(`${'wall ms (mean)'.padEnd(44)} ${per(wallMs)}\n`);
process.stdout.write(`${'process CPU ms (all threads)'.padEnd(44)} ${per(cpuUs / 1000)}\n`);
process.stdout.write(`${'event loop busy ms'.padEnd(44)} ${per(busyMs)}\n`);
for (const [what, c] of [...counts].sort((a, b) => b[1] - a[1])) process.stdout.write(`${what.padEnd(44)} ${per(c)}\n`);
