// src/console's face: the web console (static ES modules and one stylesheet from console/ in the
// repository, served under /console/ with a strict Content-Security-Policy) and what it asks of the
// gateway that no other room answers: the caller's capabilities, decided on the serving policy.
export { CAPABILITIES, type Capability } from './capabilities.js';
export { installConsole, type ConsoleDeps } from './install.js';
