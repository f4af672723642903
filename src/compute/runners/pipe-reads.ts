// Stopping and restarting a pipe's reads at its descriptor. A stream's pause() only stops its flow:
// libuv goes on reading into the stream's buffer, and each write on the other end wakes the engine's
// loop. Node has no public call for this; net.Socket's own pause does the same for sockets made with
// an `onread` buffer. Apart so the one use of Socket's handle is in one place.
import type { Readable } from 'node:stream';

interface ReadingHandle {
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

function handleOf(stream: Readable | null): ReadingHandle | null {
  const handle = (stream as unknown as { _handle?: Partial<ReadingHandle> | null } | null)?._handle;
  return handle && typeof handle.readStop === 'function' && typeof handle.readStart === 'function' ? (handle as ReadingHandle) : null;
}

/** Stops reading `stream`'s pipe: what is written waits in the kernel. False when it cannot (no handle). */
export function holdReads(stream: Readable | null): boolean {
  const handle = handleOf(stream);
  if (handle === null) return false;
  handle.reading = false;
  handle.readStop();
  return true;
}

/** Reads `stream`'s pipe again, from where it stands. */
export function resumeReads(stream: Readable | null): void {
  const handle = handleOf(stream);
  if (handle === null || handle.reading || stream!.destroyed) return;
  handle.reading = true;
  handle.readStart();
}
