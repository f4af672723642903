// The configuration room's second face, for the command line: what a client needs of this host's
// configuration without the full loader and its schema library (see local-gateway.ts).
export { ConfigError } from './errors.js';
export { type LocalGateway, localGateway } from './local-gateway.js';
