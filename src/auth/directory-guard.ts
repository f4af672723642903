// Credentials that never refresh (a client certificate, the console's session cookie) of an LDAP login
// ask the directory again once its last answer for that login is older than tokens.access_ttl: a person
// deleted or disabled there (left out by ldap.user_filter) loses these too within that time, as a refresh
// token does (directory-check.ts), rather than at certs.client_ttl or the login's end. Bearer tokens
// need no check: they live access_ttl at most and their refresh asks. The answers are kept per login in
// this process only; after a restart the first use asks again.
import type { Identity, LoginSubject } from '../identity/index.js';
import type { LdapLogin } from './ldap.js';
import { TokenError } from './token-error.js';
import { personNow } from './directory-check.js';
import type { TokenService } from './tokens.js';

/** Logins remembered as confirmed; past it the oldest is asked again at its next use (one search more). */
const REMEMBERED_MAX = 100_000;

export class DirectoryGuard {
  private readonly confirmedAt = new Map<string, number>();
  private readonly asking = new Map<string, Promise<LoginSubject>>();

  constructor(
    private readonly o: { ldap: LdapLogin | undefined; tokens: TokenService; everyMs: number; now: () => number },
  ) {}

  /**
   * The identity as the directory has its person now: unchanged when the login is not LDAP's or was
   * confirmed within everyMs; with the directory's groups when they changed (the login's row updated);
   * TokenError (the login ended first) when the person is gone; 503 when the directory cannot say.
   */
  async current(identity: Identity): Promise<Identity> {
    const id = identity.session_id;
    if (identity.auth_method !== 'ldap' || id === undefined) return identity;
    const at = this.confirmedAt.get(id);
    const now = this.o.now();
    if (at !== undefined && now - at < this.o.everyMs) return identity;
    const owner = { user: identity.user, groups: [...identity.groups], auth_method: identity.auth_method, verified: true, session_id: id };
    let person: LoginSubject;
    try {
      person = await this.ask(id, () => personNow(this.o.ldap, identity.user, owner, ''));
    } catch (err) {
      if (err instanceof TokenError && err.reason === 'account_gone') {
        // Ended before it is refused: the hook records the refusal (auth.rejected, account_gone).
        await this.o.tokens.revoke(id, 'the directory no longer has the account');
        this.confirmedAt.delete(id);
      }
      throw err;
    }
    await this.o.tokens.updateSubject(id, person);
    this.remember(id, now);
    const { posix_user: _old, ...rest } = identity;
    return { ...rest, groups: person.groups, ...(person.posix_user !== undefined ? { posix_user: person.posix_user } : {}) };
  }

  /** One search per login at a time: requests arriving meanwhile share its answer. */
  private ask(id: string, search: () => Promise<LoginSubject>): Promise<LoginSubject> {
    let pending = this.asking.get(id);
    if (pending === undefined) {
      pending = search().finally(() => this.asking.delete(id));
      this.asking.set(id, pending);
    }
    return pending;
  }

  private remember(id: string, at: number): void {
    this.confirmedAt.delete(id);
    if (this.confirmedAt.size >= REMEMBERED_MAX) this.confirmedAt.delete(this.confirmedAt.keys().next().value as string);
    this.confirmedAt.set(id, at);
  }
}
