// What a task process prints, as the engine sees it: stdout/stderr cut into lines, the stderr
// tail kept for error messages, and the signs in it that the process ran out of memory.
import type { Readable } from 'node:stream';
import { killTaskGroup } from '../sandbox/index.js';

/** A line longer than this is cut: one runaway print must not fill the job's log. */
export const MAX_LINE_BYTES = 8 * 1024;
/** How many stderr lines an error message carries. */
export const TAIL_LINES = 20;

const NEWLINE = 0x0a;

/**
 * Cuts a byte stream into lines. Splitting the bytes (not decoded text) is safe for UTF-8, where
 * 0x0A never occurs inside a character, and lets a line be decoded whole.
 */
export class LineSplitter {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private dropped = 0;

  constructor(private readonly emit: (line: string) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      this.keep(chunk.subarray(start, nl));
      this.flush();
      start = nl + 1;
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
  }

  /** Emits what is left without a newline (the stream ended, or a task did). */
  flush(): void {
    if (this.partialBytes === 0 && this.dropped === 0 && this.partial.length === 0) return;
    let line = Buffer.concat(this.partial, this.partialBytes).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (this.dropped > 0) line += ` … [${this.dropped} more bytes cut]`;
    this.partial = [];
    this.partialBytes = 0;
    this.dropped = 0;
    this.emit(line);
  }

  /** Bytes of the line waiting for its newline, those cut from it included. */
  get lineBytes(): number {
    return this.partialBytes + this.dropped;
  }

  /** True when a partial line is waiting for its newline. */
  get pending(): boolean {
    return this.partialBytes > 0 || this.dropped > 0;
  }

  private keep(piece: Buffer): void {
    const room = MAX_LINE_BYTES - this.partialBytes;
    if (piece.length > room) {
      this.dropped += piece.length - room;
      piece = piece.subarray(0, room);
    }
    if (piece.length === 0) return;
    // Copied: the stream may reuse the chunk's memory once we return.
    this.partial.push(Buffer.from(piece));
    this.partialBytes += piece.length;
  }
}

/** The last few stderr lines, and whether any line since the last reset said memory ran out. */
export class StderrTail {
  private lines: string[] = [];
  private oom = false;

  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > TAIL_LINES) this.lines.shift();
    if (!this.oom && looksLikeOom(line)) this.oom = true;
  }

  /** Starts a new task: the out-of-memory sign is per task, the tail is kept for context. */
  resetOom(): void {
    this.oom = false;
  }

  get sawOom(): boolean {
    return this.oom;
  }

  text(): string {
    return this.lines.join('\n');
  }
}

const OOM_SIGNS = ['MemoryError', 'JavaScript heap out of memory', 'Cannot allocate memory', 'std::bad_alloc', 'out of memory'];

/** What Python, V8, libc and C++ runtimes print when an allocation fails. */
/**
 * Pauses `streams` until the loop's next turn each time `budget` more bytes were read from them (a
 * task's prints: every line costs the engine's one thread, and libuv reads a pipe up to 32 times a
 * turn). Call the returned function with each chunk's length.
 */
export function turnMeter(streams: readonly (Readable | null | undefined)[], budget: number): (bytes: number) => void {
  let read = 0;
  let paused = false;
  return (bytes) => {
    read += bytes;
    if (read < budget || paused) return;
    paused = true;
    for (const s of streams) s?.pause();
    setImmediate(() => {
      paused = false;
      read = 0;
      for (const s of streams) s?.resume();
    });
  };
}

export function looksLikeOom(text: string): boolean {
  return OOM_SIGNS.some((sign) => text.includes(sign));
}

/** `exit code 134` or `signal SIGKILL`, for messages about a process that ended. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `signal ${signal}` : `exit code ${code ?? 'unknown'}`;
}

/** A one-line reason followed by the stderr tail, when there is one. */
export function withTail(reason: string, tail: string): string {
  return tail === '' ? reason : `${reason}\n${tail}`;
}

/** Kills a task's process group (the sandbox's killTaskGroup); no pid means the spawn failed: nothing to kill. */
export function killGroup(pid: number | undefined): void {
  if (pid !== undefined && pid > 1) killTaskGroup(pid);
}
