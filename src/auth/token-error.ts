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
  | 'csrf'; // a cookie-authenticated change without the CSRF token

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly reason: TokenFailure,
    readonly detail?: string,
  ) {
    super(detail ? `${reason}: ${detail}` : reason);
  }
}
