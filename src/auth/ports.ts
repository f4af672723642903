// What the identity routes need from the login methods and the certificate signer. The concrete
// implementations (LDAP, OIDC, the node-forge signer) are plugged in by createIdentityService.
import type { LoginSubject } from './identity.js';

export interface LdapLogin {
  login(username: string, password: string): Promise<LoginSubject>;
  close?(): Promise<void> | void;
}

export interface DeviceStart {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  interval: number;
  expires_in: number;
}

export interface BrowserLoginStart {
  url: string;
  state: string;
  nonce: string;
  codeVerifier: string;
}

export interface OidcLogin {
  startDevice(): Promise<DeviceStart>;
  pollDevice(deviceCode: string): Promise<LoginSubject>;
  beginBrowserLogin(redirectUri: string): Promise<BrowserLoginStart>;
  finishBrowserLogin(callbackUrl: URL, saved: { state: string; nonce: string; codeVerifier: string; redirectUri: string }): Promise<LoginSubject>;
}

export interface IssuedCertificate {
  certificate: string;
  serial: string;
  not_before: Date;
  not_after: Date;
  fingerprint: string;
}

export interface CertificateSigner {
  issue(request: { csrPem: string; subject: { user: string; groups?: string[] }; ttlSeconds: number }): IssuedCertificate | Promise<IssuedCertificate>;
  crl(revoked: { serial: string; revokedAt: Date }[], crlNumber: number, thisUpdate: Date, nextUpdate: Date): { der: Buffer; pem: string };
}
