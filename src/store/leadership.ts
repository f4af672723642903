// One leader per name among every gateway over the store (the job path's reconciler and orphan sweep).
//
// Over PostgreSQL the leader is whoever holds a session-level advisory lock on a connection of its own,
// outside the pool: the lock lives exactly as long as that session. A replica killed outright closes its
// TCP connection, the server frees the lock at once and a follower takes it at its next attempt; no
// lease row, so no clock of any host matters. The embedded SQLite store belongs to one process: that
// process leads at once, always.
//
// The leader checks its session every retryMs and steps down at the first sign of trouble (a failed or
// slow check, the session's error or end), before the server can free the lock for anyone else (see
// KEEPALIVES). Leadership only says who should run periodic work; it fences nothing: a leader whose
// process stalls longer than the server's keepalive window may briefly overlap its successor, so the
// work it guards must stay safe to run twice.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { StoreError } from './errors.js';
import type { Store } from './store.js';

export interface LeadershipLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface LeadershipOptions {
  /** What is led (e.g. 'job-path'); one leader per name per database. */
  name: string;
  /** Between a follower's attempts, and between the leader's checks of its session. */
  retryMs?: number;
  /** How long the leader's check may take before it steps down; default max(retryMs, 1 s). */
  checkTimeoutMs?: number;
  log?: LeadershipLog;
}

export interface Leadership {
  readonly name: string;
  isLeader(): boolean;
  /** Called on every change, true when gained and false when lost (or given up by close). */
  onChange(cb: (leader: boolean) => void): void;
  /** Resolves once leadership is held; rejects if closed first. */
  whenLeader(): Promise<void>;
  /** Gives leadership up at once and stops trying. */
  close(): Promise<void>;
}

const RETRY_MS = 2_000;

/**
 * Server-side TCP keepalives on the leader's session: without them the server keeps a session whose
 * host vanished (power loss, a partition: no FIN, no RST) for the kernel's default of about two hours,
 * and with it the lock. With these it drops the session about 9 s (5 + 2 x 2) after it last heard from
 * it, longer than the leader takes to step down (retryMs + the check's timeout, 4 s by default).
 * tcp_user_timeout does the same when the server's last answer was never acknowledged.
 */
const KEEPALIVES = { tcp_keepalives_idle: 5, tcp_keepalives_interval: 2, tcp_keepalives_count: 2, tcp_user_timeout: 9_000 };

/**
 * A leader frozen outright (a stopped process, a paused VM) still has a kernel that answers the
 * keepalives, so its session and lock would stay until it resumes, and no replica would reconcile,
 * sweep or drain meanwhile. PostgreSQL 14+ ends a session that sent nothing for idle_session_timeout:
 * the leader sends its check every retryMs, so a session silent this many times longer is a frozen one.
 */
const IDLE_CHECKS = 3;
const MIN_IDLE_MS = 5_000;

/** First half of every leadership lock's two-int key: apart from the gateway's other advisory locks
 *  (signing keys use the one-argument form, store/exclusive.ts the class 0x47480001). */
export const LEADERSHIP_LOCK_CLASS = 0x47480002;

/** The two-int advisory lock key of a leadership name. */
export function leadershipKey(name: string): [number, number] {
  return [LEADERSHIP_LOCK_CLASS, createHash('sha256').update(name).digest().readInt32BE(0)];
}

export function openLeadership(store: Store, o: LeadershipOptions): Leadership {
  if (o.name === '') throw new StoreError('a leadership needs a name');
  return store.dialect === 'sqlite' ? new SoleLeadership(o.name, o.log) : new LockLeadership(store, o);
}

