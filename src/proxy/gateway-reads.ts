// Who reads a partition a person downloads from the bundled engine (data.gateway_reads). Streaming it
// from the engine costs four TLS passes over every byte (engine encrypts, gateway decrypts, gateway
// encrypts, client decrypts); when the gateway shares the engine's disk it can open the file itself,
// as it already does for Slurm, and the download costs two, like a fetch from the engine directly.
// The local open is the engine's own (src/catalog/open-partition.ts: one name at a time, O_NOFOLLOW,
// a plain file of one link, the size the manifest says, read from the descriptor that was checked).
// Whatever the gateway cannot read itself is asked of the engine, which stays the authority on what
// a dataset is: a partition a running job holds as input has a second, engine-made link the gateway
// cannot tell from a planted one, and a root engine's 0700 dataset folders are closed to the gateway.
// The engine refuses a planted link as the local open does, so both answer "no dataset" alike.
import { constants, accessSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { DatasetError, type OpenedPartition, openPartition, readableDataset, UnreadableError } from '../catalog/index.js';
import { ConfigError } from '../config/index.js';
import { GatehouseError } from '../wire/index.js';
import type { ComputeBackend } from './backend.js';

export type GatewayReadsMode = 'auto' | 'local' | 'engine';

/** Bytes per read of a local partition (a TLS record is 16 KiB; fewer, larger reads cost less per byte). */
export const READ_CHUNK = 256 * 1024;

type Reads = Required<Pick<ComputeBackend, 'readDataset' | 'readPartition'>>;

/** Loopback: the engine is on this machine, so the data.root in this configuration is its own. */
export const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/** Whether this process may list and open what is in `dataRoot` (the engine's user owns it). */
function canRead(dataRoot: string): boolean {
  try {
    if (!statSync(dataRoot).isDirectory()) return false;
    accessSync(dataRoot, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Which reads data.gateway_reads comes to here: `local` (the gateway's own open first) or `engine`.
 * Auto is local when the engine is on this machine; whether the gateway may read data.root is then
 * found out per read (the engine may create it after the gateway starts), with the engine behind.
 */
export function resolveGatewayReads(mode: GatewayReadsMode, engineHost: string, dataRoot: string): 'local' | 'engine' {
  if (mode === 'engine') return 'engine';
  if (mode === 'local') {
    if (!canRead(dataRoot)) throw new ConfigError(`data.gateway_reads is local, but the gateway cannot read data.root (${dataRoot}); give its user read access, or set data.gateway_reads: engine`);
    return 'local';
  }
  return isLoopback(engineHost) ? 'local' : 'engine';
}

/**
 * Whether a refusal of the gateway's own open is the engine's to decide: a partition of more than
 * one link (a running job's input has one the engine made, which only the engine can count), a
 * name this process may not open (the engine's user may), or a root it cannot open at all. What
 * the engine would refuse the same way (absent, a link on the way, an invalid name, another
 * version) is answered here, so a stopped engine makes no missing dataset look unlike a refused one.
 */
const engineDecides = (err: unknown) => !(err instanceof DatasetError) || err instanceof UnreadableError || err.code === 'invalid_manifest';

/** The engine's reads, with the gateway's own open in front of them when `local`. */
export function gatewayReads(mode: 'local' | 'engine', dataRoot: string, engine: Reads): Reads {
  if (mode === 'engine') return engine;
  return {
    readDataset: async (name) => {
      try {
        return await readableDataset(dataRoot, name);
      } catch (err) {
        if (engineDecides(err)) return engine.readDataset(name);
        return null;
      }
    },
    readPartition: async (name, n, etag, start, end, o): Promise<Readable> => {
      let opened: OpenedPartition;
      try {
        opened = await openPartition(dataRoot, name, n, etag);
      } catch (err) {
        if (engineDecides(err)) return engine.readPartition(name, n, etag, start, end, o);
        if (err instanceof DatasetError && err.code === 'changed') throw new GatehouseError('conflict', err.message);
        throw new GatehouseError('not_found', `no dataset ${name}`);
      }
      if (end < start || end >= opened.size) {
        await opened.file.close();
        throw new GatehouseError('invalid_request', `bytes ${start}-${end} are not inside partition ${n} of ${name}`);
      }
      // Read from the descriptor that was checked; the stream closes it.
      return opened.file.createReadStream({ start, end, highWaterMark: READ_CHUNK });
    },
  };
}
