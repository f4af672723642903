// The data root: the manifest format, the rule that keeps every path inside the root, one dataset
// checked against its manifest, the listing, and the commit of a finished output into a dataset.
// A kernel both sides use: the engine reads its inputs and commits its jobs' outputs through it,
// and the gateway's Slurm backend, which shares the data root, lists datasets and commits its
// jobs' outputs with the same rules. Writing datasets from rows stays the engine's (src/compute/catalog).
export { DatasetError, type DatasetErrorCode, UnreadableError } from './errors.js';
export { type Catalog, type CatalogProblem, listDatasets } from './list.js';
export { type DatasetManifest, DatasetManifestSchema, MANIFEST_FILE, MANIFEST_MAX_BYTES, PARTITION_PREFIX, parseManifest, partitionFile } from './manifest.js';
export { exists, existsSync, loadDataset, type OpenDataset, openDataset, readDataset } from './read.js';
export { type DataRoot, openRoot, openRootSync, realInside, realOwn } from './root.js';
export { commitOutput, type ExistingDataset, type FinishedOutput, OutputExistsError, readExisting, replaceRefusal, ReplaceRefusedError, type ReplaceRight } from './commit.js';
export { DatasetReadSchema, type EngineLinks, type OpenedPartition, openPartition, type ReadableDataset, readableDataset } from './open-partition.js';
export { REMOVING_PREFIX, removeDataset } from './remove.js';
export { sweepRemovals } from './sweep-removals.js';
export { CsvCounter, csvFields, HEADER_MAX_BYTES } from './csv.js';
