// What the identity routes need from the login methods and the certificate signer: the types of
// the implementations themselves, plus the CRL, so a route file depends on one place.
import type { RevokedCertificate } from './crl.js';
import type { UserCertificateSigner } from './user-certificates.js';

export type { LdapLogin } from './ldap.js';
export type { OidcClient as OidcLogin } from './oidc.js';

export interface CertificateSigner {
  issue: UserCertificateSigner['issue'];
  crl(revoked: RevokedCertificate[], crlNumber: number, thisUpdate: Date, nextUpdate: Date): { der: Buffer; pem: string };
}
