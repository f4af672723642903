// The gateway's end of the engine's job stream (GET /events): held open for as long as both run, so
// a job's start, progress and end reach the job book the moment the engine has them, and GET
// /v1/jobs/:id shows `succeeded` without waiting for a poll or a cached status to expire. When the
// stream breaks it reconnects and asks for what came after the last change it saw; when the engine
// cannot replay that (it restarted, or too much happened), `onGap` catches up the way the reconciler
// does. The reconciler's polling stays as the safety net either way.
import type { IncomingMessage } from 'node:http';
import { Value } from 'typebox/value';
import { JOB_EVENTS_PING_MS, type JobEventLine, JobEventLineSchema, type JobStatus } from '../wire/index.js';

/** Where the stream's troubles are told (the gateway's logger; job-book.ts's Logger, without importing it). */
export interface EventsLog {
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

export interface EngineEventsOptions {
  /** Opens the stream after `from` (null: from now). */
  open(from: { epoch: string; after: number } | null): Promise<IncomingMessage>;
  /** A job's status as the engine has it now. Called in order; never throws back here (errors are logged). */
  onStatus(status: JobStatus): Promise<void>;
  /** Changes may have been missed (a first connection, an engine restart, a replay too long ago): catch up. */
  onGap(): void;
  log: EventsLog;
}

export interface EngineEvents {
  /** Whether a stream is open now and its hello was read. */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Between reconnects: from RETRY_MIN_MS, doubled up to RETRY_MAX_MS while the engine stays away. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;
/** No line (not even a ping) for this long: the connection is dead though no error said so. */
const SILENCE_MS = 3 * JOB_EVENTS_PING_MS;
/** Far above any job status (a few hundred bytes): a longer line is a broken stream. */
const MAX_LINE = 1024 * 1024;

export function watchEngineEvents(o: EngineEventsOptions): EngineEvents {
  let closed = false;
  let connected = false;
  let current = null as IncomingMessage | null;
  let wake: (() => void) | null = null;
  let from: { epoch: string; after: number } | null = null;

  async function stream(): Promise<void> {
    const res = await o.open(from);
    current = res;
    if (closed) res.destroy();
    res.socket.setTimeout(SILENCE_MS, () => res.destroy(new Error(`no line from the engine for ${SILENCE_MS} ms`)));
    let greeted = false;
    for await (const text of linesOf(res)) {
      let line: unknown;
      try {
        line = JSON.parse(text);
      } catch {
        line = undefined;
      }
      if (!Value.Check(JobEventLineSchema, line)) {
        // Not resumed from here: a replay would send the same line again, and again (an engine of
        // another version, say). Starting afresh skips it; the reconcile pass of the gap covers it.
        from = null;
        throw new Error(`the engine sent a line of another shape on /events: ${text.slice(0, 120)}`);
      }
      const event = line as JobEventLine;
      if (event.type === 'hello') {
        greeted = true;
        connected = true;
        // Resumed: the lines after ours follow (the hello's seq is the engine's latest, not where the replay starts).
        const resumed = event.resumed && from !== null && from.epoch === event.epoch && from.after <= event.seq;
        if (!resumed) {
          from = { epoch: event.epoch, after: event.seq };
          o.onGap();
        }
        continue;
      }
      if (!greeted || from === null) throw new Error('the engine sent job events before its hello');
      if (event.type === 'job') {
        if (event.seq !== from.after + 1) throw new Error(`job event ${event.seq} after ${from.after}: one went missing`);
        from.after = event.seq;
        await o.onStatus(event.status).catch((err: Error) => o.log.error({ job: event.status.id, err: err.message }, 'a pushed job status was not applied; the reconciler will see it'));
      }
    }
    if (!closed) throw new Error('the engine ended its job stream');
  }

  void (async () => {
    let retry = RETRY_MIN_MS;
    while (!closed) {
      try {
        await stream();
      } catch (err) {
        if (!closed && (connected || retry === RETRY_MIN_MS)) o.log.warn({ err: (err as Error).message }, 'engine job stream lost; reconnecting (polling covers the gap)');
      }
      if (connected) retry = RETRY_MIN_MS; // it was up: the first retry is soon again
      connected = false;
      current?.destroy();
      current = null;
      if (closed) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, retry).unref();
      });
      wake = null;
      retry = Math.min(RETRY_MAX_MS, retry * 2);
    }
  })();

  return {
    get connected() {
      return connected;
    },
    close: async () => {
      closed = true;
      current?.destroy();
      wake?.();
    },
  };
}

/** The stream's lines; iterating the response itself (not readline) so that a cut connection ends it with an error. */
async function* linesOf(res: IncomingMessage): AsyncGenerator<string> {
  let rest = '';
  res.setEncoding('utf8');
  for await (const chunk of res as AsyncIterable<string>) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    if (rest.length > MAX_LINE) throw new Error(`a line of more than ${MAX_LINE} characters on the engine's job stream`);
    for (const line of parts) if (line !== '') yield line;
  }
}
