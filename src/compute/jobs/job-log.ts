// A job's log: every worker line prefixed with its partition, engine events marked [engine],
// appended to one file per job, capped so a chatty job cannot fill the disk. Followers get each
// line as it is written.
import { EventEmitter } from 'node:events';
import { closeSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Room for engine lines past the cap. */
const ENGINE_RESERVE = 64 * 1024;

/** A line from the runners' ctx.log (Python's logging, Node's `INFO ...`). */
const LOG_LEVEL = /^(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL) /;

/**
 * A job's line as its log shows it, on the bundled engine and in a Slurm task alike: ctx.log lines
 * arrive on stderr with their level first (INFO ...), and the level says what they are; anything
 * else on stderr is labelled `stderr:`, not flagged as if it were an error; stdout as it is.
 */
export const labelledLine = (stream: 'stdout' | 'stderr', line: string) => (stream === 'stdout' || LOG_LEVEL.test(line) ? line : `stderr: ${line}`);

export class JobLog extends EventEmitter {
  private written: number;
  private dropped = 0;
  private fd: number | null = null;
  private ended = false;

  constructor(
    readonly file: string,
    private readonly maxBytes: number,
  ) {
    super();
    this.setMaxListeners(0); // one per follower
    try {
      this.written = statSync(file).size; // after a restart, the cap counts what is there
    } catch {
      this.written = 0;
    }
  }

  static forJob(dir: string, jobId: string, maxBytes: number): JobLog {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new JobLog(join(dir, `${jobId}.log`), maxBytes);
  }

  partition(partition: number | null, stream: 'stdout' | 'stderr', line: string): void {
    const tag = partition === null ? '[worker]' : `[p${partition}]`;
    this.append(`${tag} ${labelledLine(stream, line)}`);
  }

  engine(message: string): void {
    this.append(`[engine] ${new Date().toISOString()} ${message}`, true);
  }

  /**
   * Worker lines stop at the cap. Engine lines (what happened: retries, the outcome) get a reserve
   * beyond it, and past that only their first line, so retries of a big job cannot fill the disk.
   */
  private append(line: string, always = false): void {
    if (this.ended) return; // a late line from a dying worker
    let text = `${line}\n`;
    if (always && this.written + Buffer.byteLength(text) > this.maxBytes + ENGINE_RESERVE) text = `${line.split('\n', 1)[0]!.slice(0, 300)}\n`;
    const bytes = Buffer.byteLength(text);
    if (!always && this.written + bytes > this.maxBytes) {
      if (this.dropped++ === 0) this.append(`[engine] log limit of ${Math.round(this.maxBytes / 1024)} KiB reached; further worker lines are counted, not kept`, true);
      return;
    }
    this.fd ??= openSync(this.file, 'a', 0o600);
    writeSync(this.fd, text);
    this.written += bytes;
    this.emit('line', text);
  }

  /** Bytes in the file now: every line appended later is a 'line' event (written before it is emitted). */
  get size(): number {
    return this.written;
  }

  /** Lines past the cap, reported when the job ends. */
  get droppedLines(): number {
    return this.dropped;
  }

  /** Followers stop when this fires. */
  end(): void {
    if (this.dropped > 0) this.engine(`${this.dropped} worker lines were over the log limit and not kept`);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.ended = true;
    this.emit('end');
  }
}
