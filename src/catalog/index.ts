// The data root, read-only: the manifest format, the rule that keeps every path inside the root,
// one dataset checked against its manifest, and the listing. A kernel both sides may use: the engine
// reads its inputs and its catalog through it, and a gateway backend that shares the data root
// (Slurm) lists its datasets with it. Writing and committing stay the engine's (src/compute/catalog).
export { DatasetError, type DatasetErrorCode } from './errors.js';
export { type Catalog, type CatalogProblem, listDatasets } from './list.js';
export { type DatasetManifest, DatasetManifestSchema, MANIFEST_FILE, MANIFEST_MAX_BYTES, PARTITION_PREFIX, parseManifest, partitionFile } from './manifest.js';
export { exists, loadDataset, type OpenDataset, openDataset, readDataset } from './read.js';
export { type DataRoot, openRoot, realInside, realOwn } from './root.js';
