// Who is asking. Every credential (bearer token, client certificate, session cookie) becomes one of these.

/** How the person proved who they are when they logged in. */
export type AuthMethod = 'oidc' | 'ldap';

/** What the request carried. */
export type Credential = 'bearer' | 'certificate' | 'session';

export interface Identity {
  user: string;
  groups: string[];
  auth_method: AuthMethod;
  credential: Credential;
  /** When the credential that carried this request stops working. */
  expires_at: Date;
  /** The login (token family) this credential belongs to; logout and reuse detection end it. */
  session_id?: string;
}

/** What a login method learns about a person, before any credential exists. */
export interface LoginSubject {
  user: string;
  groups: string[];
  auth_method: AuthMethod;
}

// Usernames end up in certificate subjects, policy subjects and audit filters: keep them plain.
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

/** Group names from a directory or an IdP, trimmed to what a policy line can name. */
export function cleanGroups(groups: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const g of groups) {
    const name = g.trim();
    // Inner spaces stay (Active Directory's "Domain Admins"); commas and control characters
    // would break a policy line, so such a name is dropped rather than mangled.
    if (name !== '' && name.length <= 256 && !/[,\u0000-\u001f\u007f]/.test(name)) out.add(name);
  }
  return [...out].sort();
}
