// Completion is pushed, not polled: the engine's GET /events tells the gateway of each job change as
// it happens. The gateway here polls once a minute and reuses a status for a minute, so a job's end
// seen through GET /v1/jobs/:id within the test's wait can only have come from the stream; the
// engine's request log shows the gateway did not ask. Also: only the gateway's certificate opens
// the stream, a cut stream resumes from its last change without a gap, and after an engine restart
// the gateway reconnects and catches up.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { engineClient } from '../src/proxy/engine-client.js';
import { watchEngineEvents } from '../src/proxy/engine-events.js';
import type { JobSpec, JobStatus } from '../src/wire/index.js';
import { clientCertificate } from './support/client-cert.js';
import { EngineClient } from './support/engine.js';
import { fetchTls } from './support/https.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';
import { GATED, releaseGated } from './support/gated-job.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
/** Far below the gateway's poll and status reuse (a minute each): an end seen within it was pushed. */
const PUSHED_WITHIN_MS = 30_000;

let stack: Stack;
let token = '';
let outputs = 0;

function spec(source: string): JobSpec {
  outputs += 1;
  return { name: 't', input: 'scratch/tiny', output: `scratch/pushed-${outputs}`, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };
}

const view = async (id: string) => (await stack.api(`/v1/jobs/${id}`, token)).json<{ state: string; partitions: { done: number } }>();
const waitView = (id: string, state: string, timeoutMs: number) =>
  until(async () => ((await view(id)).state === state ? true : undefined), timeoutMs, `job ${id} ${state} through the gateway`);
/** How often the engine has been asked about jobs by the gateway (its request log): polls, not pushes. */
const asked = (id: string) => stack.engine.output().split('\n').filter((l) => l.includes('"url":"/jobs?active=1"') || l.includes(`"url":"/jobs/${id}"`)).length;

const release = (id: string) => releaseGated(stack.dataRoot, id);

/** A job admitted through the gateway and seen running there. */
async function runningGated(): Promise<string> {
  const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(GATED) });
  expect(answer.status, answer.body).toBe(201);
  const { id } = answer.json<{ id: string }>();
  await waitView(id, 'running', PUSHED_WITHIN_MS);
  return id;
}

beforeAll(async () => {
  stack = await Stack.start({ config: { jobs: { poll_ms: 60_000, status_cache_ms: 60_000 }, engine: { slots: 4 } } });
  const rows = (p: number) => ({ text: `id,word\n${[1, 2, 3].map((r) => `${p * 3 + r},w${r}`).join('\n')}\n`, rows: 3 });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows(0), rows(1)] });
  token = await stack.login('alice');
  // A job kept live throughout, and the gateway restarted with it: its reconciler's first pass finds
  // a live job, so the next is a minute away (not the idle cadence of a few seconds) for the whole suite.
  await runningGated();
  await stack.gateway.stop();
  await stack.startGateway();
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

