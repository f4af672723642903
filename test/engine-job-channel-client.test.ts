// The gateway's end of the job channel against stand-in engines with the real mTLS: an engine
// without the channel is sent POST /jobs as before; a submission in flight when the channel drops
// fails as a dropped HTTP request does (not_ready), and the next one takes POST /jobs; answers sent
// out of order reach their own submissions; a channel that leaves a submission unanswered past its
// timeout is dropped. The held handover from the gateway's side: a prepare the engine holds is
// released on the same connection; one it refused, lost with its channel, or no longer holds (404)
// is never released (the caller submits the job whole); a release in flight when the channel drops
// fails not_ready, as a submission does; a drop waits for the prepare's answer.
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureCertificates } from '../src/auth/index.js';
import { engineClient, type EngineClient } from '../src/proxy/engine-client.js';
import { jobChannel } from '../src/proxy/job-channel.js';
import { answerFrame, FrameReader, JOB_CHANNEL_PROTOCOL, type JobSpec, readRequest, readTlsMaterial } from '../src/wire/index.js';
import type { HeldRequest } from '../src/wire/index.js';
import { until } from './support/until.js';

const spec: JobSpec = { name: 'c', input: 'words', output: 'scratch/o', runtime: 'python', source: 'x', resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } };
let dir: string;
let certs: string;
let server: Server | null = null;
let client: EngineClient | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gh-channel-client-'));
  certs = join(dir, 'certs');
  ensureCertificates({ dir: certs, gatewayHosts: ['127.0.0.1'], engineHosts: ['127.0.0.1'] });
});

