// src/auth's face. Identity, tokens and user certificates arrive with the identity issue;
// for now the room owns the CA and the service certificates.
export { type BootstrapReport, caCertificateFile, type CertificateOptions, ensureCertificates, ensureServiceCertificates } from './certificate-authority.js';
export { type AuthMethod, type Credential, type Identity, type LoginSubject } from './identity.js';
export { createIdentityService, type IdentityService } from './service.js';
export { createKeyAndCsr } from './certificate-request.js';
export { startDevIdp } from './dev-idp/index.js';
export { createLdapLogin, type LdapLogin, type LdapSettings } from './ldap.js';
export { readDevUsers } from './dev-idp/index.js';
