// src/http: server plumbing shared by the gateway and the engine processes. Imports only src/wire.
export { loggerOptions, REDACTED_PATHS, scrubUrl } from './logging.js';
export { bodyValidator, installPlumbing, serverOptions } from './plumbing.js';
export { httpsUrl, isLoopbackHost } from './url.js';
export { EmptyBody, NoQuery } from './schemas.js';
