// Logins confirmed live in the store, kept until anyone could have changed that (issue 21 point 3:
// the per-request read of a login's revoked_at was the largest single cost of GET /v1/jobs/:id).
//
// Kept only where the store can say, without a query, that nobody else has written since: the
// embedded store's counter of other connections' commits (Store.commitsElsewhere, SQLite's
// PRAGMA data_version). Any commit by another connection (another gateway process over the same
// file revoking a login, deleting one) drops every entry before the next check, so a revocation
// anywhere is still seen at the next request; this process's own revocations drop their login
// through forget() (TokenService.revoke), shared by every TokenService over the same store handle.
// PostgreSQL has no such counter (a replica's commit leaves no trace on our connections): there
// nothing is kept and every request still reads the store, as before.

/** Entries kept at most; past it the set starts again (a miss only costs one query). */
const LIVE_MAX = 10_000;

/** What a store read was started under: its "live" answers are kept only if nothing moved meanwhile. */
export interface LiveMark {
  version: number;
  generation: number;
}

export class LiveLogins {
  private readonly ids = new Set<string>();
  /** The store's commitsElsewhere() value the entries hold for. */
  private at: number | undefined;
  /** Moves with every local revocation, so a read that raced one keeps nothing. */
  private generation = 0;

  constructor(private readonly version: () => number | undefined) {}

  /** True only for a login confirmed live with no commit elsewhere and no revocation here since. */
  isLive(sessionId: string): boolean {
    const v = this.version();
    if (v === undefined) return false;
    if (v !== this.at) {
      this.ids.clear();
      this.at = v;
      return false;
    }
    return this.ids.has(sessionId);
  }

  /** Taken before the store read whose answers confirmed() may keep; null when nothing can be kept. */
  mark(): LiveMark | null {
    const version = this.version();
    return version === undefined ? null : { version, generation: this.generation };
  }

  /** Keeps the logins a read started at `mark` found live, if nothing could have changed them since. */
  confirmed(mark: LiveMark | null, sessionIds: Iterable<string>): void {
    if (mark === null || mark.generation !== this.generation || this.version() !== mark.version) return;
    if (this.at !== mark.version) {
      this.ids.clear();
      this.at = mark.version;
    }
    for (const id of sessionIds) {
      if (this.ids.size >= LIVE_MAX) this.ids.clear();
      this.ids.add(id);
    }
  }

  /** A login this process has just revoked: never answered live again from memory. */
  forget(sessionId: string): void {
    this.generation += 1;
    this.ids.delete(sessionId);
  }
}

const perStore = new WeakMap<object, LiveLogins>();

/** The one LiveLogins of a store handle (every TokenService over it shares its revocations); null on PostgreSQL. */
export function liveLoginsOf(store: { db: object; commitsElsewhere?: () => number | undefined }): LiveLogins | null {
  const version = store.commitsElsewhere;
  if (version === undefined) return null;
  let live = perStore.get(store.db);
  if (live === undefined) {
    live = new LiveLogins(version);
    perStore.set(store.db, live);
  }
  return live;
}
