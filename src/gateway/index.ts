// The gateway process: composition of the rooms into one HTTPS service.
export { buildGateway, type GatewayDeps } from './app.js';
export { type RunningService, startGateway } from './start.js';
