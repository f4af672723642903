// GET /events: the engine tells the gateway of each job change as it happens (started, progress,
// ended), so the gateway need not poll to learn that a job ended. The route is behind the engine's
// onRequest check like every other (only the gateway's client certificate). Changes are numbered
// within this process's epoch and the last few thousand kept, so a gateway that reconnects gets
// what it missed; one that asks for more than is kept (or another epoch: the engine restarted) is
// told so in the first line, and catches up by asking for the active jobs as its reconciler does.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { JOB_EVENTS_PING_MS, type JobEventLine, JobEventsQuerySchema, type JobStatus } from '../wire/index.js';
import type { JobEngine } from './jobs/job-engine.js';

/** Changes kept for a reconnecting gateway: minutes of a busy engine's progress. */
const KEPT = 4096;
/** Progress of one job is sent at most this often (its start and end always at once): the engine's CPU is the workers'. */
const PROGRESS_EVERY_MS = 100;
/** A gateway this far behind (bytes queued on its socket) is cut off; it reconnects and resumes or catches up. */
const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;

export class JobEventLog {
  readonly epoch = randomUUID();
  private seq = 0;
  private readonly kept: { seq: number; line: string }[] = [];
  private readonly listeners = new Set<(line: string) => void>();

  get last(): number {
    return this.seq;
  }

  publish(status: JobStatus): void {
    this.seq += 1;
    const line = `${JSON.stringify({ type: 'job', seq: this.seq, status } satisfies JobEventLine)}\n`;
    this.kept.push({ seq: this.seq, line });
    if (this.kept.length > KEPT) this.kept.splice(0, this.kept.length - KEPT);
    for (const listener of this.listeners) listener(line);
  }

  /** The kept lines after `after`, or null when some of them are no longer kept. */
  since(after: number): string[] | null {
    if (after > this.seq) return null; // a number this epoch never gave
    const first = this.kept[0]?.seq ?? this.seq + 1;
    if (after + 1 < first) return null;
    return this.kept.filter((k) => k.seq > after).map((k) => k.line);
  }

  listen(listener: (line: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Feeds the log from the engine's own events: a start and an end at once, progress at most every PROGRESS_EVERY_MS per job. */
export function jobEventLog(jobs: JobEngine): JobEventLog {
  const log = new JobEventLog();
  const progress = new Map<string, { at: number; timer: NodeJS.Timeout | null }>();
  const now = () => performance.now();
  const current = (id: string) => {
    const status = jobs.status(id);
    if (status !== undefined && status.finished_at === null) log.publish(status);
  };
  jobs.on('started', (id) => {
    progress.set(id, { at: now(), timer: null });
    current(id);
  });
  jobs.on('partition', ({ job }) => {
    const p = progress.get(job) ?? { at: -Infinity, timer: null };
    progress.set(job, p);
    if (p.timer !== null) return; // a send is already due
    const wait = p.at + PROGRESS_EVERY_MS - now();
    if (wait <= 0) {
      p.at = now();
      current(job);
      return;
    }
    p.timer = setTimeout(() => {
      p.timer = null;
      p.at = now();
      current(job);
    }, wait);
    p.timer.unref();
  });
  jobs.on('finished', (status) => {
    const p = progress.get(status.id);
    if (p?.timer) clearTimeout(p.timer);
    progress.delete(status.id);
    log.publish(status);
  });
  return log;
}

export function jobEventRoutes(server: FastifyInstance, log: JobEventLog): void {
  // Open streams never end by themselves: closing the engine ends them, or its close would wait forever.
  const open = new Set<ServerResponse>();
  server.addHook('preClose', async () => {
    for (const out of open) out.end();
  });
  server.withTypeProvider<TypeBoxTypeProvider>().get('/events', { schema: { querystring: JobEventsQuerySchema } }, async (request, reply) => {
    const { epoch, after } = request.query;
    const replay = epoch === log.epoch && after !== undefined ? log.since(Number(after)) : null;
    reply.hijack();
    const out: ServerResponse = reply.raw;
    out.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-request-id': request.id });
    const send = (line: string) => {
      if (out.writableLength > MAX_BACKLOG_BYTES) {
        request.log.warn({ backlog: out.writableLength }, 'the gateway does not keep up with job events; its stream is cut (it resumes)');
        out.destroy();
        return;
      }
      out.write(line);
    };
    // Everything from here on, in order: the hello, the replay, then what happens.
    send(`${JSON.stringify({ type: 'hello', epoch: log.epoch, seq: log.last, resumed: replay !== null } satisfies JobEventLine)}\n`);
    for (const line of replay ?? []) send(line);
    const stop = log.listen(send);
    const ping = setInterval(() => send(`${JSON.stringify({ type: 'ping', seq: log.last } satisfies JobEventLine)}\n`), JOB_EVENTS_PING_MS);
    ping.unref();
    open.add(out);
    out.on('close', () => {
      open.delete(out);
      stop();
      clearInterval(ping);
    });
  });
}
