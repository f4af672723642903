// src/wire: what crosses the gateway↔engine boundary. Imported by both sides; imports nothing of ours.
export { ERROR_STATUS, type ErrorBody, type ErrorCode, GatehouseError } from './errors.js';
export {
  CERT_FILES,
  type CertName,
  GATEWAY_CLIENT_SUBJECT,
  readCertificate,
  readPrivateKey,
  readTlsMaterial,
  TlsFileError,
  type TlsMaterial,
} from './tls.js';
export { type HealthStatus } from './health.js';
