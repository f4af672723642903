// A person as their login method can tell now, for work decided long after they logged in: a job that
// waited in the queue is decided again as it leaves it, with who the person is then, not who they were
// at submission. Only a directory can be asked (LDAP); an OIDC login keeps what it had (the gateway holds
// no provider refresh token to ask with).
export type PersonNow =
  /** The method cannot be asked again: decide with what the login had. */
  | { status: 'unasked' }
  /** The directory's answer: the person is there with these groups, and this cluster account (absent: none). */
  | { status: 'present'; groups: string[]; posix_user?: string }
  /** The person is no longer there (deleted, disabled, or their method switched off here). */
  | { status: 'gone'; reason: string }
  /** The directory could not say; try again later. */
  | { status: 'unsure'; reason: string };

/** Asks the person's login method who they are now (`auth_method` as a job record keeps it). */
export type PersonLookup = (subject: { user: string; auth_method: string }) => Promise<PersonNow>;

/**
 * Whether the login work was submitted under still stands. Ended: revoked (a logout, a stolen refresh
 * token detected, the directory's account gone), or not known at all. A login that merely ran out
 * still stands: the person did not take back what they asked for while it was valid.
 */
export type LoginNow = { status: 'live' } | { status: 'ended'; reason: string };

/** Asks the store about a login (token family) by its id; rejects when the store cannot say. */
export type LoginLookup = (loginId: string) => Promise<LoginNow>;
