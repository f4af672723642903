// The engine's job API. POST /jobs runs nothing without an admission ticket signed by the key
// of the gateway certificate presenting it, for exactly this spec, this user, these resources,
// once. The job channel (job-channel.ts) takes submissions through the same door, acceptJob.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { KeyObject } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import Type from 'typebox';
import { NoQuery } from '../http/index.js';
import {
  GatehouseError,
  type JobList,
  JobListSchema,
  type JobSpec,
  jobSpecHash,
  JobSpecSchema,
  type JobStatus,
  JobStatusSchema,
  TICKET_HEADER,
  TicketError,
  verifyAdmissionTicket,
} from '../wire/index.js';
import type { PreparedJob } from './jobs/intake.js';
import type { JobEngine } from './jobs/job-engine.js';

const JobParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });
const ListQuery = Type.Object(
  {
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    // The gateway's reconciler: every job not yet ended, whatever the limit, in one answer.
    active: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0')])),
  },
  { additionalProperties: false },
);
const LogsQuery = Type.Object({ follow: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')])) }, { additionalProperties: false });
const Created = Type.Object({ id: Type.String(), state: Type.String() }, { additionalProperties: false });

export function jobRoutes(server: FastifyInstance, jobs: JobEngine): void {
  // Handler types come from the route schemas (the ones Ajv validates with), never restated.
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/jobs',
    { schema: { querystring: NoQuery, body: JobSpecSchema, response: { 201: Created } } },
    async (request, reply) => {
      const header = request.headers[TICKET_HEADER];
      const peer = (request.raw.socket as TLSSocket).getPeerX509Certificate();
      const created = await acceptJob(jobs, request.body, Array.isArray(header) ? header[0] : header, peer?.publicKey, request.log);
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/jobs',
    { schema: { querystring: ListQuery, response: { 200: JobListSchema } } },
    async (request): Promise<JobList> => {
      const { user, limit, active } = request.query;
      return { jobs: active === '1' ? jobs.active().filter((j) => user === undefined || j.user === user) : jobs.list(user, limit ?? 100) };
    },
  );

  app.get(
    '/jobs/:id',
    { schema: { params: JobParams, querystring: NoQuery, response: { 200: JobStatusSchema } } },
    async (request): Promise<JobStatus> => found(jobs.status(request.params.id), request.params.id),
  );

  app.delete(
    '/jobs/:id',
    { schema: { params: JobParams, querystring: NoQuery, response: { 200: JobStatusSchema } } },
    async (request): Promise<JobStatus> => found(await jobs.cancel(request.params.id), request.params.id),
  );

  app.get(
    '/jobs/:id/logs',
    { schema: { params: JobParams, querystring: LogsQuery } },
    async (request, reply) => {
      const log = jobs.logOf(request.params.id);
      if (log === undefined) throw new GatehouseError('not_found', `no job ${request.params.id}`);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      reply.type('text/plain; charset=utf-8');
      const live = log.live;
      if (!follow || live === null) {
        const exists = await stat(log.file).then(() => true, () => false);
        return exists ? reply.send(createReadStream(log.file)) : reply.send('');
      }
      // Follow: what is in the file, then each line as it is written, until the job ends.
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-request-id': request.id });
      const pending: string[] = [];
      let replayed = false;
      let ended = false;
      const onLine = (text: string) => (replayed ? out.write(text) : pending.push(text));
      const onEnd = () => {
        live.off('line', onLine);
        if (replayed) out.end();
        else ended = true; // ended during the replay: end once the replay is written
      };
      live.on('line', onLine);
      live.once('end', onEnd);
      out.on('close', () => {
        live.off('line', onLine);
        live.off('end', onEnd);
      });
      // The file's length as the log has written it, read in the same turn as the listener was added:
      // every byte before it is replayed from the file, every line after it comes as an event. (A stat
      // through the thread pool saw the file at some moment before its answer while lines kept coming:
      // the replay was cut short by those, and a line could be lost or split. follow-place under load.)
      const start = live.size;
      if (start > 0) {
        for await (const chunk of createReadStream(log.file, { start: 0, end: start - 1 })) out.write(chunk);
      }
      for (const text of pending) out.write(text);
      replayed = true;
      if (ended) out.end();
    },
  );
}

/**
 * The engine's one door for a job, behind POST /jobs and the job channel alike: the ticket's
 * signature (by `peerKey`, the key of the connection's client certificate), lifetime and binding to
 * this spec, then the intake (which checks whether the ticket was spent). The spec has passed
 * JobSpecSchema already.
 */
export async function acceptJob(jobs: JobEngine, spec: JobSpec, token: string | undefined, peerKey: KeyObject | undefined, log: FastifyBaseLogger): Promise<{ id: string; state: string }> {
  if (peerKey === undefined) throw new GatehouseError('unauthenticated', 'no client certificate');
  const claims = await admitted(spec, token, peerKey, log);
  return accepted(jobs.commit(await jobs.prepare(spec, claims)), log);
}

/** The first half of the same door (the held handover): every check acceptJob makes, then held, not stored. */
export async function prepareJob(jobs: JobEngine, spec: JobSpec, token: string | undefined, peerKey: KeyObject | undefined, log: FastifyBaseLogger): Promise<PreparedJob> {
  if (peerKey === undefined) throw new GatehouseError('unauthenticated', 'no client certificate');
  return jobs.prepare(spec, await admitted(spec, token, peerKey, log));
}

/** The second half: a held job admitted (the ticket spent, the job stored and started), answered as POST /jobs answers. */
export function releaseJob(jobs: JobEngine, prepared: PreparedJob, log: FastifyBaseLogger): { id: string; state: string } {
  return accepted(jobs.commit(prepared), log);
}

function accepted(status: JobStatus, log: FastifyBaseLogger): { id: string; state: string } {
  log.info({ job: status.id, user: status.user }, 'job accepted');
  return { id: status.id, state: status.state };
}

async function admitted(spec: JobSpec, token: string | undefined, peerKey: KeyObject, log: FastifyBaseLogger) {
  try {
    const claims = await verifyAdmissionTicket(token, peerKey);
    if (claims.spec !== jobSpecHash(spec)) throw new TicketError('mismatch', 'the admission ticket was issued for a different job spec');
    const { cores, memory_mb, time_limit_s } = spec.resources;
    const g = claims.granted;
    if (g.cores > cores || g.memory_mb > memory_mb || g.time_limit_s > time_limit_s) {
      throw new TicketError('mismatch', 'the admission ticket grants more than the spec asks for');
    }
    return claims;
  } catch (err) {
    if (err instanceof TicketError) {
      log.warn({ problem: err.problem }, 'admission ticket refused');
      throw new GatehouseError(err.problem === 'missing' ? 'unauthenticated' : 'forbidden', err.message, { ticket: err.problem });
    }
    throw err;
  }
}

function found(status: JobStatus | undefined, id: string): JobStatus {
  if (status === undefined) throw new GatehouseError('not_found', `no job ${id}`);
  return status;
}
