// The engine's end of the job channel (src/wire/job-channel.ts): the gateway upgrades one
// connection on the engine's own HTTPS port and sends submissions over it as frames. Each one goes
// through the door POST /jobs uses (acceptJob: the same schema, ticket checks and intake) and is
// answered with the same status and JSON. A frame that cannot be read (over the size limit, cut
// short, not JSON) closes the channel before anything of it reaches the intake.
// The held handover: a prepare goes through the door's first half (prepareJob: the same checks,
// nothing stored) and is held for this connection alone (held-jobs.ts) until its release (the
// second half, releaseJob: answered as POST /jobs), its drop, the connection's end or the bound.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { bodyValidator } from '../http/index.js';
import {
  answerFrame,
  FrameError,
  FrameReader,
  GatehouseError,
  JOB_CHANNEL_PATH,
  JOB_CHANNEL_PROTOCOL,
  type JobSpec,
  JobSpecSchema,
  readRequest,
  CHANNEL_TICKET_MAX_BYTES,
} from '../wire/index.js';
import { HeldJobs } from './held-jobs.js';
import { acceptJob, prepareJob, releaseJob } from './job-routes.js';
import type { JobEngine } from './jobs/job-engine.js';

type Frame = { id: number; kind: 'submit' | 'prepare'; ticket: string; spec: unknown; poisoned: boolean } | { id: number; kind: 'release' | 'drop'; job: string };

/** How long a prepared job is held at most (the gateway releases it once one audit commit is durable: milliseconds). */
export const HELD_BOUND_MS = 10_000;

export interface JobChannelOptions {
  /** The route's own body limit: a frame carries one body and its ticket. */
  bodyLimit: number;
  /** Whether a connection's client certificate is the gateway's (the check every route makes). */
  isGateway: (socket: TLSSocket) => boolean;
  /** The clock held jobs' bound is kept by (tests). */
  now?: () => number;
}

export function jobChannel(app: FastifyInstance, jobs: JobEngine, o: JobChannelOptions): void {
  const validate = bodyValidator(JobSpecSchema);
  const open = new Set<Duplex>();
  const maxFrame = 7 + CHANNEL_TICKET_MAX_BYTES + o.bodyLimit;
  const held = new HeldJobs({
    boundMs: HELD_BOUND_MS,
    drop: (job, why) => {
      jobs.drop(job);
      app.log.info({ job: job.claims.job, user: job.claims.user, output: job.spec.output, why }, 'held job dropped, never admitted');
    },
    ...(o.now ? { now: o.now } : {}),
  });
  // A gateway that neither releases nor drops (stalled) must not keep outputs reserved past the bound.
  const sweeper = setInterval(() => held.sweep(), HELD_BOUND_MS);
  sweeper.unref();

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const tlsSocket = socket as TLSSocket;
    const refuse = (status: string) => socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    if (req.url !== JOB_CHANNEL_PATH || req.headers.upgrade !== JOB_CHANNEL_PROTOCOL) return refuse('404 Not Found');
    if (!o.isGateway(tlsSocket)) return refuse('403 Forbidden');
    const peerKey = tlsSocket.getPeerX509Certificate()?.publicKey;
    if (peerKey === undefined) return refuse('403 Forbidden');
    tlsSocket.setNoDelay(true);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${JOB_CHANNEL_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`);
    open.add(socket);
    const log = app.log.child({ channel: 'jobs' });
    const reader = new FrameReader(maxFrame);
    const answer = (id: number, status: number, body: unknown) => {
      if (!socket.destroyed) socket.write(answerFrame(id, status, body));
    };
    /** Read whole before anything of it is acted on: a frame that cannot be read throws here. */
    const read = (payload: Buffer): Frame => {
      const request = readRequest(payload);
      if ('job' in request) return request;
      const { id, kind, ticket, spec } = request;
      let poisoned = false;
      try {
        // As the routes' JSON parser (fastify's onProtoPoisoning 'error'): a __proto__ key is refused.
        const parsed = JSON.parse(spec, (key, value: unknown) => {
          if (key === '__proto__') poisoned = true;
          return value;
        }) as unknown;
        return { id, kind, ticket, spec: parsed, poisoned };
      } catch {
        throw new FrameError('a submission frame carries a spec that is not JSON');
      }
    };
    const refused = (id: number, err: unknown) => {
      const known = err instanceof GatehouseError ? err : null;
      if (known === null) log.error({ err }, 'unhandled error on the job channel');
      const e = known ?? new GatehouseError('internal', 'internal error on the job channel');
      answer(id, e.status, e.toBody());
    };
    const handle = async (f: Frame) => {
      try {
        if ('job' in f) {
          if (f.kind === 'drop') return answer(f.id, 200, { dropped: held.drop(socket, f.job) });
          const job = held.take(socket, f.job);
          // Never prepared, another connection's, already released or dropped, or past its bound: nothing to admit.
          if (job === undefined) throw new GatehouseError('not_found', `no job ${f.job.slice(0, 64)} is held on this channel`, { held: false });
          return answer(f.id, 201, releaseJob(jobs, job, log));
        }
        if (f.poisoned) throw new GatehouseError('invalid_request', 'Object contains forbidden prototype property');
        const refusal = validate(f.spec);
        if (refusal !== null) throw refusal;
        if (f.kind === 'submit') return answer(f.id, 201, await acceptJob(jobs, f.spec as JobSpec, f.ticket, peerKey, log));
        const job = await prepareJob(jobs, f.spec as JobSpec, f.ticket, peerKey, log);
        // The connection ended while it was being checked: nobody can release it.
        if (socket.destroyed) return jobs.drop(job);
        held.hold(socket, job);
        answer(f.id, 200, { id: job.claims.job, state: 'held' });
      } catch (err) {
        refused(f.id, err);
      }
    };
    const onData = (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk).map(read);
      } catch (err) {
        // Nothing of this chunk is submitted, not even the frames before the bad one.
        socket.off('data', onData);
        const problem = err instanceof FrameError ? err.message : 'a frame could not be read';
        log.warn({ problem }, 'job channel closed: a frame could not be read');
        answer(0, 400, new GatehouseError('invalid_request', problem).toBody());
        socket.end(() => socket.destroy());
        return;
      }
      for (const f of frames) void handle(f);
    };
    socket.on('data', onData);
    socket.on('error', (err) => log.info({ err: err.message }, 'job channel lost'));
    socket.on('close', () => {
      open.delete(socket);
      held.dropAll(socket);
    });
    if (head.length > 0) onData(head);
  });

  // An upgraded connection is no longer the HTTP server's: closing the engine closes it here.
  app.addHook('onClose', () => {
    clearInterval(sweeper);
    for (const socket of open) socket.destroy();
  });
}
