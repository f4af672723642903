// The engine's half of the dataset catalog: writing datasets and committing a job's output. Reading
// (manifests, datasets, the listing) is the shared kernel's, src/catalog.
export { type NewDataset, type PartitionData, writeDataset } from './write.js';
export { commitOutput, type ExistingDataset, type FinishedOutput, OutputExistsError, readExisting, replaceRefusal, ReplaceRefusedError, type ReplaceRight } from './commit.js';
