// Why a credential was refused. The reason goes to the audit trail and the log; the client gets a
// plain 401 with a generic message, so a forger learns nothing about which check caught them.
export type TokenFailure =
  | 'missing'
  | 'malformed'
  | 'alg_not_allowed' // alg none, HS256 with our public key (algorithm confusion), anything but EdDSA
  | 'unknown_key'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'missing_claim'
  | 'revoked' // the login was ended (logout, reuse, certificate revocation)
  | 'reused' // a refresh token presented twice: its whole family is revoked
  | 'unknown' // no such refresh token or session
  | 'foreign_ca'
  | 'not_a_user' // a valid certificate that names a service, not a person
  | 'csrf' // a cookie-authenticated change without the CSRF token
  | 'too_long_lived' // a token whose exp - iat is past tokens.access_ttl (minted by a key holder, not by us)
  | 'account_gone' // a refresh of an LDAP login whose person the directory no longer has (deleted, disabled, renamed)
  | 'method_disabled'; // a refresh of an LDAP login on a gateway where LDAP login is no longer configured

/**
 * Whom a refused credential names, for the audit trail. `verified`: the credential is genuinely
 * that person's (a valid signature, a refresh token or session we issued, a certificate we stored)
 * but may no longer be used (revoked, expired, reused); otherwise only claimed by its bearer.
 */
export interface CredentialOwner {
  user: string;
  groups: string[];
  auth_method: string;
  verified: boolean;
  /** The login it belongs to, when known. */
  session_id?: string;
}

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly reason: TokenFailure,
    readonly detail?: string,
    readonly owner?: CredentialOwner,
  ) {
    super(detail ? `${reason}: ${detail}` : reason);
  }
}
