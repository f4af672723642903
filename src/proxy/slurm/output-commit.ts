// A Slurm job whose every task completed becomes its output dataset, committed by the gateway with
// the engine's own rules (src/catalog's commitOutput: the manifest with owner, labels and
// produced_by, one rename, an overwrite only of the owner's dataset). The tasks wrote
// out/part-<input partition>.<format> and done/part-<input partition>.json as the person; each is
// read through openOwned (no link followed, a plain file of one link of the account) and COPIED into
// a folder of the gateway's inside data.root, numbered 0..n-1 in the job's partition order.
import { constants } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
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
    const rows: number[] = [];
    for (const [i, p] of o.partitions.entries()) {
      rows.push(await doneRows(o, p));
      await copyOut(o, partitionFile(p, o.format), join(folder, partitionFile(i, o.format)));
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

/** Copies one output file out of the person's folder into the gateway's, by descriptor. */
async function copyOut(o: SlurmOutput, name: string, to: string): Promise<void> {
  const from = await openOwned(o.jobDir, ['out', name], o.uid);
  if (from === null) throw new GatehouseError('invalid_request', `${name} is missing from the job's output`);
  try {
    // 0644 like every committed partition: the engine's sandboxed jobs read it as their own uid.
    const target = await open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      await target.chmod(0o644); // whatever the gateway's umask
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const { bytesRead } = await from.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        await target.write(buffer, 0, bytesRead);
      }
      await target.sync();
    } finally {
      await target.close();
    }
  } finally {
    await from.close();
  }
}
