// The job API: submit, list, status, logs, cancel, and the caller's quota. Every route
// is authenticated (stage 1, before these handlers); the rest of the road is in JobService.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { identityOf, stillAuthenticated } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { JobSpecSchema } from '../wire/index.js';
import { PreviewSchema } from './job-preview.js';
import type { JobService } from './job-service.js';
import { CreatedSchema, JobSeenViewSchema, JobViewListSchema, JobViewSchema, QuotaViewSchema } from './job-view.js';
import { MAX_WAIT_S } from './job-wait.js';

const JobParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }, { additionalProperties: false });
const ListQuery = Type.Object(
  {
    all: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')], { description: "everyone's jobs (policy: read on job:all)" })),
    state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('queued'), Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('cancelled')])),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);
const LogsQuery = Type.Object({ follow: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')])) }, { additionalProperties: false });
const StatusQuery = Type.Object(
  {
    wait_s: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WAIT_S, description: `hold the answer up to this many seconds (at most ${MAX_WAIT_S}) while the job still matches seen` })),
    seen: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'the seen token of the previous answer' })),
  },
  { additionalProperties: false },
);
const yes = (v: string | undefined) => v === '1' || v === 'true';

// What each route needs (config.authorize): submitting is decided on the datasets the body names,
// the rest acts on the caller's own jobs; someone else's is a policy decision the job path makes
// through the Authorizer port and records like the authorization stage does.
const SUBMIT = { decidedInHandler: 'the datasets the body names: read on the input, write on the output with every label it will carry, owner or admin to replace it (again as a pending job leaves the queue)' };
const PREVIEW = { decidedInHandler: 'the same dataset decisions as a submission, answered rather than enforced; recorded once as job.preview' };
const OWN_JOBS = { own: "the caller's jobs; everyone's (all=1) with read or admin on job:all" };
const OWN_JOB = { own: "the caller's job; another's with read or admin on job:<id>, else 404" };
const OWN_JOB_CANCEL = { own: "the caller's job; another's with admin on job:<id>, else 404" };
const OWN_QUOTA = { own: "the caller's limits, usage and pending jobs" };

export function installJobRoutes(server: FastifyInstance, jobs: JobService): void {
  // Handler types come from the route schemas (the ones Ajv validates with), never restated.
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  // Stopping answers every held wait first (the job as it is): the close then waits for no caller,
  // and clients ask again once the gateway is back.
  server.addHook('preClose', async () => jobs.waits.close());
  app.post(
    '/v1/jobs',
    { config: { authorize: SUBMIT }, schema: { summary: 'Submit a job: authorized, admitted within quota (or pending), handed to its backend', querystring: NoQuery, body: JobSpecSchema, response: { 201: CreatedSchema } } },
    async (request, reply) => reply.code(201).send(await jobs.submit(identityOf(request), request.body, request)),
  );

  app.post(
    '/v1/jobs/preview',
    { config: { authorize: PREVIEW }, schema: { summary: 'A dry run: what the job would take, and what the policy and the quota would decide (with the rule or limit line); nothing runs or is held', querystring: NoQuery, body: JobSpecSchema, response: { 200: PreviewSchema } } },
    async (request) => jobs.preview(identityOf(request), request.body, request),
  );

  app.get(
    '/v1/jobs',
    { config: { authorize: OWN_JOBS }, schema: { summary: "The caller's jobs, newest first (everyone's with all=1, if policy allows)", querystring: ListQuery, response: { 200: JobViewListSchema } } },
    async (request) => ({ jobs: await jobs.list(identityOf(request), { all: yes(request.query.all), state: request.query.state, limit: request.query.limit ?? 100 }, request) }),
  );

  app.get(
    '/v1/jobs/:id',
    {
      config: { authorize: OWN_JOB },
      schema: {
        summary: 'A job’s state and progress (another user’s job is 404); with wait_s and seen, answered once it differs from what the caller saw, or after wait_s',
        params: JobParams,
        querystring: StatusQuery,
        response: { 200: JobSeenViewSchema },
      },
    },
    async (request, reply) => {
      const { wait_s, seen } = request.query;
      // The caller leaving ends a held wait and gives its place back (a response closed before it finished).
      const gone = wait_s === undefined ? undefined : new Promise<void>((resolve) => reply.raw.once('close', () => resolve()));
      const view = await jobs.viewSeen(identityOf(request), request.params.id, request, gone === undefined ? undefined : { seconds: wait_s!, seen, gone });
      // Held up to wait_s: a login that ended meanwhile (logout, revocation) is answered 401, not with the job.
      if (wait_s !== undefined && wait_s > 0) await stillAuthenticated(request);
      return view;
    },
  );

  app.delete(
    '/v1/jobs/:id',
    { config: { authorize: OWN_JOB_CANCEL }, schema: { summary: 'Cancel a job, pending or running; its quota is released', params: JobParams, querystring: NoQuery, response: { 200: JobViewSchema } } },
    async (request) => jobs.cancel(identityOf(request), request.params.id, request),
  );

  app.get(
    '/v1/jobs/:id/logs',
    { config: { authorize: OWN_JOB }, schema: { summary: 'A job’s log as text; follow=1 streams it until the job ends', params: JobParams, querystring: LogsQuery } },
    async (request, reply) => {
      const follow = yes(request.query.follow);
      const body = await jobs.logs(identityOf(request), request.params.id, follow, request);
      reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store');
      if (typeof body !== 'string') {
        // The client leaving ends the backend stream too, so a followed log holds nothing open.
        reply.raw.once('close', () => body.destroy());
        // A followed log's head goes at once, not with its first line: the clients time out only until
        // the head, and a job not yet handed to its backend (log-follow.ts) may say nothing for a while.
        if (follow) reply.raw.once('pipe', () => reply.raw.flushHeaders());
      }
      return reply.send(body);
    },
  );

  app.get(
    '/v1/quota',
    { config: { authorize: OWN_QUOTA }, schema: { summary: "The caller's limits (and where each comes from), usage and pending jobs", querystring: NoQuery, response: { 200: QuotaViewSchema } } },
    async (request) => jobs.quota(identityOf(request)),
  );
}
