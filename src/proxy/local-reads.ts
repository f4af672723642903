// Reads for a backend whose data root this host sees (Slurm: the gateway shares data.root with the
// nodes): the same checked opens the engine serves its reads with (src/catalog/open-partition.ts),
// streamed from the descriptor that was checked.
import type { Readable } from 'node:stream';
import { DatasetError, openPartition, type ReadableDataset, readableDataset } from '../catalog/index.js';
import { GatehouseError } from '../wire/index.js';

export interface LocalReads {
  readDataset(name: string): Promise<ReadableDataset | null>;
  readPartition(name: string, n: number, etag: string, start: number, end: number): Promise<Readable>;
}

export function localReads(dataRoot: string, log?: { warn(o: object, m: string): void }): LocalReads {
  const problem = (err: DatasetError) => {
    if (err.code !== 'not_found' && err.code !== 'invalid_name') log?.warn({ path: err.path, problem: err.message }, 'dataset not served');
  };
  return {
    async readDataset(name) {
      try {
        return await readableDataset(dataRoot, name);
      } catch (err) {
        if (!(err instanceof DatasetError)) throw err;
        problem(err);
        return null;
      }
    },
    async readPartition(name, n, etag, start, end) {
      try {
        const opened = await openPartition(dataRoot, name, n, etag);
        if (end < start || end >= opened.size) {
          await opened.file.close();
          throw new GatehouseError('invalid_request', `bytes ${start}-${end} are not inside partition ${n} of ${name}`);
        }
        return opened.file.createReadStream({ start, end, highWaterMark: 256 * 1024 });
      } catch (err) {
        if (!(err instanceof DatasetError)) throw err;
        if (err.code === 'changed') throw new GatehouseError('conflict', err.message);
        problem(err);
        throw new GatehouseError('not_found', `no dataset ${name}`);
      }
    },
  };
}
