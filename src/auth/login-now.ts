// Whether a login still stands, read from the store each time: a job that waited in the queue is not
// handed over on a login that ended meanwhile, on any gateway over the store.
import type { LoginLookup } from '../identity/index.js';
import type { Store } from '../store/index.js';

export function loginLookup(store: Store): LoginLookup {
  return async (loginId) => {
    const row = await store.db.selectFrom('token_families').select(['revoked_at', 'revoke_reason']).where('id', '=', loginId).executeTakeFirst();
    // Every login's row is written before its first token: a job naming another came from elsewhere.
    if (row === undefined) return { status: 'ended', reason: 'the login is not known to this gateway' };
    if (row.revoked_at !== null) return { status: 'ended', reason: row.revoke_reason ?? 'revoked' };
    return { status: 'live' };
  };
}
