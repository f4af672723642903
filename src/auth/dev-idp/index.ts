// DEVELOPMENT ONLY: the development OIDC provider of `gatehouse up` and `gatehouse dev-idp`, with demo
// users from dev_idp.users_file. Its face: start it, and read its users (for printing the demo logins).
export { type DevIdp, startDevIdp } from './start.js';
export { CALLBACK_PATH, DEV_CLIENT_ID, prepareSigningKey as prepareDevIdpSigningKey } from './provider.js';
export { type DevUser, readDevUsers } from './users.js';
