// The gateways over one store: each registers the URL the others reach it at and renews it with a
// heartbeat; a gateway not seen for a while is no longer live (it died without saying so). The
// audit routes use it to ask every gateway for its own trail. Each gateway's chain is also kept in
// audit_chains after its gateway stops, so a question asked while it is gone names its chain as
// missing instead of leaving its events out without a word, until an admin retires the chain. On
// the embedded store there is only this process: no peers.
import { randomUUID } from 'node:crypto';
import type { Store } from './store.js';

export interface GatewayEntry {
  id: string;
  name: string;
  url: string;
  /** Why this gateway's chain cannot be asked apart from another's (its address is claimed twice). */
  problem?: string;
}

/** A gateway's chain as the store knows it. */
export interface ChainEntry {
  /** The chain's own identity (drawn in its audit.db), so a new trail at an old address is told apart. */
  chain_id: string;
  name: string;
  url: string;
  state: 'live' | 'gone' | 'retired';
  first_seen: string;
  last_seen: string;
  retired?: { at: string; by: string; reason: string };
}

export interface GatewayRegistry {
  readonly self: GatewayEntry;
  /** The other gateways seen lately, then the chains of gateways gone (with a problem saying so), by name. */
  peers(): Promise<GatewayEntry[]>;
  /** The policy version each other live gateway served at its last heartbeat, by name. */
  policyVersions(): Promise<{ name: string; version: string | null }[]>;
  /** Every chain ever seen over the store, this gateway's included, by name. */
  chains(): Promise<ChainEntry[]>;
  /** Marks a gone gateway's chain as no longer expected; refused while its gateway runs. */
  retire(name: string, by: string, reason: string): Promise<ChainEntry>;
  /** Leaves the registry (a clean stop). */
  close(): Promise<void>;
}

export interface RegistryOptions {
  name: string;
  url: string;
  /** This gateway's audit chain (AuditTrail.chainId()). */
  chainId: string;
  heartbeatMs?: number;
  /** A gateway not seen for this long is left out (about three missed heartbeats). */
  staleMs?: number;
  /** The policy version this gateway serves now, written with each heartbeat. */
  policyVersion?: () => string;
  now?: () => number;
  log?: { warn(o: object, m: string): void };
  /**
   * Called when this gateway's chain was retired and the gateway is seen again, before the
   * retirement is undone: the caller records it (a throw leaves it retired, to be tried again).
   */
  onResumed?: (chain: { name: string; retired: { at: string; by: string; reason: string } }) => Promise<void>;
}

const HEARTBEAT_MS = 5_000;
const STALE_MS = 15_000;

