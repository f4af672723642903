// src/proxy's face. The job routes and the ComputeBackend interface arrive with the job-path issue.
export { type EngineClient, engineClient } from './engine-client.js';
export { type DatasetRouteOptions, installDatasetRoutes } from './datasets-route.js';
