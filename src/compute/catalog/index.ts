// The engine's dataset catalog: reading, listing and writing dataset folders under the data root.
export { DatasetError, type DatasetErrorCode } from './errors.js';
export { type Catalog, type CatalogProblem, listDatasets } from './list.js';
export { type DatasetManifest, DatasetManifestSchema, MANIFEST_FILE, parseManifest, partitionFile } from './manifest.js';
export { readDataset } from './read.js';
export { type NewDataset, type PartitionData, writeDataset } from './write.js';
export { commitOutput, type ExistingDataset, type FinishedOutput, OutputExistsError, readExisting, replaceRefusal, ReplaceRefusedError, type ReplaceRight } from './commit.js';
export { exists, loadDataset, type OpenDataset, openDataset } from './read.js';
export { openRoot } from './root.js';