afterEach(() => {
  client?.close();
  server?.close();
  server?.closeAllConnections();
  client = server = null;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in engine: POST /jobs answers 201 with its own id; `upgrade` (when given) takes the channel. */
async function standIn(upgrade?: (socket: Duplex, frames: (f: (payload: Buffer) => void) => void) => void) {
  const posts: string[] = [];
  server = createServer({ ...readTlsMaterial(certs, 'engine'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    posts.push(`${req.method} ${req.url}`);
    req.resume();
    const status = req.method === 'POST' && req.url === '/jobs' ? 201 : 404;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(status === 201 ? { id: 'via-http', state: 'queued' } : { error: 'not_found', message: 'no route' }));
  });
  if (upgrade !== undefined) {
    server.on('upgrade', (_req, socket: Duplex) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${JOB_CHANNEL_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`);
      const reader = new FrameReader(1 << 20);
      upgrade(socket, (f) => socket.on('data', (c: Buffer) => reader.push(c).forEach(f)));
    });
  }
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  client = engineClient({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, tls: readTlsMaterial(certs, 'gatewayClient') });
  return { posts, client };
}

describe("the gateway's job channel", () => {
  it('an engine without the channel gets POST /jobs, and is asked for the channel at most once per retry interval', async () => {
    const { posts, client } = await standIn();
    for (let i = 0; i < 5; i++) expect(await client.submit(spec, 't')).toEqual({ id: 'via-http', state: 'queued' });
    await until(() => posts.includes('GET /jobs/channel'), 5_000, 'the channel asked for');
    expect(posts.filter((p) => p === 'POST /jobs')).toHaveLength(5);
    expect(posts.filter((p) => p === 'GET /jobs/channel')).toHaveLength(1);
  });

  /** Submits until one is answered over the channel (the stand-in answers at once while `probing()`). */
  const overTheChannel = (c: EngineClient) => until(async () => (await c.submit(spec, 't')).id !== 'via-http', 5_000, 'a submission over the channel');

  it('answers sent out of order reach their own submissions', async () => {
    let probing = true;
    const held: number[] = [];
    const { client } = await standIn((socket, frames) =>
      frames((payload) => {
        const { id } = readRequest(payload);
        if (probing) return socket.write(answerFrame(id, 201, { id: 'probe', state: 'queued' }));
        held.push(id);
        if (held.length === 3) for (const i of [...held].reverse()) socket.write(answerFrame(i, 201, { id: `job-${i}`, state: 'queued' }));
      }),
    );
    await overTheChannel(client);
    probing = false;
    const answers = await Promise.all([1, 2, 3].map(() => client.submit(spec, 't')));
    expect(answers.map((a) => a.id)).toEqual(held.map((i) => `job-${i}`));
    expect(new Set(answers.map((a) => a.id)).size).toBe(3);
  });

  it('a submission in flight when the channel drops fails not_ready, as a dropped request does; the next takes POST /jobs', async () => {
    let probing = true;
    let channel: Duplex | null = null;
    let received = 0;
    const { client, posts } = await standIn((socket, frames) => {
      channel = socket;
      frames((payload) => {
        if (probing) socket.write(answerFrame(readRequest(payload).id, 201, { id: 'probe', state: 'queued' }));
        else received++;
      });
    });
    await overTheChannel(client);
    probing = false;
    const inFlight = client.submit(spec, 't');
    await until(() => received === 1, 5_000, 'the frame received');
    channel!.destroy();
    await expect(inFlight).rejects.toMatchObject({ code: 'not_ready', message: expect.stringMatching(/job channel/) });
    const before = posts.filter((p) => p === 'POST /jobs').length;
    expect(await client.submit(spec, 't')).toEqual({ id: 'via-http', state: 'queued' });
    expect(posts.filter((p) => p === 'POST /jobs')).toHaveLength(before + 1);
  });

  it('a channel that leaves a submission unanswered past its timeout is dropped: the next submission takes POST /jobs', async () => {
    let frames = 0;
    await standIn((socket, onFrame) =>
      onFrame((payload) => {
        // The first is answered (the channel is seen open), the rest never.
        if (++frames === 1) socket.write(answerFrame(readRequest(payload).id, 201, { id: 'probe', state: 'queued' }));
      }),
    );
    const agent = new Agent({ keepAlive: false, ...readTlsMaterial(certs, 'gatewayClient') });
    const channel = jobChannel({ url: `https://127.0.0.1:${(server!.address() as AddressInfo).port}`, agent });
    try {
      await until(async () => (await channel.submit('{}', 't', 5_000)) !== null, 5_000, 'the channel open and answering');
      const unanswered = channel.submit('{}', 't', 100);
      expect(unanswered).not.toBeNull();
      await expect(unanswered).rejects.toMatchObject({ code: 'not_ready', message: expect.stringMatching(/did not answer/) });
      expect(channel.submit('{}', 't', 100)).toBeNull();
    } finally {
      channel.close();
      agent.destroy();
    }
  });
});

describe('the held handover, from the gateway', () => {
  /** A stand-in engine that answers submissions at once and hands prepare/release/drop frames to `held`. */
  async function heldStandIn(held: (socket: Duplex, request: ReturnType<typeof readRequest>) => void) {
    let channel: Duplex | null = null;
    const seen: string[] = [];
    const { client } = await standIn((socket, frames) => {
      channel = socket;
      frames((payload) => {
        const r = readRequest(payload);
        seen.push('job' in r ? `${r.kind} ${(r as HeldRequest).job}` : r.kind);
        if (r.kind === 'submit') socket.write(answerFrame(r.id, 201, { id: 'probe', state: 'queued' }));
        else held(socket, r);
      });
    });
    await until(async () => (await client.submit(spec, 't')).id === 'probe', 5_000, 'a submission over the channel');
    return { client, seen, channel: () => channel! };
  }

  it('a held job is released on its own connection, with the answer POST /jobs would give', async () => {
    const { client, seen } = await heldStandIn((socket, r) => socket.write(answerFrame(r.id, r.kind === 'prepare' ? 200 : 201, r.kind === 'prepare' ? { id: 'j-1', state: 'held' } : { id: 'j-1', state: 'queued' })));
    const prepared = client.prepare('j-1', spec, 't');
    expect(prepared).not.toBeNull();
    expect(await prepared!.release()).toEqual({ id: 'j-1', state: 'queued' });
    expect(seen.slice(-2)).toEqual(['prepare', 'release j-1']);
  });

  it('a refused prepare, or a release the engine answers 404 (no longer held), is never taken for an admission: null, submit it whole', async () => {
    let refuse = true;
    const { client, seen } = await heldStandIn((socket, r) => {
      if (r.kind === 'prepare') socket.write(refuse ? answerFrame(r.id, 409, { error: 'conflict', message: 'exists' }) : answerFrame(r.id, 200, { id: 'j-2', state: 'held' }));
      else socket.write(answerFrame(r.id, 404, { error: 'not_found', message: 'no job j-2 is held on this channel', held: false }));
    });
    expect(await client.prepare('j-2', spec, 't')!.release()).toBeNull();
    expect(seen).not.toContain('release j-2'); // a refused prepare is not released
    refuse = false;
    expect(await client.prepare('j-2', spec, 't')!.release()).toBeNull();
    expect(seen.at(-1)).toBe('release j-2');
  });

  it('a prepare whose channel dropped is not released on another connection; a release in flight when it drops fails not_ready', { timeout: 30_000 }, async () => {
    // Prepares are held; releases are never answered.
    const { client, seen, channel } = await heldStandIn((socket, r) => {
      if (r.kind === 'prepare') socket.write(answerFrame(r.id, 200, { id: 'j-3', state: 'held' }));
    });
    const lost = client.prepare('j-3', spec, 't')!;
    await until(() => seen.at(-1) === 'prepare', 5_000, 'the prepare received');
    channel().destroy();
    // Once the gateway has seen the channel go (submissions take POST /jobs), the held job is not released anywhere.
    await until(async () => (await client.submit(spec, 't').catch(() => null))?.id === 'via-http', 5_000, 'the loss seen');
    expect(await lost.release()).toBeNull();
    expect(seen.filter((s) => s.startsWith('release'))).toEqual([]);
    // The channel opened again: a release whose answer never comes because the channel drops fails as a submission does.
    // (opened again once its retry interval has passed; submissions meanwhile take POST /jobs)
    await until(async () => (await client.submit(spec, 't')).id === 'probe', 15_000, 'the channel open again', 100);
    const inFlight = client.prepare('j-3', spec, 't')!;
    const released = inFlight.release();
    await until(() => seen.at(-1) === 'release j-3', 5_000, 'the release received');
    channel().destroy();
    await expect(released).rejects.toMatchObject({ code: 'not_ready' });
  });

  it('a drop is sent once the engine has answered the prepare, so it cannot overtake it; none for a refused prepare', async () => {
    let answer: (() => void) | null = null;
    const { client, seen } = await heldStandIn((socket, r) => {
      if (r.kind === 'prepare') answer = () => socket.write(answerFrame(r.id, 200, { id: 'j-4', state: 'held' }));
      else socket.write(answerFrame(r.id, 200, { dropped: true }));
    });
    client.prepare('j-4', spec, 't')!.drop();
    await until(() => answer !== null, 5_000, 'the prepare received');
    expect(seen.at(-1)).toBe('prepare');
    answer!();
    await until(() => seen.at(-1) === 'drop j-4', 5_000, 'the drop after the answer');
  });
});
