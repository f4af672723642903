// The port through which every room asks "may?": src/policy implements it on the serving policy
// version; src/auth (certificate revocation), the authorization stage and the job path use it
// without knowing how policy is loaded or evaluated.
import type { Decision, DecideOptions } from './decision.js';
import type { Subject } from './identity.js';

export interface Authorizer {
  /** Decides `action` on `object` for `subject` on the version serving now. Never throws for a denial. */
  decide(subject: Subject, object: string, action: string, options?: DecideOptions): Decision;
  /** The version serving now: what a decision made now names (a listing records it even when it decided nothing). */
  version(): string;
}
