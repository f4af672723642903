// The text of every policy version that served, kept in the store by its content hash (migration
// 0013). A version is stored before it serves (at start-up, and by a reload before the swap), so any
// decision the trail records names a version whose text can be read back: an auditor sees the rule
// that decided as it was then, not as policies/ says today.
import type { Store } from '../store/index.js';
import type { PolicySnapshot } from './snapshot.js';

export interface StoredVersion {
  version: string;
  model: string;
  policy: string;
  first_served_at: string;
}

export class PolicyVersions {
  private readonly cache = new Map<string, StoredVersion>();

  constructor(private readonly store: Store) {}

  /** Stores a version's text unless it is there already (the same hash is the same text). */
  async remember(snapshot: PolicySnapshot): Promise<void> {
    if (this.cache.has(snapshot.version)) return;
    const row = { version: snapshot.version, model: snapshot.sources.model, policy: snapshot.sources.policy, first_served_at: snapshot.loadedAt.toISOString() };
    await this.store.db.insertInto('policy_versions').values(row).onConflict((c) => c.column('version').doNothing()).execute();
    this.cache.set(snapshot.version, row);
  }

  /** A stored version's text, or null when this store never saw it served. */
  async get(version: string): Promise<StoredVersion | null> {
    const cached = this.cache.get(version);
    if (cached) return cached;
    const row = await this.store.db.selectFrom('policy_versions').selectAll().where('version', '=', version).executeTakeFirst();
    if (!row) return null;
    this.cache.set(version, row);
    return row;
  }

  /**
   * The text of `policy.csv:12` (or `model.conf:3`) in `version`, as that version had it; null when
   * the version or the line is unknown.
   */
  async lineText(version: string, ref: string): Promise<string | null> {
    const m = /^(model\.conf|policy\.csv):(\d+)$/.exec(ref);
    if (!m) return null;
    const stored = await this.get(version);
    if (!stored) return null;
    const text = m[1] === 'model.conf' ? stored.model : stored.policy;
    const line = text.split('\n')[Number(m[2]) - 1];
    return line === undefined ? null : line.replace(/\r$/, '').trim();
  }
}
