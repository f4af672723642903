// src/auth's face. Identity, tokens and user certificates arrive with the identity issue;
// for now the room owns the CA and the service certificates.
export { type BootstrapReport, caCertificateFile, type CertificateOptions, ensureCertificates, ensureServiceCertificates } from './certificate-authority.js';
