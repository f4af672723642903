// src/auth's face: the CA and service certificates, the identity service the gateway installs
// (logins, tokens, user certificates, stage 1), the CLI's key + CSR, and the development provider.
export { type BootstrapReport, caCertificateFile, type CertificateOptions, ensureCertificates, ensureServiceCertificates } from './certificate-authority.js';
export { createIdentityService, type IdentityService } from './service.js';
export { createKeyAndCsr } from './certificate-request.js';
export { prepareDevIdpSigningKey, startDevIdp } from './dev-idp/index.js';
export { createLdapLogin, type LdapLogin, type LdapSettings } from './ldap.js';
export { readDevUsers } from './dev-idp/index.js';
