// The engine's pushed job changes (GET /events, the stream the gateway holds open), as a bench waits
// for a job's end: on a connection of its own, opened before the job is submitted, so the end is
// seen the moment the engine publishes it, not at the next poll. Each line's arrival time is kept,
// so a bench can also say when every partition was first seen done (progress is sent at most every
// 100 ms per job, so that moment is approximate; the engine's "job finished" phases are exact).
import type { Agent } from 'node:https';
import { request } from 'node:https';
import { FINAL_STATES, type JobEventLine, type JobStatus } from '../../src/wire/index.js';

interface Seen {
  /** The latest status of the job, and when it arrived. */
  status: JobStatus;
  at: number;
  /** When a status first showed every partition done. */
  allDoneAt: number | null;
}

export class EngineEventStream {
  private readonly seen = new Map<string, Seen>();
  private readonly waiters = new Map<string, () => void>();
  private closed = false;
  private failure: Error | null = null;
  private destroy: (() => void) | null = null;

  private constructor() {}

  /** Opens GET /events on `agent` (one that is not the calls' kept-alive one); resolves on its hello line. */
  static open(url: string, agent: Agent): Promise<EngineEventStream> {
    const stream = new EngineEventStream();
    return new Promise((resolve, reject) => {
      const req = request(`${url}/events`, { agent }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET /events: ${res.statusCode}`));
          res.resume();
          return;
        }
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let nl = buffer.indexOf('\n');
          while (nl >= 0) {
            const line = JSON.parse(buffer.slice(0, nl)) as JobEventLine;
            buffer = buffer.slice(nl + 1);
            nl = buffer.indexOf('\n');
            if (line.type === 'hello') resolve(stream);
            else if (line.type === 'job') stream.onStatus(line.status, Date.now());
          }
        });
        res.on('close', () => stream.end(new Error('the engine closed GET /events')));
      });
      req.on('error', (err) => {
        reject(err);
        stream.end(err);
      });
      stream.destroy = () => req.destroy();
      req.end();
    });
  }

  /** The job's final status as pushed, when it arrived, and when every partition was first seen done. */
  async final(id: string): Promise<{ status: JobStatus; seenAt: number; allDoneAt: number }> {
    for (;;) {
      const s = this.seen.get(id);
      if (s !== undefined && FINAL_STATES.includes(s.status.state)) {
        this.seen.delete(id);
        return { status: s.status, seenAt: s.at, allDoneAt: s.allDoneAt ?? s.at };
      }
      if (this.failure !== null) throw this.failure;
      await new Promise<void>((resolve) => this.waiters.set(id, resolve));
    }
  }

  close(): void {
    this.closed = true;
    this.destroy?.();
  }

  private onStatus(status: JobStatus, at: number): void {
    const before = this.seen.get(status.id);
    const allDone = status.partitions.done === status.partitions.total;
    this.seen.set(status.id, { status, at, allDoneAt: before?.allDoneAt ?? (allDone ? at : null) });
    this.wake(status.id);
  }

  private end(err: Error): void {
    if (this.closed || this.failure !== null) return;
    this.failure = err;
    for (const id of [...this.waiters.keys()]) this.wake(id);
  }

  private wake(id: string): void {
    const waiter = this.waiters.get(id);
    this.waiters.delete(id);
    waiter?.();
  }
}
