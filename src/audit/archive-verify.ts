// Verifies an archive file on its own: its events chain from the header's prev_hash, every hash
// recomputes, and the last event is signed by a checkpoint in the file. Keys: the caller's (from
// the gateway's JWKS) when given, else the key the archive names (say so: a forger could swap it).
import { createReadStream } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { createInterface } from 'node:readline';
import { canonicalJson } from './canonical.js';
import type { AuditEvent } from './event.js';
import type { ArchiveHeader } from './retention.js';
import type { AuditRow } from './schema.js';
import { publicKeyOfJwk } from './signing-key.js';
import { ChainChecker, type VerifyReport } from './verify.js';

export interface ArchiveReport extends VerifyReport {
  file: string;
  /** Whose key checked the signatures: the caller's, or only the one the archive itself carries. */
  key_source: 'trusted' | 'archive';
  kid: string | null;
}

export function rowOfEvent(e: AuditEvent): AuditRow {
  return {
    id: e.id,
    time: Date.parse(e.time),
    user: e.actor.user,
    groups: JSON.stringify(e.actor.groups),
    auth_method: e.actor.auth_method,
    ip: e.actor.ip,
    action: e.action,
    object: e.object,
    decision: e.decision,
    reason: e.reason,
    policy_version: e.policy_version,
    request_id: e.request_id,
    details: canonicalJson(e.details),
    prev_hash: e.prev_hash,
    hash: e.hash,
  };
}

export async function verifyArchive(file: string, trusted?: ReadonlyMap<string, KeyObject>): Promise<ArchiveReport> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let header: ArchiveHeader['archive'] | null = null;
  let checker: ChainChecker | null = null;
  const checkpoints: { jws: string }[] = [];
  const events: AuditRow[] = [];
  let kid: string | null = null;
  let lineNo = 0;
  const broken = (message: string): ArchiveReport => ({
    ok: false, file, key_source: 'archive', kid, events: 0, first_id: null, last_id: null, checkpoints: 0, last_checkpoint: null, unsigned_tail: 0, anchor: null,
    problems: [{ event_id: null, kind: 'broken_link', message }], more_problems: 0, elapsed_ms: 0,
  });
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return broken(`line ${lineNo} is not JSON`);
    }
    if (lineNo === 1) {
      header = (value as Partial<ArchiveHeader>).archive ?? null;
      if (!header) return broken('the first line is not an archive header');
      continue;
    }
    if (value && typeof value === 'object' && 'checkpoint' in value) checkpoints.push({ jws: String((value as { checkpoint: unknown }).checkpoint) });
    else events.push(rowOfEvent(value as AuditEvent));
  }
  if (!header) return broken('the archive is empty');
  kid = header.key.kid;
  const keys = trusted ?? new Map([[header.key.kid, publicKeyOfJwk(header.key)]]);
  checker = new ChainChecker({ id: header.from_id - 1, hash: header.prev_hash }, keys);
  checker.checkpoints(checkpoints);
  for (const row of events) checker.push(row);
  const report = checker.finish({ anchor: null });
  if (report.last_id !== header.to_id) report.problems.push({ event_id: report.last_id, kind: 'truncated', message: `the header says the archive ends at #${header.to_id}, its last event is #${report.last_id ?? 'none'}` });
  if (report.unsigned_tail > 0) report.problems.push({ event_id: report.last_id, kind: 'truncated', message: `the last ${report.unsigned_tail} event(s) are not covered by a checkpoint` });
  report.ok = report.problems.length === 0;
  return { ...report, file, key_source: trusted ? 'trusted' : 'archive', kid };
}