export async function registerGateway(store: Store, o: RegistryOptions): Promise<GatewayRegistry> {
  const self: GatewayEntry = { id: randomUUID(), name: o.name, url: o.url };
  const now = o.now ?? Date.now;
  if (store.dialect !== 'postgres') {
    const started = new Date(now()).toISOString();
    const alone = (): ChainEntry => ({ chain_id: o.chainId, name: self.name, url: self.url, state: 'live', first_seen: started, last_seen: new Date(now()).toISOString() });
    return {
      self,
      peers: async () => [],
      policyVersions: async () => [],
      chains: async () => [alone()],
      retire: async (name) => {
        throw new RegistryError(name === self.name ? 'running' : 'unknown', name === self.name ? `gateway ${name} is this one, and running` : `no gateway's chain is called ${name} (this gateway is alone on its store)`);
      },
      close: async () => undefined,
    };
  }
  const staleMs = o.staleMs ?? STALE_MS;
  // Called once this gateway's `gateways` row is written. A retired name seen again is a gateway
  // started again (or back from a freeze) with that chain: it counts once more, and the retirement
  // it undoes is handed to onResumed to be recorded first. The chain's row is locked as retire()
  // locks it, so a retirement either saw this gateway's row or is seen here.
  // Another chain that still counts under our name (a new host, or an empty audit.dir, at a gone
  // gateway's address) is refused: taking the name would drop that chain's events from merged answers.
  const seenChain = (): Promise<void> =>
    store.db.transaction().execute(async (trx) => {
      const t = now();
      const rows = await trx.selectFrom('audit_chains').selectAll().where((eb) => eb.or([eb('chain_id', '=', o.chainId), eb('name', '=', self.name)])).forUpdate().execute();
      const other = rows.find((r) => r.chain_id !== o.chainId && r.name === self.name && r.retired_at === null);
      if (other !== undefined)
        throw new RegistryError(
          'taken',
          `the name ${self.name} belongs to another audit chain (${other.chain_id}, last seen ${new Date(Number(other.seen_at)).toISOString()}) that is not retired, and this gateway's audit.dir holds a different one (${o.chainId}): start the gateway whose audit.dir holds that chain here, or export its trail and retire it (gatehouse audit retire ${self.name} --reason ...), or give this gateway another server.peer_url`,
        );
      const was = rows.find((r) => r.chain_id === o.chainId);
      if (was?.retired_at != null && o.onResumed) await o.onResumed({ name: self.name, retired: chainEntry(was, new Set()).retired! });
      await trx
        .insertInto('audit_chains')
        .values({ chain_id: o.chainId, name: self.name, url: self.url, first_seen_at: t, seen_at: t, retired_at: null, retired_by: null, retired_reason: null })
        .onConflict((c) => c.column('chain_id').doUpdateSet({ name: self.name, url: self.url, seen_at: t, retired_at: null, retired_by: null, retired_reason: null }))
        .execute();
    });
  // A row at our address is an earlier run of this gateway (killed before it could leave): two live
  // processes do not listen at one address, and left in, it would have the others ask us twice.
  await store.db.deleteFrom('gateways').where('url', '=', self.url).execute();
  const serving = () => o.policyVersion?.() ?? null;
  await store.db.insertInto('gateways').values({ ...self, started_at: new Date(now()).toISOString(), seen_at: now(), policy_version: serving() }).execute();
  try {
    await seenChain();
  } catch (err) {
    // Refused (the name is another chain's) or the store failed: this gateway does not start, so it must not look running.
    await store.db.deleteFrom('gateways').where('id', '=', self.id).execute().catch(() => undefined);
    throw err;
  }
  const beat = setInterval(() => {
    store.db
      .updateTable('gateways')
      .set({ seen_at: now(), policy_version: serving() })
      .where('id', '=', self.id)
      .execute()
      .then(async (r) => {
        // Removed meanwhile (a peer cleaned stale rows while this one stalled): register again.
        if ((r[0]?.numUpdatedRows ?? 0n) === 0n) await store.db.insertInto('gateways').values({ ...self, started_at: new Date(now()).toISOString(), seen_at: now(), policy_version: serving() }).execute();
        await seenChain();
      })
      .catch((err: Error) => o.log?.warn({ err: err.message }, 'gateway heartbeat not written'));
  }, o.heartbeatMs ?? HEARTBEAT_MS);
  beat.unref();
  return {
    self,
    async peers() {
      const since = now() - staleMs;
      // Rows of gateways long gone (killed, never closed) are removed by whoever looks.
      await store.db.deleteFrom('gateways').where('seen_at', '<', since - 10 * staleMs).execute();
      const rows = await store.db
        .selectFrom('gateways')
        .select(['id', 'name', 'url'])
        .where('seen_at', '>=', since)
        .where('id', '!=', self.id)
        .orderBy('seen_at', 'desc')
        .execute();
      // One chain per address: a row of an earlier run at our address was removed when we registered,
      // so a live row that claims our address or name, or one another row claims, is a second gateway
      // reachable only by chance (two sharing server.peer_url, say). Its chain cannot be asked apart:
      // it is listed as such, never dropped, so answers say a chain is missing instead of omitting it.
      const claimed = new Map<string, string>([
        [self.url, 'this gateway'],
        [self.name, 'this gateway'],
      ]);
      const peers: GatewayEntry[] = [];
      for (const r of rows) {
        const other = claimed.get(r.url) ?? claimed.get(r.name);
        if (other !== undefined) {
          peers.push({ ...r, problem: `registers at ${r.url} as ${r.name}, as ${other} does: two gateways share one server.peer_url, so its chain cannot be asked apart; give each gateway its own` });
          continue;
        }
        claimed.set(r.url, `gateway ${r.name}`).set(r.name, `gateway ${r.name}`);
        peers.push(r);
      }
      // Chains whose gateway is not running now: never asked, always named (their events are missing).
      const live = new Set([self.name, ...peers.map((p) => p.name)]);
      const gone = await store.db.selectFrom('audit_chains').select(['name', 'url', 'seen_at']).where('retired_at', 'is', null).execute();
      for (const c of gone) {
        if (live.has(c.name)) continue;
        peers.push({ id: '', name: c.name, url: c.url, problem: `not running (last seen ${new Date(Number(c.seen_at)).toISOString()}): its chain's events are missing from this answer; start it again, or once its trail is exported, retire it (gatehouse audit retire ${c.name} --reason ...)` });
      }
      return peers.sort(byName);
    },
    async policyVersions() {
      const rows = await store.db
        .selectFrom('gateways')
        .select(['name', 'policy_version'])
        .where('seen_at', '>=', now() - staleMs)
        .where('id', '!=', self.id)
        .execute();
      return rows.map((r) => ({ name: r.name, version: r.policy_version })).sort(byName);
    },
    async chains() {
      const since = now() - staleMs;
      const liveRows = await store.db.selectFrom('gateways').select('name').where('seen_at', '>=', since).execute();
      const live = new Set([self.name, ...liveRows.map((r) => r.name)]);
      const rows = await store.db.selectFrom('audit_chains').selectAll().execute();
      return rows.map((r) => chainEntry(r, live)).sort(byName);
    },
    async retire(name, by, reason) {
      if (name === self.name) throw new RegistryError('running', `gateway ${name} is this one, and running: stop it first`);
      // Decided under the chain's row lock, which a gateway seen again takes after writing its
      // `gateways` row (seenChain): one starting meanwhile is either seen running here or un-retires after.
      return store.db.transaction().execute(async (trx) => {
        const named = await trx.selectFrom('audit_chains').selectAll().where('name', '=', name).forUpdate().execute();
        if (named.length === 0) throw new RegistryError('unknown', `no gateway's chain is called ${name}`);
        const chain = named.find((c) => c.retired_at === null);
        if (chain === undefined) throw new RegistryError('retired', `gateway ${name}'s chain is already retired`);
        const since = now() - staleMs;
        const running = await trx.selectFrom('gateways').select('name').where('name', '=', name).where('seen_at', '>=', since).executeTakeFirst();
        if (running)
          throw new RegistryError(
            'running',
            `gateway ${name} is running (seen in the last ${Math.round(staleMs / 1000)} s): stop it first (one killed outright counts as running until it has been unseen that long); a running gateway's chain is asked, not retired`,
          );
        const r = await trx.updateTable('audit_chains').set({ retired_at: now(), retired_by: by, retired_reason: reason }).where('chain_id', '=', chain.chain_id).returningAll().executeTakeFirstOrThrow();
        return chainEntry(r, new Set());
      });
    },
    async close() {
      clearInterval(beat);
      await store.db.deleteFrom('gateways').where('id', '=', self.id).execute().catch(() => undefined);
    },
  };
}

export class RegistryError extends Error {
  constructor(
    readonly kind: 'unknown' | 'running' | 'retired' | 'taken',
    message: string,
  ) {
    super(message);
  }
}

const byName = (x: { name: string }, y: { name: string }): number => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);

function chainEntry(r: { chain_id: string; name: string; url: string; first_seen_at: number | string; seen_at: number | string; retired_at: number | string | null; retired_by: string | null; retired_reason: string | null }, live: ReadonlySet<string>): ChainEntry {
  const iso = (t: number | string) => new Date(Number(t)).toISOString();
  const entry: ChainEntry = { chain_id: r.chain_id, name: r.name, url: r.url, state: r.retired_at !== null ? 'retired' : live.has(r.name) ? 'live' : 'gone', first_seen: iso(r.first_seen_at), last_seen: iso(r.seen_at) };
  if (r.retired_at !== null) entry.retired = { at: iso(r.retired_at), by: r.retired_by ?? '', reason: r.retired_reason ?? '' };
  return entry;
}
