// Audit events as a gateway of 2 000 people over 500 datasets writes them, deterministic from a
// seed, and the trails the audit bench reads, generated once and cached under var/bench.
//
// The people: 5 service accounts and 1 995 humans in 40 teams, active by a Zipf-like rank
// (weight 1/rank^0.7: the busiest about 10 000 events a day, the median about 70). The events:
// dataset reads, writes and lists (mostly the team's own datasets, the rest by global popularity),
// job submits, starts, finishes and lists, logins, refreshes, logouts, failed logins, quota and
// policy events, with about 3-6 % denies; request ids, policy versions and details as the gateway
// writes them. Times follow working hours (peak 14:00 UTC) and weekdays (weekends at a third).
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditInput } from '../../src/audit/event.js';
import { MIGRATIONS, openAuditDb } from '../../src/audit/schema.js';
import { type AuditSigningKey, loadAuditKey } from '../../src/audit/signing-key.js';
import { type PendingRow, pendingRowOf, TrailWriter } from '../../src/audit/writer.js';

/** Bump when the events or the files change: a cached trail of another version is made again. */
export const GENERATOR_VERSION = 'audit-events/1';

/** sfc32: small, fast and seeded (Math.random cannot be replayed). */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = () => {
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}

const TEAMS = [
  'finance', 'sales', 'marketing', 'risk', 'fraud', 'growth', 'search', 'ads', 'ml-platform', 'data-eng',
  'support', 'hr', 'legal', 'security', 'billing', 'logistics', 'supply', 'pricing', 'product', 'design',
  'research', 'ops', 'infra', 'mobile', 'web', 'partners', 'retail', 'health', 'insurance', 'credit',
  'compliance', 'analytics', 'experiments', 'recsys', 'nlp', 'vision', 'forecasting', 'catalog', 'payments', 'identity',
];
const NOUNS = ['ledger', 'invoices', 'customers', 'orders', 'events', 'sessions', 'clicks', 'payments', 'claims', 'forecasts', 'features', 'labels', 'embeddings', 'inventory', 'returns', 'surveys'];
const FIRST = [
  'alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'nina', 'oscar', 'peggy', 'rupert', 'sybil', 'trent', 'ursula', 'victor', 'wendy', 'xavier', 'yara', 'zoe',
  'amir', 'bea', 'chen', 'dmitri', 'elif', 'fatima', 'goran', 'hana', 'igor', 'jun', 'kofi', 'lena', 'mateo', 'noor', 'olga', 'pavel', 'qing', 'ravi', 'sofia', 'tomas', 'uma', 'vera', 'wei', 'ximena', 'yusuf', 'zara', 'anders',
];
const LAST = [
  'kim', 'smith', 'garcia', 'muller', 'rossi', 'novak', 'tanaka', 'okafor', 'silva', 'cohen', 'dubois', 'jensen', 'kowalski', 'larsen', 'moreau', 'nguyen', 'olsen', 'petrov', 'quinn', 'ramos', 'sato', 'schmidt', 'torres', 'ueda', 'vargas',
  'wagner', 'xu', 'yilmaz', 'zhang', 'ahmed', 'baker', 'costa', 'diaz', 'evans', 'fischer', 'gupta', 'hansen', 'ito', 'jovanovic', 'khan', 'lopez', 'mori', 'nilsen', 'oliveira', 'park', 'reyes', 'suzuki', 'tran', 'weber', 'young',
];
const SERVICE_ACCOUNTS = ['svc-etl', 'svc-airflow', 'svc-reports', 'svc-backup', 'svc-monitor'];
const ROLES = ['analysts', 'scientists', 'engineers'];
const USER_SKEW = 0.7;
const DATASET_SKEW = 1.0;

interface Person {
  name: string;
  team: number;
  groups: string[];
  auth: string;
  ips: string[];
  admin: boolean;
  session: string;
  lastJob: string | null;
}

type Build = (w: EventWorld, p: Person) => Omit<AuditInput, 'actor'> & { actor?: AuditInput['actor'] };

