// The engine's half of the dataset catalog: writing datasets. Reading and committing a job's output
// are the shared kernel's (src/catalog), re-exported here for the engine's own files.
export { type NewDataset, type PartitionData, writeDataset } from './write.js';
export { commitOutput, type ExistingDataset, type FinishedOutput, OutputExistsError, readExisting, replaceRefusal, ReplaceRefusedError, type ReplaceRight } from '../../catalog/index.js';
