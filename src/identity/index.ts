// src/identity's face: who is asking and may they. A leaf room of types and one port, so that
// authentication (src/auth) produces identities and policy (src/policy) decides on them without
// either importing the other.
export type { Authorizer } from './authorizer.js';
export type { Decision, DecideOptions } from './decision.js';
export { type AuthMethod, cleanGroups, type Credential, type Identity, isValidUsername, type LoginSubject, posixUserOf, type Subject } from './identity.js';
export type { LoginLookup, LoginNow, PersonLookup, PersonNow } from './person-now.js';
export { type AuthorizationNeed, type HandlerNeed, identityOf, type NeedRequest, type OwnNeed, type PolicyNeed, stillAuthenticated } from './request.js';
