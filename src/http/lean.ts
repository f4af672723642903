// The HTTP room's second face, for the command line: URL helpers without fastify.
export { httpsUrl, isLoopbackHost } from './url.js';
