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
export {
  DATASET_FORMATS,
  DATASET_NAME_MAX_LENGTH,
  DATASET_NAME_PATTERN,
  type DatasetFormat,
  type DatasetInfo,
  DatasetInfoSchema,
  type DatasetList,
  DatasetListSchema,
  datasetNameProblem,
  isDatasetName,
} from './datasets.js';
