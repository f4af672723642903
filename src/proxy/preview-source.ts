// The bytes a preview reads, as a stream of bounded windows of the partition (16 KiB, then four
// times more each time, at most 1 MiB) instead of one request for the whole partition that is cut
// off after its first rows. Each window is read to its end before it is handed on, so a connection
// to the engine is given back whole to its keep-alive pool (a stream destroyed mid-way closes its
// connection, and the next preview pays a new TLS handshake); the preview still stops reading as
// soon as it has its rows, and memory is bounded by one window.
import { Readable } from 'node:stream';

export const FIRST_WINDOW = 16 * 1024;
export const LAST_WINDOW = 1024 * 1024;

export function previewSource(read: (start: number, end: number) => Promise<Readable>, size: number): Readable {
  async function* windows(): AsyncGenerator<Buffer> {
    let window = FIRST_WINDOW;
    for (let start = 0; start < size; start += window, window = Math.min(window * 4, LAST_WINDOW)) {
      const end = Math.min(start + window, size) - 1;
      const chunks: Buffer[] = [];
      for await (const c of await read(start, end)) chunks.push(c as Buffer);
      yield Buffer.concat(chunks);
    }
  }
  // No read-ahead: the next window is asked for only when the preview still needs rows.
  return Readable.from(windows(), { objectMode: false, highWaterMark: 0 });
}
