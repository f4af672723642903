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
      const rows = await store.db.selectFrom('gateways').select(['id', 'name', 'url']).where('seen_at', '>=', since).where('id', '!=', self.id).orderBy('name').execute();
      return rows;
    },
    async close() {
      clearInterval(beat);
      await store.db.deleteFrom('gateways').where('id', '=', self.id).execute().catch(() => undefined);
    },
  };
}
