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
export type { HealthStatus } from './health.js';
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
export {
  DEFAULT_ENTRYPOINT,
  DEFAULT_MAX_ATTEMPTS,
  FINAL_STATES,
  JOB_STATES,
  type JobList,
  JobListSchema,
  type JobSpec,
  jobSpecHash,
  jobSpecProblem,
  JobSpecSchema,
  type JobState,
  type JobStatus,
  JobStatusSchema,
  type Resources,
  ResourcesSchema,
  type Runtime,
  RUNTIMES,
  SOURCE_MAX_BYTES,
} from './jobs.js';
export {
  type AdmissionClaims,
  signAdmissionTicket,
  TICKET_ALGORITHM,
  TICKET_DEFAULT_LIFETIME_S,
  TICKET_HEADER,
  TICKET_MAX_LIFETIME_S,
  TicketError,
  ticketExpired,
  type TicketProblem,
  verifyAdmissionTicket,
} from './admission-ticket.js';
export { JOB_EVENTS_PING_MS, type JobEventLine, JobEventLineSchema, type JobEventsQuery, JobEventsQuerySchema } from './job-events.js';
export {
  answerFrame,
  CHANNEL_TICKET_MAX_BYTES,
  FrameError,
  FrameReader,
  JOB_CHANNEL_PATH,
  JOB_CHANNEL_PROTOCOL,
  type HeldRequest,
  heldFrame,
  readAnswer,
  readRequest,
  type RequestKind,
  type Submission,
  submissionFrame,
} from './job-channel.js';
