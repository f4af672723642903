// The gateway's mTLS connection to the bundled engine: our CA, our client certificate, keep-alive;
// submissions over the job channel (job-channel.ts) once it is open.
// Answers are checked against the wire schemas: decisions rest on them, so a body of another
// shape is refused, not guessed at.
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, request } from 'node:https';
import { Value } from 'typebox/value';
import { DatasetReadSchema, type ReadableDataset } from '../catalog/index.js';
import { httpsUrl } from '../http/index.js';
import { jobChannel } from './job-channel.js';
import {
  type DatasetInfo,
  type DatasetList,
  DatasetListSchema,
  ERROR_STATUS,
  type ErrorCode,
  GatehouseError,
  type HealthStatus,
  type JobList,
  JobListSchema,
  type JobSpec,
  type JobStatus,
  JobStatusSchema,
  TICKET_HEADER,
  type TlsMaterial,
} from '../wire/index.js';

export interface EngineClient {
  readonly url: string;
  health(timeoutMs?: number): Promise<HealthStatus>;
  /** The engine's worker slots (engine.slots, resolved), from its /healthz `slots`. */
  slots(timeoutMs?: number): Promise<number>;
  /** Every dataset of the engine's catalog, sorted by name; policy filters them on the gateway. */
  datasets(timeoutMs?: number): Promise<DatasetInfo[]>;
  /** The catalog's answer for one name, by the listing's own rules (GET /datasets?name=): the dataset, or undefined. */
  listed(name: string, timeoutMs?: number): Promise<DatasetInfo | undefined>;
  /** One dataset's manifest and version; null: the engine has none it can serve by that name. */
  dataset(name: string): Promise<ReadableDataset | null>;
  /**
   * A byte range of one partition, streamed (the engine's answer itself: nothing is buffered). On a
   * connection of its own unless `short` (read to its end at once, as a preview's window is).
   */
  partition(name: string, n: number, etag: string, start: number, end: number, o?: { short?: boolean }): Promise<IncomingMessage>;
  /** Removes version `etag` of a dataset; `not_found` when it is gone, `conflict` when it changed since. */
  removeDataset(name: string, etag: string): Promise<void>;
  /**
   * Streams partition `n` of `user`'s upload of `name` to the engine's staging (the request's own
   * bytes, piped with backpressure), within `allowance` bytes of staging in all. Rejects with the
   * engine's refusal: payload_too_large (details: staged_bytes, written), invalid_request, not_found.
   */
  uploadPartition(o: { user: string; name: string; n: number; allowance: number; declared?: number | undefined; body: Readable }): Promise<{ bytes: number }>;
  /** Commits `user`'s staged upload as dataset `name`: the manifest's columns and partitions. */
  commitUpload(body: UploadCommitBody): Promise<{ columns: string[]; partitions: { file: string; rows: number; bytes: number }[] }>;
  /** Drops a staged upload; false when there was none. */
  dropUpload(user: string, name: string): Promise<boolean>;
  /** Hands a job over with its admission ticket; the engine's refusal is thrown as its GatehouseError. */
  submit(spec: JobSpec, ticket: string): Promise<{ id: string; state: string }>;
  /**
   * The held handover's first half: the engine checks job `job` as submit would and holds it, nothing
   * stored or run, until release(). Null when the job channel is not open (then submit it whole).
   */
  prepare(job: string, spec: JobSpec, ticket: string): PreparedSubmission | null;
  /** Null: the engine has no such job. */
  status(id: string): Promise<JobStatus | null>;
  /** The jobs not yet ended. */
  active(): Promise<JobStatus[]>;
  cancel(id: string): Promise<JobStatus | null>;
  /** The job's log as a stream (null: no such job); with follow it ends when the job does. */
  logs(id: string, follow: boolean): Promise<IncomingMessage | null>;
  /**
   * The engine's stream of job changes (GET /events, newline-delimited JSON; src/wire/job-events.ts),
   * from after `from` when given. Its own connection, open as long as the engine runs.
   */
  events(from: { epoch: string; after: number } | null): Promise<IncomingMessage>;
  /** The engine's own /metrics text (Prometheus), which the gateway relays on its /metrics. */
  metrics(timeoutMs?: number): Promise<string>;
  close(): void;
}

export interface PreparedSubmission {
  /** Whether the engine answered the prepare holding the job (its checks passed); false: refused, or no answer. */
  held: Promise<boolean>;
  /**
   * Admits the held job: submit's answer, or its refusal thrown alike. Null when the engine does not
   * hold it (the prepare was refused or never answered, its channel is gone, or it was held past its
   * bound): then nothing of it was admitted, and the caller submits it whole.
   */
  release(): Promise<{ id: string; state: string } | null>;
  /** Lets the held job go (its job.submit could not be recorded, or its admission did not commit). */
  drop(): void;
}

