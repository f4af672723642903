// Issue 21's load-proof measure of an append on the 1M trail: what one event costs the disk and the
// CPU, not how many a second (the scheduler decides that on a shared machine). TrailWriter.append in
// fixed batches on a copy of the cached 1M trail, the way the writer thread runs it (index between
// commits), then the WAL checkpointed into audit.db as a bench round ends. Reports per event: bytes
// the process wrote (/proc/self/io write_bytes: WAL and checkpoint), the WAL's frames, CPU µs
// (process.cpuUsage: this thread is the only busy one) and, for the record, wall µs.
//
//   node dist/bench/audit-append-profile.js [layout=lookup|indexes] [batch=1024] [events=131072] [lookupBatch=N]
//
// lookupBatch: fill the lookup tables every N events instead of INDEX_BATCH (0: never, the floor).
// layout=indexes replays the layout before issue 21 (the user and object indexes on the table, no
// lookup tables) on an un-migrated copy with the same insert and hashing as TrailWriter.append.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { hashRow } from '../src/audit/chain.js';
import { timeOrderedId } from '../src/http/request-id.js';
import { TrailWriter, pendingRowOf, type PendingRow } from '../src/audit/writer.js';
import { PACKAGE_ROOT } from '../src/version.js';
import { indexTail, INDEX_BATCH } from '../src/audit/lookup-index.js';
import { cachedTrail, currentLayout, EventWorld } from './support/audit-events.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=') as [string, string]));
const layout = args.layout ?? 'lookup';
const batch = Number(args.batch ?? 1024);
const events = Number(args.events ?? 131_072);
const lookupBatch = Number(args.lookupBatch ?? INDEX_BATCH);
const CACHE = join(PACKAGE_ROOT, 'var', 'bench');
const ONE_M = { name: 'audit-1m', events: 1_000_000, days: 3, start: Date.parse('2026-10-01T00:00:00Z'), seed: 8, jsonl: false, bulkIndexes: false, checkpointMs: 5000 };

const writeBytes = () => Number(/write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
const cached = cachedTrail(CACHE, ONE_M, (l) => process.stderr.write(`${l}\n`));
const dir = mkdtempSync(join(CACHE, 'audit-profile-'));
try {
  const source = layout === 'lookup' ? currentLayout(cached.trailDir, (l) => process.stderr.write(`${l}\n`), join(CACHE, `${ONE_M.name}-current`)) : cached.trailDir;
  copyFileSync(join(source, 'audit.db'), join(dir, 'audit.db'));
  const world = new EventWorld(11);
  const rows: PendingRow[] = Array.from({ length: events }, (_, i) => {
    const e = world.event(Date.now());
    return pendingRowOf(e.request_id === null ? e : { ...e, request_id: timeOrderedId() }, Date.now() + i);
  });
  let append: (rs: PendingRow[]) => void;
  let db: Database.Database;
  let migrateMs = 0;
  if (layout === 'lookup') {
    const t = performance.now();
    const w = TrailWriter.open(dir, cached.key);
    migrateMs = performance.now() - t;
    db = w.db;
    db.pragma('wal_checkpoint(TRUNCATE)');
    let indexed = w.head.id;
    append = (rs) => {
      w.append(rs);
      if (lookupBatch > 0 && w.head.id - indexed >= lookupBatch) {
        indexTail(db, w.head.id);
        indexed = w.head.id;
      }
    };
  } else {
    db = new Database(join(dir, 'audit.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('wal_autocheckpoint = 40000');
    if (db.pragma('user_version', { simple: true }) !== 3) throw new Error('layout=indexes needs the cached trail as the old code made it (user_version 3)');
    const insert = db.prepare('insert into audit_events (id, time, user, groups, auth_method, ip, action, object, decision, reason, policy_version, request_id, details, prev_hash, hash) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)');
    let head = db.prepare('select id, hash from audit_events order by id desc limit 1').get() as { id: number; hash: string };
    append = (rs) => {
      let { id, hash: prev } = head;
      db.exec('begin immediate');
      for (const r of rs) {
        id++;
        const hash = hashRow({ id, time: r[0], user: r[1], groups: r[2], auth_method: r[3], ip: r[4], action: r[5], object: r[6], decision: r[7], reason: r[8], policy_version: r[9], request_id: r[10], details: r[11], prev_hash: prev });
        insert.run(id, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], prev, hash);
        prev = hash;
      }
      db.exec('commit');
      head = { id, hash: prev };
    };
  }
  const wal = join(dir, 'audit.db-wal');
  const bytes0 = writeBytes();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let walPeak = 0;
  for (let i = 0; i < rows.length; i += batch) {
    append(rows.slice(i, i + batch));
    walPeak = Math.max(walPeak, statSync(wal).size);
  }
  const [cp] = db.pragma('wal_checkpoint(TRUNCATE)') as { log: number; checkpointed: number }[];
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const bytes = writeBytes() - bytes0;
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    JSON.stringify({
      layout,
      batch,
      lookupBatch: layout === 'lookup' ? lookupBatch : null,
      events,
      open_s: +(migrateMs / 1000).toFixed(1),
      disk_kb_per_event: +(bytes / events / 1024).toFixed(2),
      final_checkpoint_frames: cp?.checkpointed,
      wal_peak_mb: +(walPeak / 2 ** 20).toFixed(1),
      cpu_us_per_event: +((cpu.user + cpu.system) / events).toFixed(1),
      wall_us_per_event: +((wall * 1000) / events).toFixed(1),
      loadavg: load,
    }),
  );
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
