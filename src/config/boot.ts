// The configuration room's third face, for `gatehouse up` before it loads the configuration: a quick
// read of what it needs to fork its children (up-settings.ts). Kept out of lean.ts, which every
// client verb loads.
export { type UpSettings, upSettings } from './up-settings.js';
