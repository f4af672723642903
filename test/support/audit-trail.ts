// A trail file in a temporary folder, filled with rows chained as the writer chains them (real
// prev_hash and hash), for the suites that read the trail without running the writer.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { eventOf, GENESIS_HASH, hashRow } from '../../src/audit/chain.js';
import type { AuditEvent } from '../../src/audit/event.js';
import { indexTail, noteTail } from '../../src/audit/lookup-index.js';
import { AUDIT_FILE, type AuditRow, openAuditDb } from '../../src/audit/schema.js';

export const T0 = Date.parse('2024-05-01T00:00:00Z');
export const MIN = 60_000;

export type Spec = Partial<Omit<AuditRow, 'groups' | 'details' | 'id' | 'prev_hash' | 'hash'>> & { groups?: string[]; details?: Record<string, unknown> };

/** Appends chained rows as the writer would: ids in order, each prev_hash the last hash. Defaults: alice reads dataset:customers at T0 + id minutes. */
export function append(db: Database.Database, specs: Spec[]): AuditRow[] {
  const last = db.prepare('select id, hash from audit_events order by id desc limit 1').get() as { id: number; hash: string } | undefined;
  let id = last?.id ?? 0;
  let prev = last?.hash ?? GENESIS_HASH;
  const insert = db.prepare(
    'insert into audit_events (id, time, user, groups, auth_method, ip, action, object, decision, reason, policy_version, request_id, details, prev_hash, hash) values (@id, @time, @user, @groups, @auth_method, @ip, @action, @object, @decision, @reason, @policy_version, @request_id, @details, @prev_hash, @hash)',
  );
  const rows: AuditRow[] = [];
  db.transaction(() => {
    for (const s of specs) {
      id += 1;
      const row: Omit<AuditRow, 'hash'> = {
        id,
        time: s.time ?? T0 + id * MIN,
        user: s.user === undefined ? 'alice' : s.user,
        groups: JSON.stringify(s.groups ?? ['scientists']),
        auth_method: s.auth_method === undefined ? 'oidc' : s.auth_method,
        ip: s.ip === undefined ? '10.0.0.1' : s.ip,
        action: s.action ?? 'dataset.read',
        object: s.object ?? 'dataset:customers',
        decision: s.decision ?? 'allow',
        reason: s.reason ?? 'rule 3 grants read',
        policy_version: s.policy_version === undefined ? 'v1' : s.policy_version,
        request_id: s.request_id === undefined ? `req-${id}` : s.request_id,
        details: JSON.stringify(s.details ?? {}),
        prev_hash: prev,
      };
      const full = { ...row, hash: hashRow(row) };
      insert.run(full);
      rows.push(full);
      prev = full.hash;
    }
    // As the writer does in its append's transaction: the un-indexed tail's earliest time (not in
    // a trail of the layout before the lookup tables, which some suites make).
    const lookups = db.prepare("select 1 from sqlite_master where name = 'audit_indexed'").get();
    if (rows.length > 0 && lookups) noteTail(db, Math.min(...rows.map((r) => r.time)));
  })();
  return rows;
}

/**
 * How much of a trail the user and object lookup tables cover (lookup-index.ts): none (every event
 * in the tail a query scans), half, or all. Query suites run in each, since the answers must not differ.
 */
export const LOOKUP_STATES = ['tail', 'half', 'indexed'] as const;
export type LookupState = (typeof LOOKUP_STATES)[number];

export function lookupState(db: Database.Database, state: LookupState): void {
  const head = (db.prepare('select max(id) from audit_events').pluck().get() as number | null) ?? 0;
  if (state === 'half') indexTail(db, Math.floor(head / 2));
  if (state === 'indexed') indexTail(db, head);
}

const dirs: string[] = [];

/** A new, empty trail (migrated as the writer opens it); removeTrails() deletes them all. */
export function freshTrail(): Database.Database {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-'));
  dirs.push(dir);
  return openAuditDb(dir);
}

export function removeTrails(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Every event of a live (or stopped) gateway's trail in audit.dir, read-only, in chain order. */
export function readTrail(auditDir: string): AuditEvent[] {
  const db = openAuditDb(auditDir, { readonly: true });
  try {
    return (db.prepare('select * from audit_events order by id').all() as AuditRow[]).map(eventOf);
  } finally {
    db.close();
  }
}

/** The trail's raw bytes (the database and its WAL) as latin1 text, to scan for secrets. */
export function trailBytes(auditDir: string): string {
  const file = join(auditDir, AUDIT_FILE);
  return [file, `${file}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f).toString('latin1')).join('\n');
}
