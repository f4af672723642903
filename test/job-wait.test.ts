// A person's wait sees the end at once: GET /v1/jobs/:id?wait_s=N&seen=TOKEN is held while the job
// still matches what the caller saw, and answered the moment the gateway applies a change. The
// gateway here polls once a minute and reuses a status for a minute, so an answer that shows the
// end came from the engine's push waking the held request, not from a poll. Also: someone else's
// job is 404 before anything is held, junk is 400, a person holds at most 16 waits (429 beyond),
// and a caller that goes away gives its place back.
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import type { Response } from './support/https.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';
import { GATED, releaseGated } from './support/gated-job.js';

/** Bounds a failing test only: far above a push's few milliseconds, far below the gateway's minute-long poll. */
const WITHIN_MS = 30_000;

interface View {
  id: string;
  state: string;
  seen: string;
  partitions: { done: number; total: number };
}

let stack: Stack;
let alice = '';
let dave = '';
let erin = '';
let outputs = 0;

function spec(): JobSpec {
  outputs += 1;
  return { name: 'w', input: 'scratch/tiny', output: `scratch/waited-${outputs}`, runtime: 'python', source: GATED, resources: { cores: 1, memory_mb: 256, time_limit_s: 300 }, max_attempts: 1 };
}

const view = async (id: string, token = alice, query = '') => {
  const answer = await stack.api(`/v1/jobs/${id}${query}`, token);
  expect(answer.status, answer.body).toBe(200);
  return answer.json<View>();
};

const release = (id: string) => releaseGated(stack.dataRoot, id);

/** A gated job of `token`'s, seen running through the gateway with its partitions planned (it changes no more until released). */
async function running(token = alice): Promise<View> {
  const answer = await stack.api('/v1/jobs', token, { method: 'POST', body: spec() });
  expect(answer.status, answer.body).toBe(201);
  const { id } = answer.json<{ id: string }>();
  return until(async () => {
    const v = await view(id, token);
    // Its partitions planned too: until then its token changes once more without anyone releasing it.
    return v.state === 'running' && v.partitions.total > 0 ? v : undefined;
  }, WITHIN_MS, `job ${id} running`);
}

/** A request the test can hang up on: the answer, and a way to go away before it comes. */
function held(path: string, token: string): { answer: Promise<Response>; hangUp(): void; refused(): boolean } {
  let hangUp = () => {};
  let status = 0;
  const answer = new Promise<Response>((resolve, reject) => {
    const req = request(`${stack.url}${path}`, { ca: stack.ca, agent: false, headers: { authorization: `Bearer ${token}` }, timeout: 60_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        status = res.statusCode ?? 0;
        resolve({ status, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
      });
    });
    req.on('error', reject);
    req.end();
    hangUp = () => {
      req.on('error', () => undefined);
      req.destroy();
      resolve({ status: 0, headers: {}, body: '', json: <T>() => ({}) as T });
    };
  });
  return { answer, hangUp: () => hangUp(), refused: () => status === 429 };
}

beforeAll(async () => {
  stack = await Stack.start({ users: { erin: ['analysts'] }, config: { jobs: { poll_ms: 60_000, status_cache_ms: 60_000 }, engine: { slots: 8 } } });
  const rows = (p: number) => ({ text: `id,word\n${[1, 2, 3].map((r) => `${p * 3 + r},w${r}`).join('\n')}\n`, rows: 3 });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows(0), rows(1)] });
  alice = await stack.login('alice');
  dave = await stack.login('dave');
  erin = await stack.login('erin');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