/** Cumulative weights, for picking by binary search. */
function cdf(weights: number[]): Float64Array {
  const out = new Float64Array(weights.length);
  let sum = 0;
  for (const [i, w] of weights.entries()) out[i] = sum += w;
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

function pick(c: Float64Array, r: number): number {
  let lo = 0;
  let hi = c.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (c[mid]! < r) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The world the events come from: people by activity rank, datasets by popularity, the action mix. */
export class EventWorld {
  readonly users: Person[] = [];
  /** Dataset names by global popularity (index 0 the most read). */
  readonly datasets: string[] = [];
  readonly r: () => number;
  private readonly userCdf: Float64Array;
  private readonly datasetCdf: Float64Array;
  /** Per team: its datasets (indexes into `datasets`) and their popularity within the team. */
  private readonly teamDatasets: { ids: number[]; cdf: Float64Array }[] = [];
  private readonly actionCdf: Float64Array;
  private readonly builders: Build[];
  private readonly policyVersions: string[] = [];
  /** The period the policy versions are spread over (a new one every few days). */
  private readonly versionSpan: { start: number; end: number };

  constructor(seed: number, options: { users?: number; datasets?: number; start?: number; end?: number } = {}) {
    const users = options.users ?? 2000;
    const datasets = options.datasets ?? 500;
    this.r = prng(seed);
    const r = this.r;
    // Datasets: team i % 40, noun i / 40, shuffled into a popularity order.
    const names = Array.from({ length: datasets }, (_, i) => `${TEAMS[i % TEAMS.length]}/${NOUNS[Math.floor(i / TEAMS.length) % NOUNS.length]}${i >= TEAMS.length * NOUNS.length ? `-${Math.floor(i / (TEAMS.length * NOUNS.length))}` : ''}`);
    this.shuffle(names);
    this.datasets.push(...names);
    this.datasetCdf = cdf(names.map((_, i) => 1 / (i + 1) ** DATASET_SKEW));
    for (let t = 0; t < TEAMS.length; t++) {
      const ids = names.flatMap((n, i) => (n.startsWith(`${TEAMS[t]}/`) ? [i] : []));
      this.teamDatasets.push({ ids, cdf: cdf(ids.map((_, i) => 1 / (i + 1))) });
    }
    // People: distinct first.last names, service accounts at the top ranks.
    const combos = Array.from({ length: FIRST.length * LAST.length }, (_, i) => `${FIRST[i % FIRST.length]}.${LAST[Math.floor(i / FIRST.length)]}`);
    this.shuffle(combos);
    for (let i = 0; i < users; i++) {
      const service = i < SERVICE_ACCOUNTS.length;
      const team = Math.floor(r() * TEAMS.length);
      const groups = service ? ['service-accounts'] : [`team-${TEAMS[team]}`, ROLES[Math.floor(r() * ROLES.length)]!, ...(r() < 0.1 ? ['on-call'] : []), ...(r() < 0.02 ? ['auditors'] : [])];
      const ips = Array.from({ length: 1 + Math.floor(r() * 3) }, () => `10.${team}.${Math.floor(r() * 256)}.${1 + Math.floor(r() * 254)}`);
      this.users.push({
        name: service ? SERVICE_ACCOUNTS[i]! : combos[i]!,
        team,
        groups,
        auth: service ? 'cert' : r() < 0.7 ? 'oidc' : 'ldap',
        ips,
        admin: groups.includes('auditors'),
        session: this.hex(32),
        lastJob: null,
      });
    }
    this.userCdf = cdf(this.users.map((_, i) => 1 / (i + 1) ** USER_SKEW));
    for (let i = 0; i < 12; i++) this.policyVersions.push(this.hex(16));
    this.versionSpan = { start: options.start ?? 0, end: options.end ?? 1 };
    const mix: [number, Build][] = [
      [30, (w, p) => w.datasetEvent(p, 'read', 0.03)],
      [7, (w, p) => w.datasetEvent(p, 'write', 0.06)],
      [7, (_w, _p) => ({ action: 'dataset.list', object: 'dataset:*', decision: 'allow', reason: `${60 + Math.floor(r() * 80)} of ${datasets} datasets usable by the caller`, details: {} })],
      [7, (w, p) => w.jobSubmit(p)],
      [7, (w, p) => w.jobEvent(p, 'start')],
      [7, (w, p) => w.jobEvent(p, 'finish')],
      [3, (w, p) => w.jobList(p)],
      [0.5, (w, p) => ({ action: 'job.cancel', object: `job:${p.lastJob ?? w.jobId()}`, decision: 'allow', reason: 'cancelled by its owner', details: {} })],
      [15, (w, p) => ({ action: 'token.refresh', object: `session:${p.session}`, decision: 'allow', reason: 'refresh token rotated', details: { jti: w.hex(22), session_id: p.session } })],
      [6, (w, p) => w.login(p)],
      [2, (_w, p) => ({ action: 'auth.logout', object: `session:${p.session}`, decision: 'allow', reason: 'logged out', details: { session_id: p.session } })],
      [1, (_w, p) => ({ actor: { user: null, groups: [], auth_method: null, ip: p.ips[0]! }, action: 'auth.login_failed', object: 'login:ldap', decision: 'deny', reason: r() < 0.9 ? 'invalid credentials' : 'throttled', details: { attempted_user: p.name, method: 'ldap' } })],
      [0.6, (w, _p) => ({ action: 'quota.reject', object: `job:${w.jobId()}`, decision: 'deny', reason: `core_hours_per_day: ${(20 + r() * 10).toFixed(1)} of 24 used, the job asks for ${(4 + r() * 8).toFixed(1)}`, policy_version: w.version(), details: { cores: 8, limit: 'core_hours_per_day' } })],
      [1, (w, p) => ({ action: 'policy.explain', object: `dataset:${w.datasetFor(p)}`, decision: 'allow', reason: 'explained', policy_version: w.version(), details: { requested: 'read' } })],
      [0.3, (w, _p) => ({ action: 'cert.issue', object: `cert:${w.hex(16)}`, decision: 'allow', reason: 'client certificate issued', details: { days: 30, serial: w.hex(16) } })],
      [0.2, (w, p) => ({ action: 'audit.query', object: 'audit:events', decision: p.admin ? 'allow' : 'deny', reason: p.admin ? 'allowed by policy.csv:9: p, group:auditors, audit:events, read, allow' : `no rule grants read on audit:events to user:${p.name}`, policy_version: w.version(), details: { filter: { user: w.users[Math.floor(r() * 100)]!.name } } })],
    ];
    this.actionCdf = cdf(mix.map(([weight]) => weight));
    this.builders = mix.map(([, build]) => build);
  }

  private now = 0;

  /** One event at `time` (ms): who, what and why, as the gateway hands it to the trail. */
  event(time: number): AuditInput {
    this.now = time;
    const p = this.users[pick(this.userCdf, this.r())]!;
    const built = this.builders[pick(this.actionCdf, this.r())]!(this, p);
    return {
      actor: built.actor ?? { user: p.name, groups: p.groups, auth_method: p.auth, ip: p.ips[Math.floor(this.r() * p.ips.length)]! },
      action: built.action,
      object: built.object,
      decision: built.decision,
      reason: built.reason,
      policy_version: built.policy_version ?? null,
      request_id: built.request_id === undefined ? this.uuid() : built.request_id,
      details: built.details ?? {},
    };
  }

  /** The `rank`-th most active person (0: the busiest service account). */
  user(rank: number): string {
    return this.users[rank]!.name;
  }

  private datasetFor(p: Person): string {
    if (this.r() < 0.75) {
      const own = this.teamDatasets[p.team]!;
      if (own.ids.length > 0) return this.datasets[own.ids[pick(own.cdf, this.r())]!]!;
    }
    return this.datasets[pick(this.datasetCdf, this.r())]!;
  }

  private datasetEvent(p: Person, access: 'read' | 'write', denyRate: number): ReturnType<Build> {
    const dataset = this.datasetFor(p);
    const [team] = dataset.split('/');
    const line = 20 + TEAMS.indexOf(team!) * 3 + (access === 'write' ? 1 : 0);
    const job = this.r() < 0.4 ? { job: p.lastJob ?? this.jobId() } : {};
    if (this.r() < denyRate) {
      const byRule = this.r() < 0.5;
      return {
        action: `dataset.${access}`,
        object: `dataset:${dataset}`,
        decision: 'deny',
        reason: byRule ? `denied by policy.csv:${300 + line}: p, group:contractors, dataset:${team}/*, ${access}, deny` : `no rule grants ${access} on dataset:${dataset} to user:${p.name}`,
        policy_version: this.version(),
        details: { requested: access, ...(byRule ? { rule_line: `policy.csv:${300 + line}` } : {}), ...job },
      };
    }
    return {
      action: `dataset.${access}`,
      object: `dataset:${dataset}`,
      decision: 'allow',
      reason: `allowed by policy.csv:${line}: p, group:team-${team}, dataset:${team}/*, ${access}, allow`,
      policy_version: this.version(),
      details: { requested: access, rule_line: `policy.csv:${line}`, ...job },
    };
  }

  private jobSubmit(p: Person): ReturnType<Build> {
    const id = this.jobId();
    p.lastJob = id;
    const cores = [1, 2, 4, 8][Math.floor(this.r() * 4)]!;
    const input = this.datasetFor(p);
    const output = `scratch/${p.name}/out-${Math.floor(this.r() * 1000)}`;
    return {
      action: 'job.submit',
      object: `job:${id}`,
      decision: 'allow',
      reason: 'admitted to engine',
      policy_version: this.version(),
      details: { input, output, runtime: 'python', granted: { cores, memory_mb: cores * 2048, time_limit_s: 3600 } },
    };
  }

  private jobEvent(p: Person, phase: 'start' | 'finish'): ReturnType<Build> {
    const id = p.lastJob ?? this.jobId();
    if (phase === 'start') return { action: 'job.start', object: `job:${id}`, decision: 'allow', reason: 'started on engine', request_id: null, details: { partitions: 1 + Math.floor(this.r() * 64), started_at: new Date(this.now).toISOString() } };
    const ok = this.r() < 0.92;
    return {
      action: 'job.finish',
      object: `job:${id}`,
      decision: ok ? 'allow' : 'error',
      reason: ok ? `succeeded; wrote scratch/${p.name}/out-${Math.floor(this.r() * 1000)}` : 'failed',
      request_id: null,
      details: { core_seconds: Math.round(this.r() * 5000) / 10, partitions: 1 + Math.floor(this.r() * 64), rows_in: Math.floor(this.r() * 1e6), rows_out: Math.floor(this.r() * 1e6), state: ok ? 'succeeded' : 'failed' },
    };
  }

  private jobList(p: Person): ReturnType<Build> {
    const everyone = this.r() < 0.2;
    if (!everyone) return { action: 'job.list', object: `job:owner/${p.name}`, decision: 'allow', reason: 'own jobs', details: { state: null } };
    return {
      action: 'job.list',
      object: 'job:all',
      decision: p.admin ? 'allow' : 'deny',
      reason: p.admin ? 'allowed by policy.csv:10: p, group:auditors, job:*, list, allow' : `no rule grants list on job:all to user:${p.name}`,
      policy_version: this.version(),
      details: { state: this.r() < 0.5 ? 'running' : null },
    };
  }

  private login(p: Person): ReturnType<Build> {
    p.session = this.hex(32);
    const method = p.auth === 'cert' ? 'cert' : p.auth;
    return { action: 'auth.login', object: `login:${method}`, decision: 'allow', reason: method === 'oidc' ? 'authorization code login' : `${method} login`, details: { flow: method === 'oidc' ? 'code' : 'direct', jti: this.hex(22), method, session_id: p.session } };
  }

  private version(): string {
    const { start, end } = this.versionSpan;
    const at = Math.min(0.999, Math.max(0, (this.now - start) / Math.max(1, end - start)));
    return this.policyVersions[Math.floor(at * this.policyVersions.length)]!;
  }

  jobId(): string {
    return `j${this.hex(12)}`;
  }

  hex(n: number): string {
    let s = '';
    while (s.length < n) s += Math.floor(this.r() * 4294967296).toString(16).padStart(8, '0');
    return s.slice(0, n);
  }

  private uuid(): string {
    const h = this.hex(32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[parseInt(h[16]!, 16) & 3]}${h.slice(17, 20)}-${h.slice(20)}`;
  }

  private shuffle<T>(a: T[]): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.r() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }
}

const str = (s: string | null) => (s === null ? 'null' : JSON.stringify(s));

/** The event as a gateway that logs JSON lines would write it: its content, without the chain's prev_hash and hash. */
export function jsonLine(id: number, r: PendingRow): string {
  return (
    `{"id":${id},"time":"${new Date(r[0]).toISOString()}","actor":{"user":${str(r[1])},"groups":${r[2]},"auth_method":${str(r[3])},"ip":${str(r[4])}}` +
    `,"action":${str(r[5])},"object":${str(r[6])},"decision":${str(r[7])},"reason":${str(r[8])},"policy_version":${str(r[9])},"request_id":${str(r[10])},"details":${r[11]}}\n`
  );
}

export interface TrailSpec {
  /** Folder under var/bench, e.g. "audit-10m". */
  name: string;
  events: number;
  days: number;
  /** ms since the epoch of the first day's midnight (UTC). */
  start: number;
  seed: number;
  /** Also write the events as JSON lines, one file per UTC day (the grep and sha256sum baselines). */
  jsonl: boolean;
  /**
   * Build the five secondary indexes after the rows (a sorted bulk build, minutes instead of an
   * hour) rather than row by row. The indexes come out packed full, where a live trail's are
   * about 2/3 full: reads are slightly kinder than a real trail's, appends meet page splits first.
   */
  bulkIndexes: boolean;
  /** Checkpoints are signed every this many ms of event time when the head moved (audit.checkpoint_interval). */
  checkpointMs: number;
}

export interface CachedTrail {
  spec: TrailSpec;
  /** The folder to hand to openAuditDb / AuditTrail.open. */
  trailDir: string;
  key: AuditSigningKey;
  /** One file per day, in day order (empty without jsonl). */
  jsonlFiles: string[];
  /** Seconds the generation took, when this run generated it; null when it came from the cache. */
  generatedSeconds: number | null;
  info: GeneratedInfo;
}

interface GeneratedInfo {
  key: string;
  generated_at: string;
  seconds: number;
  events: number;
  checkpoints: number;
  db_bytes: number;
  jsonl_bytes: number;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
const BATCH = 50_000;

export const dayOf = (start: number, day: number) => new Date(start + day * DAY).toISOString().slice(0, 10);

/** The trail of `spec` under `root`, generated when missing or made by another generator version. */
export function cachedTrail(root: string, spec: TrailSpec, log: (line: string) => void): CachedTrail {
  const dir = join(root, spec.name);
  const stamp = join(dir, 'generator.json');
  const key = `${GENERATOR_VERSION} ${JSON.stringify(spec)}`;
  const files = spec.jsonl ? Array.from({ length: spec.days }, (_, d) => join(dir, 'jsonl', `audit-${dayOf(spec.start, d)}.jsonl`)) : [];
  const result = (info: GeneratedInfo, generatedSeconds: number | null): CachedTrail => ({ spec, trailDir: join(dir, 'trail'), key: loadAuditKey(join(dir, 'certs')), jsonlFiles: files, generatedSeconds, info });
  if (existsSync(stamp)) {
    const info = JSON.parse(readFileSync(stamp, 'utf8')) as GeneratedInfo;
    if (info.key === key && existsSync(join(dir, 'trail', 'audit.db')) && files.every((f) => existsSync(f))) {
      log(`${spec.name}: using the cached trail in ${dir} (${GENERATOR_VERSION}, ${info.events} events, generated ${info.generated_at} in ${info.seconds.toFixed(0)} s); delete the folder to make it again`);
      return result(info, null);
    }
    log(`${spec.name}: the cached trail in ${dir} is from another generator or incomplete; making it again`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const info = generate(dir, spec, key, log);
  writeFileSync(stamp, `${JSON.stringify(info, null, 2)}\n`);
  return result(info, info.seconds);
}

function generate(dir: string, spec: TrailSpec, stampKey: string, log: (line: string) => void): GeneratedInfo {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  log(`${spec.name}: generating ${spec.events} events over ${spec.days} days in ${dir} (not a measurement; cached for the next run)`);
  const key = loadAuditKey(join(dir, 'certs'));
  const writer = TrailWriter.open(join(dir, 'trail'), key);
  const db = writer.db;
  // This connection only: the file keeps WAL, and readers and the gateway use synchronous = FULL.
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1000000');
  const indexes = spec.bulkIndexes ? (db.prepare("select name, sql from sqlite_master where type = 'index' and tbl_name = 'audit_events' and sql is not null").all() as { name: string; sql: string }[]) : [];
  for (const i of indexes) db.exec(`drop index ${i.name}`);

  const end = spec.start + spec.days * DAY;
  const world = new EventWorld(spec.seed, { start: spec.start, end });
  const times = prng(spec.seed + 1);
  // Events per hour: working hours (a bell around 14:00 UTC over a floor) and weekdays.
  const weights: number[] = [];
  for (let d = 0; d < spec.days; d++) {
    const weekday = new Date(spec.start + d * DAY).getUTCDay();
    const dayWeight = weekday === 0 || weekday === 6 ? 0.35 : 1;
    for (let h = 0; h < 24; h++) weights.push(dayWeight * (0.15 + Math.exp(-((h - 14) ** 2) / (2 * 3.5 ** 2))));
  }
  const total = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.floor((spec.events * w) / total));
  counts[counts.length - 1]! += spec.events - counts.reduce((a, b) => a + b, 0);

  let rows: PendingRow[] = [];
  let lines: string[] = [];
  let checkpoints = 0;
  let lastSlot = -1;
  let lastTime = -1;
  let jsonlFd: number | null = null;
  let jsonlDay = -1;
  let jsonlBytes = 0;
  const signCheckpoints = db.transaction((points: { id: number; hash: string; at: number }[]) => {
    for (const p of points) writer.signAt(p.id, p.hash, new Date(p.at));
  });
  const flush = () => {
    if (rows.length === 0) return;
    const before = writer.head;
    const appended = writer.append(rows);
    // The writer's timer signs the head every checkpointMs when it moved: at the first boundary of
    // event time after an event, the head is that event.
    const points: { id: number; hash: string; at: number }[] = [];
    let prevTime = lastTime;
    rows.forEach((r, i) => {
      const slot = Math.floor(r[0] / spec.checkpointMs);
      if (slot !== lastSlot && prevTime >= 0) {
        const id = appended.firstId + i - 1;
        points.push({ id, hash: i === 0 ? before.hash : appended.hashes[i - 1]!, at: (lastSlot + 1) * spec.checkpointMs });
      }
      lastSlot = slot;
      prevTime = r[0];
    });
    lastTime = prevTime;
    signCheckpoints(points);
    checkpoints += points.length;
    if (jsonlFd !== null && lines.length > 0) {
      const text = lines.join('');
      jsonlBytes += Buffer.byteLength(text);
      writeSync(jsonlFd, text);
    }
    rows = [];
    lines = [];
    // The lookup tables in batches, as the writer thread fills them (unless built in bulk below).
    if (!spec.bulkIndexes) writer.index();
  };

  let id = writer.head.id;
  let next = spec.events / 10;
  if (spec.jsonl) mkdirSync(join(dir, 'jsonl'), { recursive: true });
  for (let hour = 0; hour < counts.length; hour++) {
    const day = Math.floor(hour / 24);
    if (spec.jsonl && day !== jsonlDay) {
      flush();
      if (jsonlFd !== null) closeSync(jsonlFd);
      jsonlFd = openSync(join(dir, 'jsonl', `audit-${dayOf(spec.start, day)}.jsonl`), 'w');
      jsonlDay = day;
    }
    const base = spec.start + hour * HOUR;
    const offsets = new Float64Array(counts[hour]!);
    for (let i = 0; i < offsets.length; i++) offsets[i] = Math.floor(times() * HOUR);
    offsets.sort();
    for (const offset of offsets) {
      const row = pendingRowOf(world.event(base + offset), base + offset);
      rows.push(row);
      id++;
      if (spec.jsonl) lines.push(jsonLine(id, row));
      if (rows.length >= BATCH) flush();
      if (id >= next) {
        log(`${spec.name}: ${(id / 1e6).toFixed(1)}M of ${spec.events / 1e6}M events (${elapsed().toFixed(0)} s)`);
        next += spec.events / 10;
      }
    }
  }
  flush();
  if (jsonlFd !== null) closeSync(jsonlFd);
  writer.signAt(writer.head.id, writer.head.hash, new Date((lastSlot + 1) * spec.checkpointMs));
  checkpoints++;
  for (const i of indexes) {
    const t = performance.now();
    db.exec(i.sql);
    log(`${spec.name}: index ${i.name} built in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  const t = performance.now();
  writer.index(true);
  log(`${spec.name}: lookup tables filled in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  db.pragma('synchronous = FULL');
  db.pragma('wal_checkpoint(TRUNCATE)');
  writer.close();
  execFileSync('sync');
  const dbBytes = statSync(join(dir, 'trail', 'audit.db')).size;
  const seconds = elapsed();
  log(`${spec.name}: ${spec.events} events, ${checkpoints} checkpoints, audit.db ${(dbBytes / 1e9).toFixed(2)} GB${spec.jsonl ? `, JSON lines ${(jsonlBytes / 1e9).toFixed(2)} GB` : ''}, generated in ${seconds.toFixed(0)} s`);
  return { key: stampKey, generated_at: new Date().toISOString(), seconds, events: spec.events, checkpoints, db_bytes: dbBytes, jsonl_bytes: jsonlBytes };
}

/**
 * A trail cached by the code before the lookup tables (issue 21) is moved to the current layout the
 * way a gateway moves one at open (schema.ts): in place for the read-only query trail, or into a
 * copy (`into`) kept next to the cache for the append rounds, so the cached original is never
 * rewritten and each round does not pay the move. Logs the time it took (not a measurement).
 */
export function currentLayout(trailDir: string, log: (line: string) => void, into?: string): string {
  const source = join(trailDir, 'audit.db');
  const target = into ? join(into, 'audit.db') : source;
  const stamp = into ? join(into, 'layout.json') : null;
  const want = JSON.stringify({ source_mtime: statSync(source).mtimeMs, version: MIGRATIONS.length });
  if (stamp && existsSync(stamp) && readFileSync(stamp, 'utf8') === want && existsSync(target)) return into!;
  if (into) {
    rmSync(into, { recursive: true, force: true });
    mkdirSync(into, { recursive: true });
    copyFileSync(source, target);
  }
  const db = new Database(target);
  const version = db.pragma('user_version', { simple: true }) as number;
  db.close();
  if (version < MIGRATIONS.length) {
    const t = performance.now();
    const migrated = openAuditDb(dirname(target));
    migrated.pragma('wal_checkpoint(TRUNCATE)');
    migrated.close();
    log(`${target}: moved to the current layout (schema ${version} -> ${MIGRATIONS.length}) in ${((performance.now() - t) / 1000).toFixed(0)} s (not a measurement)`);
  }
  if (stamp) writeFileSync(stamp, want);
  return into ?? trailDir;
}
