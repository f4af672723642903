// Issue 21's load-proof measure of the whole record path: AuditTrail.record from W closed-loop
// writers (as the audit-append rows drive it) on a copy of the 1M trail (or an empty one), a fixed
// number of events, then the WAL checkpointed as a bench round ends. Reports CPU µs per event for
// each thread, read from /proc/self/task/*/stat (utime + stime): the gateway's thread (record(), the
// secret scan, the message hop, the writers' own loop), the writer thread (the busiest other
// thread: hashing, inserts, commits, lookup batches) and the rest (V8's GC and compiler helpers,
// libuv). CPU time, not wall time: on a shared machine the scheduler decides the rate, not the code.
//
//   node dist/bench/audit-record-profile.js [trail=1m|empty] [writers=1024] [events=200000] [warmup=20000]
//
// Add `--cpu-prof --cpu-prof-dir=DIR` to node for a profile of each thread.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditInput } from '../src/audit/event.js';
import { loadAuditKey } from '../src/audit/signing-key.js';
import { AuditTrail } from '../src/audit/trail.js';
import { timeOrderedId } from '../src/http/request-id.js';
import { PACKAGE_ROOT } from '../src/version.js';
import { cachedTrail, currentLayout, EventWorld } from './support/audit-events.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=') as [string, string]));
const trailKind = args.trail ?? '1m';
const writers = Number(args.writers ?? 1024);
const events = Number(args.events ?? 200_000);
const warmup = Number(args.warmup ?? 20_000);
const CACHE = join(PACKAGE_ROOT, 'var', 'bench');
const ONE_M = { name: 'audit-1m', events: 1_000_000, days: 3, start: Date.parse('2026-10-01T00:00:00Z'), seed: 8, jsonl: false, bulkIndexes: false, checkpointMs: 5000 };
const log = (l: string) => process.stderr.write(`${l}\n`);
const TICK_US = 1e6 / 100; // USER_HZ

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
}

/** CPU ticks (user + system) of every thread of this process, by thread id. */
function threadTicks(): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(t), Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

mkdirSync(CACHE, { recursive: true });
let template: string | null = null;
let key = loadAuditKey(join(CACHE, 'audit-append-certs'));
if (trailKind === '1m') {
  const cached = cachedTrail(CACHE, ONE_M, log);
  template = join(currentLayout(cached.trailDir, log, join(CACHE, `${ONE_M.name}-current`)), 'audit.db');
  key = cached.key;
}
const world = new EventWorld(11);
const pool: AuditInput[] = Array.from({ length: 65_536 }, () => world.event(Date.now()));
const dir = mkdtempSync(join(CACHE, 'audit-record-profile-'));
try {
  if (template) copyFileSync(template, join(dir, 'audit.db'));
  const trail = await AuditTrail.open({ dir, key, checkpointMs: 5000 });
  let batches = 0;
  trail.onCommit = () => batches++;
  let next = 0;
  let latencies: number[] = [];
  const run = async (count: number) => {
    let left = count;
    const writer = async () => {
      while (left-- > 0) {
        const pooled = pool[next++ % pool.length]!;
        const t = performance.now();
        await trail.record(pooled.request_id === null ? pooled : { ...pooled, request_id: timeOrderedId() });
        latencies.push(performance.now() - t);
      }
    };
    await Promise.all(Array.from({ length: writers }, writer));
  };
  await run(warmup);
  batches = 0;
  latencies = [];
  const before = threadTicks();
  const t0 = performance.now();
  await run(events);
  // Read before close(): the writer thread's ticks go with it.
  const after = threadTicks();
  const wall = performance.now() - t0;
  // What a bench round also pays at its end: the WAL copied into audit.db, on a connection of its
  // own while the writer idles (this thread is the only busy one).
  const cpu0 = process.cpuUsage();
  const db = new Database(join(dir, 'audit.db'));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const cpu = process.cpuUsage(cpu0);
  await trail.close();
  const deltas = [...after].map(([tid, ticks]) => ({ tid, us: (ticks - (before.get(tid) ?? 0)) * TICK_US }));
  const main = deltas.find((d) => d.tid === process.pid)!.us;
  const others = deltas.filter((d) => d.tid !== process.pid).sort((a, b) => b.us - a.us);
  const writerUs = others[0]?.us ?? 0;
  const rest = others.slice(1).reduce((s, d) => s + d.us, 0);
  const per = (us: number) => +(us / events).toFixed(1);
  console.log(
    JSON.stringify({
      trail: trailKind,
      writers,
      events,
      batches,
      events_per_batch: +(events / Math.max(1, batches)).toFixed(0),
      cpu_us_per_event: { gateway_thread: per(main), writer_thread: per(writerUs), other_threads: per(rest), total: per(main + writerUs + rest), final_wal_checkpoint: per(cpu.user + cpu.system) },
      wall_us_per_event: +((wall * 1000) / events).toFixed(1),
      // Wall-clock, so only for a quiet machine: what the bench's -p50 and -p99 rows read.
      latency_ms: { p50: +quantile(latencies, 0.5).toFixed(1), p99: +quantile(latencies, 0.99).toFixed(1), max: +quantile(latencies, 1).toFixed(1) },
      loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
