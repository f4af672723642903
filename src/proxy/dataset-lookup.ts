// The catalog as authorization needs it, one dataset at a time: labels decide access (pii), so they
// come from the backend, reused for at most `ttlMs` to keep submissions fast. A name not known is
// looked up afresh (a dataset created a moment ago), by itself where the backend can answer for one
// name, else by listing the catalog again; callers ask for a fresh answer where staleness would
// matter (the labels of a dataset about to be overwritten).
import type { DatasetInfo } from '../wire/index.js';

export type DatasetLookup = (name: string, fresh: boolean) => Promise<DatasetInfo | undefined>;

/** Names whose answers are kept at once: enough for every dataset in use, bounded against a flood of names. */
const MAX_KNOWN = 10_000;

/**
 * `one`, when the backend can answer for a single name by its listing's rules: a name not answered
 * within `ttlMs` is asked alone, so a submission to a new output (absent from any cached listing)
 * costs one manifest read, not a listing of the whole catalog.
 */
export function datasetLookup(list: () => Promise<DatasetInfo[]>, ttlMs: number, one?: (name: string) => Promise<DatasetInfo | undefined>): DatasetLookup {
  if (one !== undefined) return byOneName(one, ttlMs);
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

function byOneName(one: (name: string) => Promise<DatasetInfo | undefined>, ttlMs: number): DatasetLookup {
  const known = new Map<string, { info: DatasetInfo; at: number }>();
  return async (name, fresh) => {
    const hit = known.get(name);
    if (!fresh && hit !== undefined && Date.now() - hit.at < ttlMs) return hit.info;
    // A fresh answer is one asked for after the caller asked: this one is.
    const asked = Date.now();
    const info = await one(name);
    const now = known.get(name);
    // An answer asked for earlier than the one kept (two lookups crossing) does not replace it.
    if (now === undefined || now.at <= asked) {
      known.delete(name);
      if (info !== undefined) {
        known.set(name, { info, at: asked });
        if (known.size > MAX_KNOWN) known.delete(known.keys().next().value as string);
      }
    }
    return info;
  };
}
