// The job channel: one kept-open mTLS connection from the gateway to the bundled engine that carries
// submissions as length-prefixed frames, instead of a new HTTP request per job (the HTTP machinery on
// both ends was most of the hop's cost). It is the engine's own HTTPS port, upgraded: the same TLS,
// the same client certificate check. Frames, every integer big-endian:
//   request: u32 length of the rest | u32 id (1..2^32-1) | u8 kind | what the kind carries:
//     submit (1), prepare (2): u16 ticket length | ticket | spec (JSON)
//     release (3), drop (4):   the job id (the one its prepare's ticket names)
//   answer:  u32 length of the rest | u32 id | u16 HTTP status | body (JSON, as POST /jobs answers)
// An answer with id 0 is the engine closing the channel over a frame it could not read.
// prepare/release is the held handover: the engine checks a job (ticket, input, output) and holds
// it in memory, nothing stored or run, until the gateway's release once job.submit is durable
// (src/compute/held-jobs.ts). A drop, the channel's end, or a bound lets it go.

export const JOB_CHANNEL_PATH = '/jobs/channel';
export const JOB_CHANNEL_PROTOCOL = 'gatehouse-jobs/2';

/** Longest ticket a frame may carry (a real one is under 1 KiB). */
export const CHANNEL_TICKET_MAX_BYTES = 8 * 1024;

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

function frame(head: Buffer, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + head.length + body.length);
  out.writeUInt32BE(head.length + body.length, 0);
  head.copy(out, 4);
  body.copy(out, 4 + head.length);
  return out;
}

export type RequestKind = 'submit' | 'prepare' | 'release' | 'drop';
const KINDS: readonly RequestKind[] = ['submit', 'prepare', 'release', 'drop'];
const kindByte = (kind: RequestKind) => KINDS.indexOf(kind) + 1;

/** A job's spec and ticket: to be admitted at once (submit) or checked and held (prepare). */
export function submissionFrame(id: number, ticket: string, specJson: string, kind: 'submit' | 'prepare' = 'submit'): Buffer {
  const t = Buffer.from(ticket, 'utf8');
  if (t.length > CHANNEL_TICKET_MAX_BYTES) throw new FrameError('the ticket is longer than a frame may carry');
  const head = Buffer.allocUnsafe(7);
  head.writeUInt32BE(id, 0);
  head.writeUInt8(kindByte(kind), 4);
  head.writeUInt16BE(t.length, 5);
  return frame(Buffer.concat([head, t]), Buffer.from(specJson, 'utf8'));
}

/** Releases (admits) or drops the job a prepare on the same channel holds. */
export function heldFrame(id: number, kind: 'release' | 'drop', job: string): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(id, 0);
  head.writeUInt8(kindByte(kind), 4);
  return frame(head, Buffer.from(job, 'utf8'));
}

export function answerFrame(id: number, status: number, body: unknown): Buffer {
  const head = Buffer.allocUnsafe(6);
  head.writeUInt32BE(id, 0);
  head.writeUInt16BE(status, 4);
  return frame(head, Buffer.from(JSON.stringify(body), 'utf8'));
}

export interface Submission {
  id: number;
  kind: 'submit' | 'prepare';
  ticket: string;
  /** The spec's JSON text, parsed by the receiver as a route parses a body. */
  spec: string;
}

export interface HeldRequest {
  id: number;
  kind: 'release' | 'drop';
  job: string;
}

export function readRequest(payload: Buffer): Submission | HeldRequest {
  if (payload.length < 5) throw new FrameError('a request frame is shorter than its header');
  const id = payload.readUInt32BE(0);
  if (id === 0) throw new FrameError('a request frame has id 0');
  const kind = KINDS[payload.readUInt8(4) - 1];
  if (kind === undefined) throw new FrameError('a request frame of no kind the channel knows');
  if (kind === 'release' || kind === 'drop') return { id, kind, job: payload.toString('utf8', 5) };
  if (payload.length < 7) throw new FrameError('a submission frame is shorter than its header');
  const ticketLength = payload.readUInt16BE(5);
  if (ticketLength > CHANNEL_TICKET_MAX_BYTES || 7 + ticketLength > payload.length) throw new FrameError('a submission frame names a ticket longer than it carries');
  return { id, kind, ticket: payload.toString('utf8', 7, 7 + ticketLength), spec: payload.toString('utf8', 7 + ticketLength) };
}

export function readAnswer(payload: Buffer): { id: number; status: number; text: string } {
  if (payload.length < 6) throw new FrameError('an answer frame is shorter than its header');
  return { id: payload.readUInt32BE(0), status: payload.readUInt16BE(4), text: payload.toString('utf8', 6) };
}

/**
 * Cuts a byte stream into frames' payloads. A frame announcing more than `maxBytes` is refused from
 * its length alone, before its bytes are read or kept.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private held = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.held += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.held < 4) return out;
      const head = this.chunks[0]!.length >= 4 ? this.chunks[0]! : this.joined();
      const length = head.readUInt32BE(0);
      if (length > this.maxBytes) throw new FrameError(`a frame of ${length} bytes is over the channel's limit of ${this.maxBytes}`);
      if (this.held < 4 + length) return out;
      const all = this.joined();
      out.push(all.subarray(4, 4 + length));
      const rest = all.subarray(4 + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.held = rest.length;
    }
  }

  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }
}