describe("the engine's job stream", () => {
  it('is opened only with the gateway’s client certificate', async () => {
    const ca = stack.ca;
    await expect(fetchTls(`${stack.engine.url}/events`, { ca, timeoutMs: 5000 })).rejects.toThrow(/certificate required|handshake|socket hang up|ECONNRESET/i);
    const other = clientCertificate(stack.certsDir, { CN: 'alice', OU: 'users' });
    const refused = await fetchTls(`${stack.engine.url}/events`, { ca, ...other, timeoutMs: 5000 });
    expect(refused.status).toBe(403);
    expect(refused.json()).toEqual({ error: 'forbidden', message: 'the engine serves only the gateway' });
    const lookalike = clientCertificate(stack.certsDir, { CN: 'gateway', OU: 'users' });
    expect((await fetchTls(`${stack.engine.url}/events`, { ca, ...lookalike, timeoutMs: 5000 })).status).toBe(403);
  });

  it('shows a job’s end through GET /v1/jobs/:id without a poll: the engine pushed it', async () => {
    const id = await runningGated();
    const polled = asked(id);
    await release(id);
    await waitView(id, 'succeeded', PUSHED_WITHIN_MS);
    expect(asked(id), stack.engine.output().split('\n').filter((l) => l.includes('"url":"/jobs')).slice(-6).join('\n')).toBe(polled); // the gateway never asked the engine about it meanwhile
    // The record is written before job.finish is appended (JobBook.end): the view can say succeeded first.
    const finish = await until(() => stack.auditEvents().find((e) => e.action === 'job.finish' && e.object === `job:${id}`), PUSHED_WITHIN_MS, `job.finish of ${id} on the trail`);
    expect(finish).toMatchObject({ decision: 'allow', details: { state: 'succeeded', rows_out: 6 } });
  });

  it('resumes a cut stream from its last change: what happened meanwhile is replayed, not missed', async () => {
    const tls = { ca: stack.ca, cert: readFileSync(join(stack.certsDir, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(stack.certsDir, 'gateway-client.key'), 'utf8') };
    const url = new URL(stack.engine.url);
    const engine = engineClient({ host: url.hostname, port: Number(url.port), tls });
    const seen: JobStatus[] = [];
    const froms: ({ epoch: string; after: number } | null)[] = [];
    let gaps = 0;
    let current: IncomingMessage | null = null;
    let gate: Promise<void> = Promise.resolve();
    let open: () => void = () => {};
    const watch = watchEngineEvents({
      open: async (from) => {
        froms.push(from);
        await gate;
        current = await engine.events(from);
        return current;
      },
      onStatus: async (s) => void seen.push(s),
      onGap: () => void (gaps += 1),
      log: { warn: () => {}, error: () => {} },
    });
    try {
      await until(() => watch.connected, 10_000, 'the stream open');
      expect(gaps).toBe(1); // a first connection: whatever came before is caught up by asking
      gate = new Promise((resolve) => (open = resolve));
      current!.destroy(); // the connection is lost
      await until(() => !watch.connected && froms.length === 2, 10_000, 'the stream seen lost and a reconnect under way');
      const direct = new EngineClient(stack.engine.url, stack.certsDir);
      const s = spec(COPY);
      const id = await direct.submit(s);
      await direct.waitFor(id); // it ran and ended while nothing listened
      open();
      const ended = await until(() => seen.find((x) => x.id === id && x.state === 'succeeded'), 10_000, () => `the replayed end (${JSON.stringify({ froms, gaps, seen: seen.map((x) => [x.id, x.state]), connected: watch.connected })})`);
      expect(ended.partitions).toMatchObject({ total: 2, done: 2 });
      expect(seen.filter((x) => x.id === id).map((x) => x.state)).toContain('running');
      expect(froms[1]).toEqual({ epoch: expect.any(String), after: expect.any(Number) });
      expect(gaps).toBe(1); // resumed: nothing to catch up
      // Another epoch (the engine restarted) or a number it never gave cannot be replayed: the hello says so.
      for (const from of [{ epoch: '0000', after: 0 }, { epoch: froms[1]!.epoch, after: 99_999_999 }]) {
        const res = await engine.events(from);
        const [first] = await once(createInterface({ input: res }), 'line');
        res.destroy();
        expect(JSON.parse(first as string)).toMatchObject({ type: 'hello', resumed: false });
      }
    } finally {
      open();
      await watch.close();
      engine.close();
    }
  });

  it('reconnects after an engine restart and catches up: the end is seen without waiting for a poll', async () => {
    const id = await runningGated();
    const logged = stack.gateway.output().length;
    await stack.engine.stop('SIGKILL');
    await until(() => stack.gateway.output().slice(logged).includes('engine job stream lost'), 10_000, 'the gateway seeing its stream lost');
    await stack.startEngine();
    // Its area is made again by the restarted engine: released only once that one runs it.
    await new EngineClient(stack.engine.url, stack.certsDir).waitFor(id, (s) => s.state === 'running' && s.workers > 0, 30_000);
    await release(id);
    // Within far less than a poll: from the new stream, or the catch-up its first hello asks for (another epoch).
    await waitView(id, 'succeeded', PUSHED_WITHIN_MS);
  });
});