/** Listeners and waiters, shared by both kinds. */
abstract class Base implements Leadership {
  protected leader = false;
  protected closed = false;
  private readonly listeners: ((leader: boolean) => void)[] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    readonly name: string,
    protected readonly log: LeadershipLog | undefined,
  ) {}

  isLeader(): boolean {
    return this.leader;
  }

  onChange(cb: (leader: boolean) => void): void {
    this.listeners.push(cb);
  }

  whenLeader(): Promise<void> {
    if (this.leader) return Promise.resolve();
    if (this.closed) return Promise.reject(new StoreError(`leadership ${this.name} is closed`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  abstract close(): Promise<void>;

  protected set(leader: boolean, why: object): void {
    if (this.leader === leader) return;
    this.leader = leader;
    if (leader) this.log?.info({ leadership: this.name, ...why }, 'leadership gained');
    else if ((why as { reason?: string }).reason === 'closed') this.log?.info({ leadership: this.name }, 'leadership given up (closing)');
    else this.log?.warn({ leadership: this.name, ...why }, 'leadership lost');
    for (const cb of this.listeners) {
      try {
        cb(leader);
      } catch (err) {
        this.log?.warn({ leadership: this.name, err: (err as Error).message }, 'a leadership listener failed');
      }
    }
    if (leader) for (const w of this.takeWaiters()) w.resolve();
  }

  protected rejectWaiters(): void {
    for (const w of this.takeWaiters()) w.reject(new StoreError(`leadership ${this.name} is closed`));
  }

  private takeWaiters() {
    const waiters = this.waiters;
    this.waiters = [];
    return waiters;
  }
}

class SoleLeadership extends Base {
  constructor(name: string, log: LeadershipLog | undefined) {
    super(name, log);
    this.set(true, { store: 'sqlite' });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.set(false, { reason: 'closed' });
    this.rejectWaiters();
  }
}

/**
 * The lock leaderships of this process, by database and name. Taking the lock proves that whichever
 * session held it before is gone, but the former holder's client may hear so a moment later (the server
 * frees the lock as the session ends, and the two answers race to this process): a local former holder
 * is stepped down before the new one claims, so this process never sees two leaders.
 */
const local = new Map<string, Set<LockLeadership>>();

class LockLeadership extends Base {
  private readonly place: string;
  private readonly retryMs: number;
  private readonly checkTimeoutMs: number;
  private readonly key: [number, number];
  private readonly session: NonNullable<Store['session']>;
  /** The session in use (following or leading), null between attempts. */
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  /** Why the last attempt failed, so a follower logs a new reason once, not every retry. */
  private lastFailure: string | null = null;

  constructor(store: Store, o: LeadershipOptions) {
    super(o.name, o.log);
    if (!store.session) throw new StoreError('this store cannot open a session of its own for a leadership lock');
    this.session = store.session;
    this.retryMs = o.retryMs ?? RETRY_MS;
    this.checkTimeoutMs = o.checkTimeoutMs ?? Math.max(this.retryMs, 1_000);
    this.key = leadershipKey(o.name);
    this.place = `${store.location}\0${o.name}`;
    const peers = local.get(this.place) ?? new Set();
    local.set(this.place, peers.add(this));
    this.schedule(0);
  }

  async close(): Promise<void> {
    if (this.closed) return this.running;
    this.closed = true;
    const peers = local.get(this.place);
    peers?.delete(this);
    if (peers?.size === 0) local.delete(this.place);
    if (this.timer) clearTimeout(this.timer);
    this.set(false, { reason: 'closed' });
    this.rejectWaiters();
    await this.running;
    const client = this.client;
    this.client = null;
    // A clean end lets the server free the lock before close resolves; a session that does not say
    // goodbye in time is cut.
    if (client) await within(client.end(), this.checkTimeoutMs).catch(() => destroy(client));
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = (this.leader ? this.check() : this.attempt()).finally(() => this.schedule(this.retryMs));
    }, ms);
    this.timer.unref();
  }

  /** A follower's try: a session if it has none, then the lock without waiting. */
  private async attempt(): Promise<void> {
    try {
      const client = this.client ?? (await this.connect());
      const [cls, key] = this.key;
      const res = await within(client.query<{ locked: boolean }>('select pg_try_advisory_lock($1::int4, $2::int4) as locked', [cls, key]), this.checkTimeoutMs);
      if (this.closed || client !== this.client) return;
      if (res.rows[0]?.locked === true) {
        this.lastFailure = null;
        for (const peer of local.get(this.place) ?? []) if (peer !== this && peer.leader) peer.drop('another session of this process took the lock, so this one is gone');
        this.set(true, { backendPid: backendPid(client) });
      } else this.failed('held by another session');
    } catch (err) {
      this.drop((err as Error).message);
    }
  }

  /** The leader's check: its session still answers, so the server still holds the lock for it. */
  private async check(): Promise<void> {
    const client = this.client;
    if (!client) return this.drop('no session');
    try {
      await within(client.query('select 1'), this.checkTimeoutMs);
    } catch (err) {
      if (client === this.client) this.drop(`its session failed a check: ${(err as Error).message}`);
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = this.session({ settings: KEEPALIVES, applicationName: `gatehouse leadership ${this.name}`.slice(0, 63) });
    // Listeners before connect: a session lost at any point steps the leader down on the spot.
    client.on('error', (err) => {
      if (client === this.client) this.drop(`its session failed: ${err.message}`);
    });
    client.on('end', () => {
      if (client === this.client) this.drop('its session ended');
    });
    this.client = client;
    try {
      await within(client.connect(), this.checkTimeoutMs + 5_000);
    } catch (err) {
      if (client === this.client) this.client = null;
      destroy(client);
      throw err;
    }
    if (this.closed) {
      this.client = null;
      destroy(client);
      throw new StoreError('closed');
    }
    try {
      // A no-op before PostgreSQL 14, which has no such setting.
      const idleMs = Math.max(IDLE_CHECKS * this.retryMs, this.checkTimeoutMs + this.retryMs, MIN_IDLE_MS);
      await within(client.query("select set_config('idle_session_timeout', $1, false) where current_setting('server_version_num')::int >= 140000", [String(idleMs)]), this.checkTimeoutMs);
    } catch (err) {
      if (client === this.client) this.client = null;
      destroy(client);
      throw err;
    }
    return client;
  }

  /** Steps down at once if leading, and cuts the session so the server frees the lock. */
  private drop(reason: string): void {
    const client = this.client;
    this.client = null;
    if (client) destroy(client);
    if (this.leader) this.set(false, { reason });
    else this.failed(reason);
  }

  private failed(reason: string): void {
    if (this.closed || reason === this.lastFailure) return;
    this.lastFailure = reason;
    this.log?.info({ leadership: this.name, reason }, 'following; leadership not taken');
  }
}

function backendPid(client: pg.Client): number | undefined {
  return (client as unknown as { processID?: number }).processID;
}

/** Closes the socket without a goodbye: the server frees the session's locks when it sees it go. */
function destroy(client: pg.Client): void {
  client.on('error', () => undefined);
  client.connection.stream.destroy();
  client.end().catch(() => undefined);
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreError(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
