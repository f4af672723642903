// What the identity routes need from the login methods and the certificate signer: the types of
// the implementations themselves (the signer issues certificates and the CRL), so a route file
// depends on one place.
import type { UserCertificateSigner } from './user-certificates.js';

export type { LdapLogin } from './ldap.js';
export type { OidcClient as OidcLogin } from './oidc.js';

export type CertificateSigner = UserCertificateSigner;
