// src/proxy's face: the ComputeBackend interface and the factory that builds the configured
// backends (the bundled engine the first), the list helpers the gateway uses (datasets, labels,
// readiness), the job API and its reconciler, and the dataset listing.
export type { BackendSubmission, ComputeBackend } from './backend.js';
export { backendReadiness, closeBackends, createBackends, datasetLabelsIn, type ListedDataset, listDatasets } from './backends.js';
export { BUNDLED, bundledBackend } from './bundled-backend.js';
export { type EngineClient, engineClient } from './engine-client.js';
export { type DatasetRouteOptions, installDatasetRoutes } from './datasets-route.js';
export { type DatasetReadOptions, installDatasetReadRoutes } from './dataset-read-route.js';
export { type DatasetDeleteOptions, installDatasetDeleteRoute } from './dataset-delete-route.js';
export { type DatasetUploadOptions, installDatasetUploadRoutes } from './dataset-upload-route.js';
export { type DatasetLookup, datasetLookup } from './dataset-lookup.js';
export { JobBook, type Logger } from './job-book.js';
export { countLiveJobs, JobRecords, LIVE_STATES } from './job-records.js';
export { installJobRoutes } from './job-routes.js';
export { JobService } from './job-service.js';
export { Reconciler } from './reconciler.js';
export { type JobPath, type JobPathOptions, openJobPath } from './job-path.js';
