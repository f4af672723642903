// A refresh of an LDAP login asks the directory again: a person deleted or disabled there (left out by
// the user filter) stops getting tokens at their next refresh, within tokens.access_ttl, not at the end
// of tokens.refresh_ttl; a change of groups reaches the next access token the same way. OIDC logins
// are not asked again: the gateway keeps no provider refresh token to ask with.
import type { LoginSubject, PersonLookup } from '../identity/index.js';
import { GatehouseError } from '../wire/index.js';
import type { LdapLogin } from './ldap.js';
import { LoginError } from './login-error.js';
import { type CredentialOwner, TokenError } from './token-error.js';
import { ownerOf, type RefreshPlan } from './tokens.js';

/**
 * The login's person as the directory has them now, for an LDAP login; undefined for another method.
 * TokenError when the directory no longer has them or LDAP is switched off here; a 503 when the
 * directory cannot say (the refresh token stays unused, so the client may try again).
 */
export async function directoryNow(ldap: LdapLogin | undefined, plan: RefreshPlan): Promise<LoginSubject | undefined> {
  if (plan.subject.auth_method !== 'ldap') return undefined;
  return personNow(ldap, plan.subject.user, ownerOf(plan.family), ' the refresh token is still good,');
}

/**
 * An LDAP login's person as the directory has them now (a refresh, or a certificate or session in
 * directory-guard.ts): TokenError `method_disabled` or `account_gone` naming `owner`, DirectoryUnsure
 * (503) when the directory cannot say; `kept` tells the client what still works meanwhile.
 */
export async function personNow(ldap: LdapLogin | undefined, user: string, owner: CredentialOwner, kept: string): Promise<LoginSubject> {
  const answer = await askDirectory(ldap, user);
  if (answer.status === 'unsure') throw new DirectoryUnsure(answer.error, kept);
  if (answer.status === 'gone') throw new TokenError(answer.failure, answer.reason, owner);
  return answer.subject;
}

/**
 * The same question for work decided long after the login (a job leaving the queue, src/proxy):
 * the directory's answer for an LDAP login, `unasked` for another method.
 */
export function personLookup(ldap: LdapLogin | undefined): PersonLookup {
  return async ({ user, auth_method }) => {
    if (auth_method !== 'ldap') return { status: 'unasked' };
    const answer = await askDirectory(ldap, user);
    if (answer.status === 'present') return { status: 'present', groups: answer.subject.groups, ...(answer.subject.posix_user !== undefined ? { posix_user: answer.subject.posix_user } : {}) };
    if (answer.status === 'gone') return { status: 'gone', reason: `${answer.failure}: ${answer.reason}` };
    return { status: 'unsure', reason: answer.error.message };
  };
}

type DirectoryAnswer =
  | { status: 'present'; subject: LoginSubject }
  | { status: 'gone'; failure: 'method_disabled' | 'account_gone'; reason: string }
  | { status: 'unsure'; error: LoginError };

async function askDirectory(ldap: LdapLogin | undefined, user: string): Promise<DirectoryAnswer> {
  if (ldap === undefined) return { status: 'gone', failure: 'method_disabled', reason: 'LDAP login is not configured on this gateway any more' };
  let now: LoginSubject | null;
  try {
    now = await ldap.current(user);
  } catch (err) {
    if (!(err instanceof LoginError)) throw err;
    return { status: 'unsure', error: err };
  }
  if (now === null) return { status: 'gone', failure: 'account_gone', reason: `the directory has no entry for ${user} that ldap.user_filter accepts` };
  return { status: 'present', subject: now };
}

/** The directory could not say (503 to the client, whose token stays unused); the LoginError's detail is for the trail only. */
export class DirectoryUnsure extends GatehouseError {
  constructor(
    readonly directoryError: LoginError,
    kept = '',
  ) {
    super('not_ready', `the directory could not confirm the account (${directoryError.message});${kept} try again shortly`);
  }
}

/** Groups the directory added and removed since the login's last token, for the trail. */
export function groupChange(before: readonly string[], after: readonly string[]): { groups_added: string[]; groups_removed: string[] } | undefined {
  const added = after.filter((g) => !before.includes(g));
  const removed = before.filter((g) => !after.includes(g));
  return added.length === 0 && removed.length === 0 ? undefined : { groups_added: added, groups_removed: removed };
}
