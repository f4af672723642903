// A checkpoint is a compact JWS (EdDSA) saying "event N had hash H at time T". Any JOSE library
// verifies it with the key from the gateway's JWKS; the typ keeps it from passing as a token.
// Checkpoints chain to each other: each states its number in the chain (`seq`, 1, 2, ...) and the
// digest of the previous one's JWS (`prev`), so a deleted or replaced checkpoint is found the way a
// deleted event is. The checkpoint an archive run signs also names the archive file and its SHA-256
// (`archive`): the trail's anchor is only as good as that signed statement.
// Checkpoints written before the chain (no `seq`) still verify on their own signature.
import { createHash, type KeyObject, sign, verify } from 'node:crypto';

export const CHECKPOINT_TYP = 'gatehouse-audit-checkpoint';

/** What an archive run's checkpoint vouches for: the file that holds the events it removed. */
export interface ArchiveClaim {
  /** The file's name in audit.archive_dir. */
  file: string;
  /** SHA-256 (hex) of the whole file. */
  sha256: string;
  from_id: number;
  to_id: number;
}

export interface Checkpoint {
  event_id: number;
  hash: string;
  time: string;
  kid: string;
  jws: string;
  /** Its number in the checkpoint chain; absent on checkpoints signed before checkpoints chained. */
  seq?: number;
  /** checkpointDigest() of checkpoint seq - 1 (null for the first). */
  prev?: string | null;
  archive?: ArchiveClaim;
}

export interface ChainLink {
  seq: number;
  prev: string | null;
  archive?: ArchiveClaim;
}

const b64 = (s: string) => Buffer.from(s).toString('base64url');

/** The digest the next checkpoint names as `prev`: SHA-256 (base64url) of the compact JWS. */
export function checkpointDigest(jws: string): string {
  return createHash('sha256').update(jws).digest('base64url');
}

/** Signs "event `eventId` had `hash`"; with `link`, as checkpoint number link.seq of the chain. */
export function signCheckpoint(key: { kid: string; privateKey: KeyObject }, eventId: number, hash: string, time: Date, link?: ChainLink): Checkpoint {
  const header = b64(JSON.stringify({ alg: 'EdDSA', kid: key.kid, typ: CHECKPOINT_TYP }));
  const body = link
    ? { seq: link.seq, prev: link.prev, event_id: eventId, hash, time: time.toISOString(), ...(link.archive ? { archive: link.archive } : {}) }
    : { event_id: eventId, hash, time: time.toISOString() };
  const payload = b64(JSON.stringify(body));
  const signature = sign(null, Buffer.from(`${header}.${payload}`), key.privateKey).toString('base64url');
  const jws = `${header}.${payload}.${signature}`;
  return { event_id: eventId, hash, time: time.toISOString(), kid: key.kid, jws, ...(link ? { seq: link.seq, prev: link.prev, ...(link.archive ? { archive: link.archive } : {}) } : {}) };
}

/** The checkpoint a JWS states, when its signature holds under one of `keys`; otherwise why not. */
export function openCheckpoint(jws: string, keys: ReadonlyMap<string, KeyObject>): { checkpoint: Checkpoint } | { problem: string } {
  const read = readCheckpoint(jws);
  if ('problem' in read) return read;
  const problem = signatureProblem(jws, keys);
  return problem === null ? read : { problem };
}

/** Why a checkpoint's signature does not hold under `keys`, or null when it does (66 µs: worth skipping). */
export function signatureProblem(jws: string, keys: ReadonlyMap<string, KeyObject>): string | null {
  const [h, p, s] = jws.split('.');
  let kid: unknown;
  try {
    kid = (JSON.parse(Buffer.from(h!, 'base64url').toString('utf8')) as { kid?: unknown }).kid;
  } catch {
    return 'unreadable JWS';
  }
  const key = typeof kid === 'string' ? keys.get(kid) : undefined;
  if (!key) return `signed by an unknown key ${JSON.stringify(kid ?? null)}`;
  return verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s ?? '', 'base64url')) ? null : 'the signature does not verify';
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function archiveOf(v: unknown): ArchiveClaim | undefined | null {
  if (v === undefined) return undefined;
  const a = v as Partial<ArchiveClaim> | null;
  if (!a || typeof a !== 'object' || typeof a.file !== 'string' || typeof a.sha256 !== 'string' || !isCount(a.from_id) || !isCount(a.to_id)) return null;
  return { file: a.file, sha256: a.sha256, from_id: a.from_id, to_id: a.to_id };
}

/** What a checkpoint JWS states, its signature not yet checked. */
export function readCheckpoint(jws: string): { checkpoint: Checkpoint } | { problem: string } {
  const parts = jws.split('.');
  if (parts.length !== 3) return { problem: 'not a compact JWS' };
  let header: { alg?: string; kid?: string; typ?: string };
  let payload: { event_id?: unknown; hash?: unknown; time?: unknown; seq?: unknown; prev?: unknown; archive?: unknown };
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return { problem: 'unreadable JWS' };
  }
  if (!header || !payload || typeof header !== 'object' || typeof payload !== 'object') return { problem: 'unreadable JWS' };
  if (header.alg !== 'EdDSA' || header.typ !== CHECKPOINT_TYP) return { problem: `not a checkpoint (alg ${header.alg}, typ ${header.typ})` };
  if (typeof payload.event_id !== 'number' || typeof payload.hash !== 'string' || typeof payload.time !== 'string') return { problem: 'the payload is not a checkpoint' };
  const checkpoint: Checkpoint = { event_id: payload.event_id, hash: payload.hash, time: payload.time, kid: String(header.kid ?? ''), jws };
  if (payload.seq !== undefined) {
    const archive = archiveOf(payload.archive);
    if (!isCount(payload.seq) || payload.seq < 1 || !(payload.prev === null || typeof payload.prev === 'string') || archive === null) return { problem: 'the payload is not a checkpoint (its chain fields are malformed)' };
    checkpoint.seq = payload.seq;
    checkpoint.prev = payload.prev;
    if (archive) checkpoint.archive = archive;
  }
  return { checkpoint };
}
