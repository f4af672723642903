// A login that did not succeed. `reason` goes to the audit trail; `message` is safe for the client
// and deliberately vague where detail would help an attacker (which of username or password was wrong).

export type LoginFailure =
  | 'invalid_credentials' // wrong password or unknown user: the client cannot tell which
  | 'empty_password'
  | 'invalid_username' // characters a username may not have, or too long
  | 'ambiguous_user' // the directory returned several entries for one name
  | 'throttled' // too many recent failures for this username or address
  | 'provider_unavailable' // the directory or IdP could not be reached
  | 'provider_error' // the IdP or directory answered with something we refuse
  | 'authorization_pending' // device flow: the user has not approved yet
  | 'slow_down' // device flow: polling too fast
  | 'access_denied' // the user refused at the IdP
  | 'expired' // device code, login request or token past its time
  | 'invalid_state' // browser flow: state, nonce or PKCE did not match, or the state is unknown or expired
  | 'browser_mismatch' // browser flow: the callback came to a browser that did not start the sign-in (login CSRF)
  | 'incomplete_callback' // browser flow: the callback carries no code
  | 'invalid_claims'; // the ID token lacks the username claim, or the claim is unusable

export class LoginError extends Error {
  override readonly name = 'LoginError';
  constructor(
    readonly reason: LoginFailure,
    message: string,
    /** Internal detail for the audit trail and the log; never a secret, never sent to the client. */
    readonly detail?: string,
  ) {
    super(message);
  }
}
