// Messages between the gateway's event loop and the trail's writer thread.
import type { Checkpoint } from './checkpoint.js';
import type { ArchiveResult } from './retention.js';
import type { Head, PendingRow } from './writer.js';

export interface WriterData {
  dir: string;
  keyPem: string;
  /** Every audit key a checkpoint may be signed by (current and retired): kid, SPKI PEM. */
  knownKeys: [kid: string, spkiPem: string][];
  checkpointMs: number;
  witnessFile?: string;
  archiveDir?: string;
  /** GATEHOUSE_AUDIT_WITNESS_RESET: the trail's newest checkpoint number, to start the witness again from it. */
  witnessReset?: number;
}

export type ToWriter =
  | { type: 'append'; batch: number; rows: PendingRow[] }
  | { type: 'archive'; before: number; archiveDir: string; maxEvents: number }
  | { type: 'close' };

export type FromWriter =
  | { type: 'ready'; head: Head; notices?: string[] }
  | { type: 'open_failed'; error: string }
  | { type: 'ack'; batch: number; firstId: number; prevHash: string; hashes: string[] }
  | { type: 'fail'; batch: number; error: string }
  | { type: 'broken'; error: string }
  | { type: 'checkpoint'; checkpoint: Checkpoint }
  | { type: 'archived'; result: ArchiveResult | null; error?: string }
  | { type: 'closed' };
