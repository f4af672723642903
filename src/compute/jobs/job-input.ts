// A job's input dataset as the engine reads it, at submission and again after a restart: opened
// from the data root (its failures worded as the request's), and reduced to what a run needs.
import { join } from 'node:path';
import { DatasetError, openDataset, openRootSync } from '../../catalog/index.js';
import { GatehouseError } from '../../wire/index.js';
import type { InputShape } from './job-run.js';

export type InputDataset = Awaited<ReturnType<typeof openDataset>>;

export async function openInput(dataRoot: string, name: string): Promise<InputDataset> {
  try {
    // Synchronous reads: the engine's own disk, and a submission's check (the held handover's prepare) waits on them.
    return await openDataset(openRootSync(dataRoot), name, { sync: true });
  } catch (err) {
    if (err instanceof DatasetError) {
      throw new GatehouseError(err.code === 'not_found' ? 'not_found' : 'invalid_request', `input ${name}: ${err.message}`, { field: 'body.input' });
    }
    throw err;
  }
}

export function shape(input: InputDataset): InputShape {
  return {
    format: input.manifest.format,
    columns: input.manifest.columns,
    labels: input.manifest.labels,
    files: input.manifest.partitions.map((p) => join(input.dir, p.file)),
  };
}
