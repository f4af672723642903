// The wire room's second face, for the command line: the job vocabulary and the TLS file error,
// without the schema library the wire formats are written in.
export { FINAL_STATES, JOB_STATES, type JobState, RUNTIMES, type Runtime } from './job-states.js';
export { CERT_FILES, TlsFileError } from './tls.js';
