// A raw job channel to an engine, as the gateway opens one (src/proxy/job-channel.ts) but with the
// test holding the socket: frames written by hand, answers read one at a time. For the suites that
// try the channel as an attacker would (a certificate that is not the gateway's, frames out of order).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { FrameReader, JOB_CHANNEL_PATH, JOB_CHANNEL_PROTOCOL, readAnswer } from '../../src/wire/index.js';

export type ChannelAnswer = { id: number; status: number; body: Record<string, unknown> };
export type OpenChannel = { socket: Socket; answers: () => Promise<ChannelAnswer>; closed: Promise<void> };

/** The engine's URL and certificates folder (an engine suite's). */
interface EngineAt {
  engine: { url: string };
  certs: string;
}

/**
 * Asks the engine to upgrade a connection to the job channel with the given client certificate (none:
 * {}): the channel, the status it answered instead, or the connection's error.
 */
export function openChannel(at: EngineAt, tls: { cert?: string; key?: string }): Promise<OpenChannel | { status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(`${at.engine.url}${JOB_CHANNEL_PATH}`, { ca: readFileSync(join(at.certs, 'ca.crt'), 'utf8'), ...tls, agent: false, headers: { connection: 'Upgrade', upgrade: JOB_CHANNEL_PROTOCOL } });
    req.on('error', (err) => resolve({ error: err.message }));
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('upgrade', (_res, socket: Socket, head: Buffer) => {
      const reader = new FrameReader(1024 * 1024);
      const queue: Buffer[] = [];
      let wake: (() => void) | null = null;
      const take = (chunk: Buffer) => {
        queue.push(...reader.push(chunk));
        wake?.();
      };
      socket.on('data', take);
      if (head.length > 0) take(head);
      const closed = new Promise<void>((r) => socket.on('close', () => r()));
      resolve({
        socket,
        closed,
        answers: async () => {
          while (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const a = readAnswer(queue.shift()!);
          return { id: a.id, status: a.status, body: JSON.parse(a.text) as Record<string, unknown> };
        },
      });
    });
    req.end();
  });
}

/** The channel opened with the gateway's own client certificate; throws when it does not open. */
export async function gatewayChannel(at: EngineAt): Promise<OpenChannel> {
  const opened = await openChannel(at, { cert: readFileSync(join(at.certs, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(at.certs, 'gateway-client.key'), 'utf8') });
  if (!('socket' in opened)) throw new Error(`the channel did not open: ${JSON.stringify(opened)}`);
  return opened;
}
