// The gateways over one store: each registers the URL the others reach it at and renews it with a
// heartbeat; a gateway not seen for a while is no longer listed (it died without saying so). The
// audit routes use it to ask every gateway for its own trail. On the embedded store there is only
// this process: no peers.
import { randomUUID } from 'node:crypto';
import type { Store } from './store.js';

export interface GatewayEntry {
  id: string;
  name: string;
  url: string;
  /** Why this gateway's chain cannot be asked apart from another's (its address is claimed twice). */
  problem?: string;
}

export interface GatewayRegistry {
  readonly self: GatewayEntry;
  /** The other gateways seen lately, by name. */
  peers(): Promise<GatewayEntry[]>;
  /** Leaves the registry (a clean stop). */
  close(): Promise<void>;
}

export interface RegistryOptions {
  name: string;
  url: string;
  heartbeatMs?: number;
  /** A gateway not seen for this long is left out (about three missed heartbeats). */
  staleMs?: number;
  now?: () => number;
  log?: { warn(o: object, m: string): void };
}

const HEARTBEAT_MS = 5_000;
const STALE_MS = 15_000;

export async function registerGateway(store: Store, o: RegistryOptions): Promise<GatewayRegistry> {
  const self: GatewayEntry = { id: randomUUID(), name: o.name, url: o.url };
  if (store.dialect !== 'postgres') return { self, peers: async () => [], close: async () => undefined };
  const now = o.now ?? Date.now;
  const staleMs = o.staleMs ?? STALE_MS;
  // A row at our address is an earlier run of this gateway (killed before it could leave): two live
  // processes do not listen at one address, and left in, it would have the others ask us twice.
  await store.db.deleteFrom('gateways').where('url', '=', self.url).execute();
  await store.db.insertInto('gateways').values({ ...self, started_at: new Date(now()).toISOString(), seen_at: now() }).execute();
  const beat = setInterval(() => {
    store.db
      .updateTable('gateways')
      .set({ seen_at: now() })
      .where('id', '=', self.id)
      .execute()
      .then(async (r) => {
        // Removed meanwhile (a peer cleaned stale rows while this one stalled): register again.
        if ((r[0]?.numUpdatedRows ?? 0n) === 0n) await store.db.insertInto('gateways').values({ ...self, started_at: new Date(now()).toISOString(), seen_at: now() }).execute();
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
      return peers.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    },
    async close() {
      clearInterval(beat);
      await store.db.deleteFrom('gateways').where('id', '=', self.id).execute().catch(() => undefined);
    },
  };
}
