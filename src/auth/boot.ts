// src/auth's third face, for `gatehouse up` and the processes it starts other than the gateway: the CA
// and the service certificates, the development provider's demo users, and the provider itself loaded
// on demand. Without the identity service index.ts brings (its store, LDAP and OIDC clients, token
// signing: about 400 modules only the gateway runs), so `up` and the engine load in a third of the time.
export { type BootstrapReport, caCertificateFile, ensureServiceCertificates } from './certificate-authority.js';
export { type DevUser, readDevUsers } from './dev-idp/users.js';

/** The development provider's code (fastify, its routes; oidc-provider when it starts), for its own process only. */
export const devIdpModule = () => import('./dev-idp/index.js');