describe('a held wait on a job (wait_s, seen)', () => {
  it('answers with `succeeded` when the job ends, woken by the end the engine pushed', async () => {
    const job = await running();
    const waiting = held(`/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`, alice);
    let answered = false;
    void waiting.answer.then(() => (answered = true));
    // Still held while nothing changed: the same question asked without seen answers, the held one does not.
    expect((await view(job.id)).seen).toBe(job.seen);
    expect(answered).toBe(false);
    await release(job.id);
    // Each answer differs from what was seen before it (the partitions done as they finish, then the end).
    const seen = [job.seen];
    let ended = (await waiting.answer).json<View>();
    while (ended.state === 'running') {
      expect(seen).not.toContain(ended.seen);
      seen.push(ended.seen);
      ended = await view(job.id, alice, `?wait_s=25&seen=${ended.seen}`);
    }
    expect(ended.state).toBe('succeeded');
    expect(ended.partitions.done).toBe(ended.partitions.total);
    expect(seen).not.toContain(ended.seen);
    // The token of an ended job answers at once: nothing more will change.
    expect((await view(job.id, alice, `?wait_s=25&seen=${ended.seen}`)).state).toBe('succeeded');
  });

  it('holds while the job matches `seen` (until wait_s), and answers at once when it does not', async () => {
    const job = await running();
    // Time up: the answer is the job as it was, with the same token (only a held request answers that way).
    const after = await view(job.id, alice, `?wait_s=1&seen=${job.seen}`);
    expect(after.state).toBe('running');
    expect(after.seen).toBe(job.seen);
    // A token of another state: answered at once (well within the request's own 10 s timeout, under wait_s=25).
    const other = await view(job.id, alice, '?wait_s=25&seen=not-what-it-is');
    expect(other.state).toBe('running');
    expect(other.seen).toBe(job.seen);
    // wait_s without seen: the caller has seen nothing yet, answered at once too.
    expect((await view(job.id, alice, '?wait_s=25')).seen).toBe(job.seen);
    await release(job.id);
    await until(async () => (await view(job.id)).state === 'succeeded', WITHIN_MS, 'the job to end');
  });

  it("is 404 on someone else's job before anything is held, and 400 on junk", async () => {
    const job = await running();
    const refused = await stack.api(`/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`, dave);
    expect(refused.status, refused.body).toBe(404);
    expect(refused.json<{ error: string }>().error).toBe('not_found');
    // Answered while the job had not changed: the 404 did not wait for it.
    expect((await view(job.id)).seen).toBe(job.seen);
    for (const q of ['wait_s=abc', 'wait_s=-1', 'wait_s=26', 'wait_s=1.5', 'wait_s=1&seen=a%20b', 'wait_s=1&seen=', 'wait=1', 'wait_s=1&wait_s=2']) {
      const junk = await stack.api(`/v1/jobs/${job.id}?${q}`, alice);
      expect(junk.status, `${q}: ${junk.body}`).toBe(400);
      expect(junk.json<{ message: string }>().message, q).toMatch(/wait|seen|querystring/);
    }
    await release(job.id);
    await until(async () => (await view(job.id)).state === 'succeeded', WITHIN_MS, 'the job to end');
  });

  it('holds at most 16 waits per person (429 beyond), and a caller that hangs up gives its place back', async () => {
    const job = await running();
    const path = `/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`;
    const sixteen = Array.from({ length: 16 }, () => held(path, alice));
    // A seventeenth is refused once all sixteen are held (until then it is held a second itself, then
    // answered; one of the sixteen it overtook was refused meanwhile, and is asked again).
    const probe = () => stack.api(`/v1/jobs/${job.id}?wait_s=1&seen=${job.seen}`, alice);
    let last = '';
    const refused = await until(async () => {
      for (const [i, w] of sixteen.entries()) if (w.refused()) sixteen[i] = held(path, alice);
      const a = await probe();
      last = `${a.status} ${a.body.slice(0, 300)}`;
      return a.status === 429 ? a : undefined;
    }, WITHIN_MS, () => `a seventeenth wait refused (last answer: ${last})`);
    expect(refused.json<{ error: string; message: string }>().error).toBe('too_many_requests');
    expect(refused.json<{ message: string }>().message).toMatch(/16/);
    // A plain look (no wait) is never refused for it, and neither is another person's wait.
    expect((await view(job.id)).state).toBe('running');
    const hers = await running(erin);
    expect((await view(hers.id, erin, `?wait_s=1&seen=${hers.seen}`)).seen).toBe(hers.seen);
    // One caller goes away: its place is given back.
    sixteen[0]!.hangUp();
    const accepted = await until(async () => {
      const a = await probe();
      return a.status === 200 ? a : undefined;
    }, WITHIN_MS, 'a wait accepted after one caller hung up');
    expect(accepted.json<View>().seen).toBe(job.seen);
    // The job's first change (a partition done, or its end) answers every wait still held.
    await release(job.id);
    for (const w of sixteen.slice(1)) expect((await w.answer).json<View>().seen).not.toBe(job.seen);
    await release(hers.id);
    await until(async () => (await view(hers.id, erin)).state === 'succeeded', WITHIN_MS, "erin's job to end");
  });

  // Two gateways over one PostgreSQL: a change applied on the other gateway still ends a wait held
  // here (this gateway's own stream from the engine, or its re-read of the store every second).
  it.runIf(process.env.GATEHOUSE_TEST_STORE === 'postgres')('ends a wait held on another gateway when the job is cancelled through the first', async () => {
    const replica = await stack.startReplica('b');
    try {
      const job = await running();
      const there = await stack.apiAt(replica.url, `/v1/jobs/${job.id}`, alice);
      expect(there.status, there.body).toBe(200);
      const seen = there.json<View>().seen;
      const waiting = stack.apiAt(replica.url, `/v1/jobs/${job.id}?wait_s=25&seen=${seen}`, alice, { timeoutMs: 60_000 });
      const cancelled = await stack.api(`/v1/jobs/${job.id}`, alice, { method: 'DELETE' });
      expect(cancelled.status, cancelled.body).toBe(200);
      let answer = (await waiting).json<View>();
      // A progress change may come first; the next held answers lead to the end.
      while (answer.state === 'running') answer = (await stack.apiAt(replica.url, `/v1/jobs/${job.id}?wait_s=25&seen=${answer.seen}`, alice, { timeoutMs: 60_000 })).json<View>();
      expect(answer.state).toBe('cancelled');
    } finally {
      await replica.stop();
    }
  });

  it('answers at once when a job is cancelled, an admin waiting on it too', async () => {
    const job = await running();
    const waiting = held(`/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`, alice);
    // Bob may see alice's job (admin on job:*, as for a plain GET): his wait is held like hers.
    const bob = await stack.login('bob');
    const his = held(`/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`, bob);
    const cancelled = await stack.api(`/v1/jobs/${job.id}`, alice, { method: 'DELETE' });
    expect(cancelled.status, cancelled.body).toBe(200);
    // Each answer is a change (a new token); another change may come first under load (CI8 saw bob's
    // answered 'running' on PostgreSQL): asked again from it, the wait ends with the cancel.
    const settled = async (first: Promise<Response>, token: string): Promise<View> => {
      const seen = [job.seen];
      let v = (await first).json<View>();
      while (v.state === 'running') {
        expect(seen, JSON.stringify(v)).not.toContain(v.seen);
        seen.push(v.seen);
        v = (await held(`/v1/jobs/${job.id}?wait_s=25&seen=${v.seen}`, token).answer).json<View>();
      }
      return v;
    };
    expect((await settled(waiting.answer, alice)).state).toBe('cancelled');
    expect((await settled(his.answer, bob)).state).toBe('cancelled');
  });

  it('answers held waits when the gateway stops, so they never hold up its stop', async () => {
    const job = await running();
    const waiting = held(`/v1/jobs/${job.id}?wait_s=25&seen=${job.seen}`, alice);
    // Held: a plain look answers while the held one does not (as in the first case).
    expect((await view(job.id)).seen).toBe(job.seen);
    const stopped = await stack.gateway.stop('SIGTERM');
    // A clean stop (exit 0, not the 10 s forced exit with 1), and the wait answered with the job as it was.
    expect(stopped.code, stack.gateway.output().slice(-2000)).toBe(0);
    const answer = await waiting.answer;
    expect(answer.status, answer.body).toBe(200);
    expect(answer.json<View>().seen).toBe(job.seen);
    await stack.startGateway();
    await release(job.id);
    await until(async () => (await view(job.id)).state === 'succeeded', WITHIN_MS, 'the job to end after the restart');
  });

  it('cuts a followed log still waiting for its job to leave the queue when the gateway stops, so it never holds up its stop', async () => {
    const four = [await running(erin), await running(erin), await running(erin), await running(erin)];
    const answer = await stack.api('/v1/jobs', erin, { method: 'POST', body: spec() });
    expect(answer.status, answer.body).toBe(201);
    const fifth = await view(answer.json<{ id: string }>().id, erin);
    expect(fifth.state).toBe('pending');
    // Its head comes at once (log-follow.ts); the body waits for the job's handover.
    let ended: (how: string) => void = () => {};
    const end = new Promise<string>((resolve) => (ended = resolve));
    const head = await new Promise<number>((resolve, reject) => {
      const req = request(`${stack.url}/v1/jobs/${fifth.id}/logs?follow=1`, { ca: stack.ca, agent: false, headers: { authorization: `Bearer ${erin}` } }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => ended('ended'));
        res.on('error', () => ended('cut'));
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (err) => {
        ended('cut');
        reject(err);
      });
      req.end();
    });
    expect(head).toBe(200);
    const stopped = await stack.gateway.stop('SIGTERM');
    // A clean stop (exit 0, not the 10 s forced exit with 1); the log cut, never ended as if complete.
    expect(stopped.code, stack.gateway.output().slice(-2000)).toBe(0);
    expect(await end).toBe('cut');
    await stack.startGateway();
    for (const j of four) await release(j.id);
    await until(async () => (await view(fifth.id, erin)).state === 'running' || undefined, WITHIN_MS, `job ${fifth.id} running`);
    await release(fifth.id);
    for (const j of [...four, fifth]) await until(async () => (await view(j.id, erin)).state === 'succeeded', WITHIN_MS, `job ${j.id} to end`);
  });

  it('answers a wait on a pending job when it leaves the queue', async () => {
    // Erin may run 4 jobs at once (the analysts' max_concurrent_jobs): a fifth waits.
    const four = [await running(erin), await running(erin), await running(erin), await running(erin)];
    const answer = await stack.api('/v1/jobs', erin, { method: 'POST', body: spec() });
    expect(answer.status, answer.body).toBe(201);
    const fifth = await view(answer.json<{ id: string }>().id, erin);
    expect(fifth.state).toBe('pending');
    const waiting = held(`/v1/jobs/${fifth.id}?wait_s=25&seen=${fifth.seen}`, erin);
    await release(four[0]!.id);
    let admitted = (await waiting.answer).json<View & { reason: string | null; queue_position: number | null }>();
    const seen = [fifth.seen];
    // Its reason or place may change first (on PostgreSQL the queue is re-read from the records); each answer is a change.
    while (admitted.state === 'pending') {
      expect(seen, JSON.stringify(admitted)).not.toContain(admitted.seen);
      seen.push(admitted.seen);
      admitted = (await held(`/v1/jobs/${fifth.id}?wait_s=25&seen=${admitted.seen}`, erin).answer).json();
    }
    expect(seen).not.toContain(admitted.seen);
    expect(['queued', 'running']).toContain(admitted.state);
    for (const j of [...four.slice(1), fifth]) await release(j.id);
    for (const j of [...four, fifth]) await until(async () => (await view(j.id, erin)).state === 'succeeded', WITHIN_MS, `job ${j.id} to end`);
  });
});
