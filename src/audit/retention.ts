// Retention: the oldest events go to a JSONL archive that verifies on its own (a header with the
// chain's starting hash and the public key, the events, and signed checkpoints including one on
// its last event), and only once that file is on disk are they deleted. The anchor row then says
// where the remaining chain starts, so it still verifies; its checkpoint names the archive file and
// the file's SHA-256, so verify checks the archive is there and unchanged.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { eventOf } from './chain.js';
import type { AuditRow } from './schema.js';
import type { AuditPublicJwk } from './signing-key.js';
import type { TrailWriter } from './writer.js';

export interface ArchiveResult {
  file: string;
  from_id: number;
  to_id: number;
  events: number;
}

/** The first line of an archive. */
export interface ArchiveHeader {
  archive: { format: 1; from_id: number; to_id: number; prev_hash: string; created_at: string; key: AuditPublicJwk };
}

/**
 * Archives up to `maxEvents` of the oldest events recorded before `before` (ms), then deletes them.
 * Returns null when nothing is that old.
 */
export function archiveBefore(writer: TrailWriter, before: number, archiveDir: string, maxEvents: number): ArchiveResult | null {
  const db = writer.db;
  const rows = db.prepare('select * from audit_events order by id limit ?').all(maxEvents) as AuditRow[];
  let n = 0;
  while (n < rows.length && rows[n]!.time < before) n++;
  if (n === 0) return null;
  const chunk = rows.slice(0, n);
  const first = chunk[0]!;
  const last = chunk[n - 1]!;
  writer.signAt(last.id, last.hash); // the archive signs its own last event
  const checkpoints = db.prepare('select jws from audit_checkpoints where event_id between ? and ? order by event_id').all(first.id, last.id) as { jws: string }[];

  mkdirSync(archiveDir, { recursive: true, mode: 0o700 });
  const name = `audit-${String(first.id).padStart(12, '0')}-${String(last.id).padStart(12, '0')}.jsonl`;
  const file = join(archiveDir, name);
  const partial = `${file}.partial`;
  const header: ArchiveHeader = {
    archive: { format: 1, from_id: first.id, to_id: last.id, prev_hash: first.prev_hash, created_at: new Date().toISOString(), key: writer.publicJwk },
  };
  const fd = openSync(partial, 'w', 0o600);
  let sha256: string;
  try {
    const lines = [JSON.stringify(header), ...chunk.map((r) => JSON.stringify(eventOf(r))), ...checkpoints.map((c) => JSON.stringify({ checkpoint: c.jws }))];
    const text = `${lines.join('\n')}\n`;
    sha256 = createHash('sha256').update(text).digest('hex');
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, file);
  const dirFd = openSync(archiveDir, 'r');
  try {
    fsyncSync(dirFd); // the rename itself is durable before anything is deleted
  } finally {
    closeSync(dirFd);
  }

  // The anchor's own checkpoint names the file and its digest: verify finds a removed or edited
  // archive, and an anchor that no archive run signed.
  const anchor = writer.signAt(last.id, last.hash, new Date(), { file: name, sha256, from_id: first.id, to_id: last.id });
  // Checkpoints go in chain order, so the chain left in the trail has no hole: those numbered
  // below the first one that signs a remaining event (they all sign archived events).
  const keepFrom = (db.prepare('select min(seq) as seq from audit_checkpoints where event_id > ? and seq is not null').get(last.id) as { seq: number | null }).seq ?? anchor.seq!;
  db.transaction(() => {
    // The archived events' lookup rows go with them (found by their keys, before the rows go).
    db.prepare('delete from audit_by_user where (user, time, id) in (select user, time, id from audit_events where id <= ? and user is not null)').run(last.id);
    db.prepare('delete from audit_by_object where (object, time, id) in (select object, time, id from audit_events where id <= ?)').run(last.id);
    db.prepare('delete from audit_events where id <= ?').run(last.id);
    db.prepare('delete from audit_checkpoints where event_id <= ? and (seq is null or seq < ?)').run(last.id, keepFrom);
    db.prepare('insert or replace into audit_anchor (one, event_id, hash, file, jws) values (1, ?, ?, ?, ?)').run(last.id, last.hash, name, anchor.jws);
  })();
  return { file, from_id: first.id, to_id: last.id, events: n };
}
