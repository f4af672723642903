// Who is asking. Every credential (bearer token, client certificate, session cookie) becomes one of these,
// and policy decides on the Subject part of it: the user and the directory groups.

/** How the person proved who they are when they logged in. */
export type AuthMethod = 'oidc' | 'ldap';

/** What the request carried. */
export type Credential = 'bearer' | 'certificate' | 'session';

/** What policy decides on: a person and the groups their directory or IdP puts them in. */
export interface Subject {
  user: string;
  groups: readonly string[];
}

export interface Identity extends Subject {
  user: string;
  groups: string[];
  auth_method: AuthMethod;
  credential: Credential;
  /** When the credential that carried this request stops working. */
  expires_at: Date;
  /** The login (token family) this credential belongs to; logout and reuse detection end it. */
  session_id?: string;
  /** The person's POSIX account on the cluster (valid per posixUserOf), from their login; absent: none. */
  posix_user?: string;
}

/** What a login method learns about a person, before any credential exists. */
export interface LoginSubject {
  user: string;
  groups: string[];
  auth_method: AuthMethod;
  /** The POSIX account the directory or the IdP names (slurm.user_attribute, slurm.user_claim); absent: none. */
  posix_user?: string;
}

// Usernames end up in certificate subjects, policy subjects and audit filters: keep them plain.
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

// A POSIX account on a cluster (useradd's portable default, 32 characters at most). Anything else a
// directory or an IdP says is no account: a job is never run under a name that was not clearly one.
const POSIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** The account name if it is a valid POSIX user name (never root), else undefined. */
export function posixUserOf(value: unknown): string | undefined {
  return typeof value === 'string' && POSIX_USER.test(value) && value !== 'root' ? value : undefined;
}

/**
 * What may not be in a group name: a comma (it would split a policy line), and every character a
 * terminal or a browser acts on — C0 controls, DEL, C1 controls (U+0080–U+009F: CSI, OSC... as
 * code points), the bidi marks, embeddings, overrides and isolates (U+061C, U+200E–U+200F,
 * U+202A–U+202E, U+2066–U+2069) and the line and paragraph separators (U+2028, U+2029): the same
 * set src/cli/safe-text.ts escapes. Group names reach the audit trail, whoami and explanations.
 */
const NOT_IN_GROUP_NAME = /[,\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Group names from a directory or an IdP, trimmed to what a policy line can name. */
export function cleanGroups(groups: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const g of groups) {
    const name = g.trim();
    // Inner spaces stay (Active Directory's "Domain Admins"), and letters of any script; a name
    // with a comma or a control character is dropped rather than mangled (a mangled name could
    // become another group's).
    if (name !== '' && name.length <= 256 && !NOT_IN_GROUP_NAME.test(name)) out.add(name);
  }
  return [...out].sort();
}
