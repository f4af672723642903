// A Slurm job whose every task completed becomes its output dataset, committed by the gateway with
// the engine's own rules (src/catalog's commitOutput: the manifest with owner, labels and
// produced_by, one rename, an overwrite only of the owner's dataset). The tasks wrote
// out/part-<input partition>.<format> and done/part-<input partition>.json as the person; each is
// read through openOwned (no link followed, a plain file of one link of the account) and COPIED into
// a folder of the gateway's inside data.root, numbered 0..n-1 in the job's partition order.
//
// What the person wrote is copied onto data.root's file system, which holds everyone's datasets: a
// sparse file (`truncate -s 8T`, free to make) is copied with its holes left as holes, and an
// output is refused before any copy when it is larger than that file system, or while copying once
// its data would leave the file system without its last 1%.
import { constants } from 'node:fs';
import { mkdir, open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { commitOutput, type DatasetManifest, partitionFile } from '../../catalog/index.js';
import type { DatasetFormat, JobSpec } from '../../wire/index.js';
import { GatehouseError } from '../../wire/index.js';
import { openOwned, readOwned } from './job-folder.js';

/** The gateway's own folder inside data.root for outputs on their way in (a name no dataset can have). */
export const SLURM_STAGING = '.slurm-staging';
const DONE_MAX_BYTES = 4096;

export interface SlurmOutput {
  jobId: string;
  jobDir: string;
  /** The account's uid: every file read must be its. */
  uid: number;
  dataRoot: string;
  spec: JobSpec;
  user: string;
  partitions: readonly number[];
  format: DatasetFormat;
  inputColumns: string[];
  labels: string[];
  replaces?: { owner: string | null };
}

export interface CommittedOutput {
  manifest: DatasetManifest;
  rows: number;
  bytes: number;
}

/** Commits the output; rejects with why it could not be (the job then failed). */
export async function commitSlurmOutput(o: SlurmOutput): Promise<CommittedOutput> {
  const staging = join(o.dataRoot, SLURM_STAGING, o.jobId);
  await mkdir(join(o.dataRoot, SLURM_STAGING), { recursive: true, mode: 0o700 });
  await rm(staging, { recursive: true, force: true });
  const folder = join(staging, 'output');
  await mkdir(folder, { recursive: true, mode: 0o700 });
  try {
    const space = await spaceFor(o);
    const rows: number[] = [];
    for (const [i, p] of o.partitions.entries()) {
      rows.push(await doneRows(o, p));
      await copyOut(o, partitionFile(p, o.format), join(folder, partitionFile(i, o.format)), space);
    }
    const manifest = await commitOutput(o.dataRoot, o.spec.output, {
      folder,
      format: o.format,
      rows,
      fallbackColumns: o.inputColumns,
      owner: o.user,
      labels: o.labels,
      producedBy: o.jobId,
      overwrite: o.spec.mode === 'overwrite',
      ...(o.replaces ? { replaces: o.replaces } : {}),
      trash: join(staging, 'replaced'),
      sealed: true,
    });
    return { manifest, rows: rows.reduce((a, b) => a + b, 0), bytes: manifest.partitions.reduce((a, p) => a + p.bytes, 0) };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** done/part-N.json: the rows the task counted (written last, so the output is whole). */
async function doneRows(o: SlurmOutput, partition: number): Promise<number> {
  const name = `part-${String(partition).padStart(5, '0')}.json`;
  const text = await readOwned(o.jobDir, ['done', name], o.uid, DONE_MAX_BYTES);
  if (text === null) throw new GatehouseError('invalid_request', `partition ${partition} ended without its done record`);
  let value: unknown;
  try {
    value = JSON.parse(text.toString('utf8'));
  } catch {
    throw new GatehouseError('invalid_request', `partition ${partition}'s done record is not JSON`);
  }
  const { partition: p, rows } = (value ?? {}) as { partition?: unknown; rows?: unknown };
  if (p !== partition || typeof rows !== 'number' || !Number.isSafeInteger(rows) || rows < 0) throw new GatehouseError('invalid_request', `partition ${partition}'s done record does not name it with a row count`);
  return rows;
}

/** What the copies may still take of data.root's file system: bytes as listed (`size`), and of data (`data`). */
interface Space {
  size: number;
  data: number;
}

const RESERVE_MIN_BYTES = 64 * 1024 * 1024;

/** Sizes every output file first: one larger than the whole file system is refused before any copy. */
async function spaceFor(o: SlurmOutput): Promise<Space> {
  const fs = await statfs(o.dataRoot);
  const whole = fs.blocks * fs.bsize;
  const reserve = Math.max(RESERVE_MIN_BYTES, Math.floor(whole / 100));
  let total = 0;
  for (const p of o.partitions) {
    const name = partitionFile(p, o.format);
    const fh = await openOwned(o.jobDir, ['out', name], o.uid);
    if (fh === null) throw new GatehouseError('invalid_request', `${name} is missing from the job's output`);
    try {
      total += (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  }
  if (total > whole) throw tooLarge(total, whole);
  return { size: whole, data: Math.max(0, fs.bavail * fs.bsize - reserve) };
}

function tooLarge(bytes: number, whole: number): GatehouseError {
  return new GatehouseError('invalid_request', `the output (${bytes} bytes) is larger than data.root's whole file system (${whole} bytes); it is not copied`);
}

/** Copy granularity for holes: a block of zeros is skipped, not written. */
const HOLE_BYTES = 64 * 1024;
const ZEROS = Buffer.alloc(HOLE_BYTES);

/**
 * Copies one output file out of the person's folder into the gateway's, by descriptor: as many bytes
 * as it had when opened, blocks of zeros left as holes, within what `space` still allows.
 */
async function copyOut(o: SlurmOutput, name: string, to: string, space: Space): Promise<void> {
  const from = await openOwned(o.jobDir, ['out', name], o.uid);
  if (from === null) throw new GatehouseError('invalid_request', `${name} is missing from the job's output`);
  try {
    const size = (await from.stat()).size;
    if (size > space.size) throw tooLarge(size, space.size);
    space.size -= size;
    // 0644 like every committed partition: the engine's sandboxed jobs read it as their own uid.
    const target = await open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      await target.chmod(0o644); // whatever the gateway's umask
      const buffer = Buffer.allocUnsafe(16 * HOLE_BYTES);
      let at = 0;
      while (at < size) {
        const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, size - at), at);
        if (bytesRead === 0) break;
        for (let start = 0; start < bytesRead; start += HOLE_BYTES) {
          const block = buffer.subarray(start, Math.min(start + HOLE_BYTES, bytesRead));
          if (block.equals(ZEROS.subarray(0, block.length))) continue;
          if (block.length > space.data) throw new GatehouseError('invalid_request', `the output does not fit in what data.root's file system has free (it keeps 1% of it, at least ${RESERVE_MIN_BYTES} bytes, free); it is not committed`);
          space.data -= block.length;
          await target.write(block, 0, block.length, at + start);
        }
        at += bytesRead;
      }
      await target.truncate(at); // the trailing hole, if any
      await target.sync();
    } finally {
      await target.close();
    }
  } finally {
    await from.close();
  }
}
