// The gateway's end of the job channel (src/wire/job-channel.ts): one kept-open connection to the
// bundled engine, upgraded from an HTTPS request made with the same agent options as every other
// call (our CA, the engine's name checked, the gateway's client certificate), that carries
// submissions as frames with ids, so interleaved ones get their own answers. While it is not open
// (not yet, lost, or an engine without it) submissions take POST /jobs, and the channel is opened
// again in the background, at most once per RETRY_MS. A submission in flight when the channel drops
// fails as a dropped HTTP request does: not_ready, whether or not the engine took the job.
// prepare/release (the held handover, src/wire/job-channel.ts): a release goes on the connection its
// prepare went on, or not at all (the engine holds a prepared job for that connection only).
import { type Agent, request } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { FrameReader, GatehouseError, heldFrame, JOB_CHANNEL_PATH, JOB_CHANNEL_PROTOCOL, readAnswer, submissionFrame } from '../wire/index.js';

/** How soon a channel that could not be opened, or was lost, is tried again. */
const RETRY_MS = 5_000;
/** How long the engine may take to answer the upgrade. */
const OPEN_TIMEOUT_MS = 10_000;
/** The engine's answers are a status and a short JSON body. */
const ANSWER_MAX_BYTES = 256 * 1024;
const MAX_ID = 0xffff_ffff;

export interface ChannelAnswer {
  status: number;
  text: string;
}

export interface JobChannel {
  /** The engine's answer to one submission, or null when the channel is not open (then use POST /jobs). */
  submit(specJson: string, ticket: string, timeoutMs: number): Promise<ChannelAnswer> | null;
  /** Asks the engine to check job `job` and hold it; null when the channel is not open. */
  prepare(job: string, specJson: string, ticket: string, timeoutMs: number): HeldOnChannel | null;
  close(): void;
}

export interface HeldOnChannel {
  /** The engine's answer to the prepare: 200 when it holds the job. */
  readonly answer: Promise<ChannelAnswer>;
  /** The engine's answer to the release (POST /jobs's); null when the connection the prepare went on is gone. */
  release(timeoutMs: number): Promise<ChannelAnswer> | null;
  /** Lets the held job go (no answer awaited). */
  drop(): void;
}

interface Waiting {
  resolve: (a: ChannelAnswer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export function jobChannel(o: { url: string; agent: Agent; now?: () => number }): JobChannel {
  const now = o.now ?? Date.now;
  let socket: TLSSocket | null = null;
  let opening = false;
  let closed = false;
  let nextTry = 0;
  let lastId = 0;
  const waiting = new Map<number, Waiting>();

  const lost = (why: string) => {
    const s = socket;
    socket = null;
    nextTry = now() + RETRY_MS;
    s?.destroy();
    const err = new GatehouseError('not_ready', `engine unreachable at ${o.url}: the job channel ${why}`);
    for (const [id, w] of waiting) {
      clearTimeout(w.timer);
      waiting.delete(id);
      w.reject(err);
    }
  };

  const open = () => {
    opening = true;
    const req = request(`${o.url}${JOB_CHANNEL_PATH}`, { agent: o.agent, method: 'GET', headers: { connection: 'Upgrade', upgrade: JOB_CHANNEL_PROTOCOL } });
    const failed = () => {
      opening = false;
      nextTry = now() + RETRY_MS;
    };
    req.on('error', failed);
    // An engine that never answers the upgrade must not leave the channel 'opening' for good.
    req.setTimeout(OPEN_TIMEOUT_MS, () => req.destroy(new Error('the job channel did not open in time')));
    // An engine without the channel answers the request itself (404): POST /jobs it is, for now.
    req.on('response', (res) => {
      res.resume();
      failed();
    });
    req.on('upgrade', (res, raw: Socket, head: Buffer) => {
      opening = false;
      if (closed || res.headers.upgrade !== JOB_CHANNEL_PROTOCOL) {
        raw.destroy();
        return failed();
      }
      const s = raw as TLSSocket;
      s.setNoDelay(true);
      s.setKeepAlive(true, 10_000);
      const reader = new FrameReader(ANSWER_MAX_BYTES);
      const onData = (chunk: Buffer) => {
        let frames: Buffer[];
        try {
          frames = reader.push(chunk);
        } catch {
          return lost('sent a frame over its limit');
        }
        for (const payload of frames) {
          let a: ReturnType<typeof readAnswer>;
          try {
            a = readAnswer(payload);
          } catch {
            return lost('sent a frame it could not read');
          }
          if (a.id === 0) return lost(`was closed by the engine: ${a.text.slice(0, 200)}`);
          const w = waiting.get(a.id);
          if (w === undefined) continue; // given up on (timed out): the engine answered late
          waiting.delete(a.id);
          clearTimeout(w.timer);
          w.resolve({ status: a.status, text: a.text });
        }
      };
      s.on('data', onData);
      s.on('error', () => socket === s && lost('failed'));
      s.on('close', () => socket === s && lost('closed'));
      socket = s;
      if (head.length > 0) onData(head);
    });
    req.end();
  };

  /** Sends one frame on `s` and resolves with the engine's answer under its id. */
  const send = (s: TLSSocket, make: (id: number) => Buffer, timeoutMs: number): Promise<ChannelAnswer> => {
    lastId = lastId >= MAX_ID ? 1 : lastId + 1;
    const id = lastId;
    const frame = make(id);
    return new Promise<ChannelAnswer>((resolve, reject) => {
      // As POST /jobs's timeout: the engine may still take the job; the caller treats it as unknown.
      // A channel that leaves a submission unanswered this long is taken for dead: the others on it
      // fail as this one does, and the next submission takes POST /jobs while it is opened again.
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new GatehouseError('not_ready', `engine did not answer POST /jobs within ${timeoutMs} ms (job channel)`));
        if (socket === s) lost(`left a submission unanswered for ${timeoutMs} ms`);
      }, timeoutMs);
      waiting.set(id, { resolve, reject, timer });
      s.write(frame);
    });
  };

  /** The open channel's connection, or null (and an attempt to open it, when due). */
  const current = (): TLSSocket | null => {
    const s = socket;
    if (s !== null && !s.destroyed) return s;
    if (!opening && !closed && now() >= nextTry) open();
    return null;
  };

  return {
    submit: (specJson, ticket, timeoutMs) => {
      const s = current();
      return s === null ? null : send(s, (id) => submissionFrame(id, ticket, specJson), timeoutMs);
    },
    prepare: (job, specJson, ticket, timeoutMs) => {
      const s = current();
      if (s === null) return null;
      const on = () => socket === s && !s.destroyed;
      return {
        answer: send(s, (id) => submissionFrame(id, ticket, specJson, 'prepare'), timeoutMs),
        release: (releaseTimeoutMs) => (on() ? send(s, (id) => heldFrame(id, 'release', job), releaseTimeoutMs) : null),
        drop: () => {
          if (on()) send(s, (id) => heldFrame(id, 'drop', job), timeoutMs).catch(() => undefined);
        },
      };
    },
    close: () => {
      closed = true;
      lost('was closed');
    },
  };
}