export interface UploadCommitBody {
  user: string;
  name: string;
  partitions: number;
  labels: string[];
  overwrite: boolean;
  replaces?: { owner: string | null };
}

const SUBMIT_TIMEOUT_MS = 30_000;

interface Answer {
  status: number;
  text: string;
}

export function engineClient(options: { host: string; port: number; tls: TlsMaterial }): EngineClient {
  const { host, port, tls } = options;
  /** A range up to this long is read from the pool of kept-alive connections (no handshake of its own). */
  const SHORT_READ_BYTES = 1024 * 1024;
  const agent = new Agent({ keepAlive: true, maxSockets: 64, ca: tls.ca, cert: tls.cert, key: tls.key });
  // Followed logs stay open as long as their jobs run: never in the pool the other calls queue for.
  const followAgent = new Agent({ keepAlive: false, ca: tls.ca, cert: tls.cert, key: tls.key });
  // Uploads: out of the shared pool too (a long upload must not hold a slot calls queue for), but kept
  // alive, so that they are not sent with `Connection: close`. The engine may refuse a partition before
  // it has read all of it (over the allowance); on a connection it is to close, Node's server closes it
  // right after the answer with the rest of the body still arriving, the kernel resets it, and the
  // upload's next write can fail (EPIPE) before the answer already received is read: a 413 lost as a
  // 503 "engine unreachable" (1 in ~100 under load). On a kept-alive one the server reads what is in
  // flight and discards it, and this side closes it once the answer is read (an upload cut short never
  // goes back to the pool).
  const uploadAgent = new Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key });
  const url = httpsUrl(host, port);
  // Its connection is never given back to a pool: made with the agent of connections that are not kept.
  const channel = jobChannel({ url, agent: followAgent });

  function open(method: string, path: string, o: { body?: unknown; headers?: Record<string, string>; timeoutMs: number; follow?: boolean }): Promise<IncomingMessage> {
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const headers: Record<string, string> = { ...o.headers, ...(payload ? { 'content-type': 'application/json' } : {}) };
    return new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, { agent: o.follow ? followAgent : agent, method, headers }, (res) => {
        if (timer !== null) clearTimeout(timer);
        resolve(res);
      });
      // From now, not from when a pooled connection frees up: a full pool cannot make a call hang. The
      // promise is rejected here too, as a request still waiting for a socket reports its destruction
      // only once it has one.
      const timer =
        o.timeoutMs > 0
          ? setTimeout(() => {
              const late = new GatehouseError('not_ready', `engine did not answer ${method} ${path} within ${o.timeoutMs} ms`);
              req.destroy(late);
              reject(late);
            }, o.timeoutMs)
          : null;
      req.on('error', (err) => {
        if (timer !== null) clearTimeout(timer);
        reject(err instanceof GatehouseError ? err : new GatehouseError('not_ready', `engine unreachable at ${url}: ${err.message}`));
      });
      req.end(payload);
    });
  }

  async function send(method: string, path: string, o: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Answer> {
    const res = await open(method, path, { ...o, timeoutMs: o.timeoutMs ?? 10_000 });
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') };
  }

  function parsed<T>(answer: Answer, path: string, check: (v: unknown) => boolean): T {
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      throw new GatehouseError('not_ready', `engine sent invalid JSON on ${path}`);
    }
    if (!check(body)) throw new GatehouseError('not_ready', `engine sent an unexpected body on ${path}`);
    return body as T;
  }

  async function getJson<T>(path: string, check: (v: unknown) => boolean, timeoutMs: number): Promise<T> {
    const answer = await send('GET', path, { timeoutMs });
    if (answer.status !== 200) throw new GatehouseError('not_ready', `engine answered ${answer.status} on ${path}: ${answer.text.slice(0, 200)}`);
    return parsed<T>(answer, path, check);
  }

  const isStatus = (v: unknown) => Value.Check(JobStatusSchema, v);

  return {
    url,
    health: (timeoutMs = 2000) => getJson<HealthStatus>('/healthz', () => true, timeoutMs),
    slots: async (timeoutMs = 5000) => {
      const { slots } = await getJson<HealthStatus>('/healthz', (v) => v !== null && typeof v === 'object', timeoutMs);
      if (typeof slots !== 'number' || !Number.isSafeInteger(slots) || slots < 1) throw new GatehouseError('not_ready', 'engine did not say how many worker slots it has (no whole number slots in GET /healthz)');
      return slots;
    },
    datasets: async (timeoutMs = 10_000) => (await getJson<DatasetList>('/datasets', (v) => Value.Check(DatasetListSchema, v), timeoutMs)).datasets,
    listed: async (name, timeoutMs = 10_000) => {
      const { datasets } = await getJson<DatasetList>(`/datasets?name=${encodeURIComponent(name)}`, (v) => Value.Check(DatasetListSchema, v), timeoutMs);
      // Only the name asked for is taken, whatever else an answer holds.
      return datasets.find((d) => d.name === name);
    },
    dataset: async (name) => {
      const path = `/dataset?name=${encodeURIComponent(name)}`;
      const answer = await send('GET', path);
      if (answer.status === 404) return null;
      if (answer.status !== 200) throw refusal(answer, '/dataset');
      return parsed<ReadableDataset>(answer, '/dataset', (v) => Value.Check(DatasetReadSchema, v));
    },
    partition: async (name, n, etag, start, end, o) => {
      const path = `/dataset/partition?${new URLSearchParams({ name, n: String(n), etag, start: String(start), end: String(end) })}`;
      // Out of the shared pool, as followed logs are: a download is paced by its client, who could hold
      // every pooled connection by not reading (however small the range) and so stall every call.
      // A preview's window, small and read to its end by the gateway itself, is pooled and kept alive.
      const res = await open('GET', path, { timeoutMs: 30_000, follow: !(o?.short === true && end - start < SHORT_READ_BYTES) });
      if (res.statusCode === 200) return res;
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw refusal({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }, '/dataset/partition');
    },
    removeDataset: async (name, etag) => {
      const answer = await send('DELETE', `/dataset?${new URLSearchParams({ name, etag })}`, { timeoutMs: 60_000 });
      if (answer.status !== 204) throw refusal(answer, 'DELETE /dataset');
    },
    uploadPartition: async (o) => {
      const query = new URLSearchParams({ user: o.user, name: o.name, n: String(o.n), allowance: String(o.allowance), ...(o.declared !== undefined ? { declared: String(o.declared) } : {}) });
      const answer = await new Promise<Answer>((resolve, reject) => {
        // On uploadAgent (above). The engine may answer before it has read the whole body (a refusal
        // over the limit): from its answer on, the rest of the body is not sent, the connection is
        // closed once the answer is read if the body was not all sent, and a write that fails meanwhile
        // (EPIPE, ECONNRESET) is not taken for an engine out of reach: the answer decides.
        let answered = false;
        const req = request(`${url}/upload/partition?${query}`, { agent: uploadAgent, method: 'PUT', headers: { 'content-type': 'text/csv' } }, (res) => {
          answered = true;
          o.body.unpipe(req);
          const chunks: Buffer[] = [];
          let ended = false;
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            ended = true;
            if (!req.writableFinished) req.destroy(); // a body cut short: that connection cannot carry another request
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', reject);
          res.on('close', () => {
            if (!ended) reject(new GatehouseError('not_ready', `engine unreachable at ${url}: its answer was cut short`));
          });
        });
        req.on('error', (err) => {
          if (!answered) reject(new GatehouseError('not_ready', `engine unreachable at ${url}: ${err.message}`));
        });
        // The person went away mid-way: the engine's request is cut too, and the engine removes the partial file.
        o.body.on('error', (err) => req.destroy(err));
        o.body.on('aborted', () => req.destroy(new Error('the upload was interrupted')));
        o.body.pipe(req);
      });
      if (answer.status === 200) return parsed<{ bytes: number }>(answer, '/upload/partition', (v) => typeof (v as { bytes?: unknown })?.bytes === 'number');
      throw refusal(answer, 'PUT /upload/partition', true);
    },
    commitUpload: async (body) => {
      const answer = await send('POST', '/upload/commit', { body, timeoutMs: 120_000 });
      if (answer.status !== 200) throw refusal(answer, 'POST /upload/commit');
      return parsed(answer, '/upload/commit', (v) => Array.isArray((v as { partitions?: unknown })?.partitions));
    },
    dropUpload: async (user, name) => {
      const answer = await send('DELETE', `/upload?${new URLSearchParams({ user, name })}`, { timeoutMs: 60_000 });
      if (answer.status !== 200) throw refusal(answer, 'DELETE /upload');
      return parsed<{ dropped: boolean }>(answer, '/upload', (v) => typeof (v as { dropped?: unknown })?.dropped === 'boolean').dropped;
    },
    submit: async (spec, ticket) => {
      // The job channel when it is open (one kept-open connection, frames instead of HTTP requests),
      // else POST /jobs; the same answer either way.
      const viaChannel = channel.submit(JSON.stringify(spec), ticket, SUBMIT_TIMEOUT_MS);
      const answer = viaChannel !== null ? await viaChannel : await send('POST', '/jobs', { body: spec, headers: { [TICKET_HEADER]: ticket }, timeoutMs: SUBMIT_TIMEOUT_MS });
      if (answer.status !== 201) throw refusal(answer, 'POST /jobs');
      return parsed<{ id: string; state: string }>(answer, '/jobs', (v) => typeof (v as { id?: unknown })?.id === 'string');
    },
    prepare: (job, spec, ticket) => {
      const held = channel.prepare(job, JSON.stringify(spec), ticket, SUBMIT_TIMEOUT_MS);
      if (held === null) return null;
      // Whether the engine holds it. A refused prepare is not thrown here: the whole submission that
      // follows gets the engine's refusal itself, through the same door.
      const holding = held.answer.then((a) => a.status === 200, () => false);
      return {
        held: holding,
        release: async () => {
          if (!(await holding)) return null;
          const released = held.release(SUBMIT_TIMEOUT_MS);
          if (released === null) return null;
          const answer = await released;
          if (answer.status === 404) return null; // no longer held (its bound): nothing admitted
          if (answer.status !== 201) throw refusal(answer, 'POST /jobs');
          return parsed<{ id: string; state: string }>(answer, '/jobs', (v) => typeof (v as { id?: unknown })?.id === 'string');
        },
        // Once the engine has answered the prepare: a drop that overtook it would find nothing to drop.
        drop: () => void holding.then((h) => h && held.drop()),
      };
    },
    status: async (id) => {
      const path = `/jobs/${encodeURIComponent(id)}`;
      const answer = await send('GET', path);
      if (answer.status === 404) return null;
      if (answer.status !== 200) throw refusal(answer, path);
      return parsed<JobStatus>(answer, path, isStatus);
    },
    active: async () => (await getJson<JobList>('/jobs?active=1', (v) => Value.Check(JobListSchema, v), 10_000)).jobs,
    cancel: async (id) => {
      const path = `/jobs/${encodeURIComponent(id)}`;
      const answer = await send('DELETE', path, { timeoutMs: 60_000 });
      if (answer.status === 404) return null;
      if (answer.status !== 200) throw refusal(answer, path);
      return parsed<JobStatus>(answer, path, isStatus);
    },
    logs: async (id, follow) => {
      const path = `/jobs/${encodeURIComponent(id)}/logs${follow ? '?follow=1' : ''}`;
      // The answer's head is due at once; a followed body then lasts as long as the job.
      const res = await open('GET', path, { timeoutMs: 30_000, follow });
      if (res.statusCode === 200) return res;
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      if (res.statusCode === 404) return null;
      throw refusal({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }, path);
    },
    events: async (from) => {
      const path = `/events${from === null ? '' : `?${new URLSearchParams({ epoch: from.epoch, after: String(from.after) })}`}`;
      // Out of the shared pool, as followed logs are: it stays open for as long as the engine runs.
      const res = await open('GET', path, { timeoutMs: 10_000, follow: true });
      if (res.statusCode === 200) return res;
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw refusal({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }, path);
    },
    metrics: async (timeoutMs = 2000) => {
      const answer = await send('GET', '/metrics', { timeoutMs });
      if (answer.status !== 200) throw new GatehouseError('not_ready', `engine answered ${answer.status} on /metrics`);
      return answer.text;
    },
    close: () => {
      channel.close();
      agent.destroy();
      followAgent.destroy();
      uploadAgent.destroy();
    },
  };
}

/**
 * The engine's own error (its code and message) for a 4xx: a definite refusal the client should
 * see. Anything else means the engine is not able to answer now.
 */
function refusal(answer: Answer, path: string, keepDetails = false): GatehouseError {
  let body: { error?: unknown; message?: unknown; [detail: string]: unknown } = {};
  try {
    body = JSON.parse(answer.text) as typeof body;
  } catch {
    // not JSON: reported below by status
  }
  const code = typeof body.error === 'string' && body.error in ERROR_STATUS ? (body.error as ErrorCode) : null;
  const message = typeof body.message === 'string' ? body.message : code;
  // A refused ticket is the gateway's fault, never the user's: not a 403 that policy did not decide.
  if (code === 'unauthenticated' || code === 'forbidden') return new GatehouseError('internal', `the engine refused the gateway's admission ticket: ${message}`);
  if (answer.status >= 400 && answer.status < 500 && code !== null) {
    const { error: _e, message: _m, ...details } = body;
    return new GatehouseError(code, `engine: ${message}`, keepDetails ? details : {});
  }
  return new GatehouseError('not_ready', `engine answered ${answer.status} on ${path}: ${answer.text.slice(0, 200)}`);
}
