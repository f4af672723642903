// The catalog as authorization needs it, one dataset at a time: labels decide access (pii), so they
// come from the backend, reused for at most `ttlMs` to keep submissions fast. A name the cached
// listing lacks is looked up afresh (a dataset created a moment ago), and callers ask for a fresh
// answer where staleness would matter (the labels of a dataset about to be overwritten).
import type { DatasetInfo } from '../wire/index.js';

export type DatasetLookup = (name: string, fresh: boolean) => Promise<DatasetInfo | undefined>;

export function datasetLookup(list: () => Promise<DatasetInfo[]>, ttlMs: number): DatasetLookup {
  let byName = new Map<string, DatasetInfo>();
  let at = -Infinity;
  let loading: Promise<void> | null = null;
  const reload = () =>
    (loading ??= list()
      .then((all) => {
        byName = new Map(all.map((d) => [d.name, d]));
        at = Date.now();
      })
      .finally(() => (loading = null)));
  return async (name, fresh) => {
    if (!fresh && Date.now() - at < ttlMs && byName.has(name)) return byName.get(name);
    // A fresh answer must come from a listing begun after it was asked for: one already under way
    // may have read the catalog before the change the caller needs to see.
    if (fresh && loading !== null) await loading.catch(() => undefined);
    await reload();
    return byName.get(name);
  };
}
