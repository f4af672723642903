// Runs verifyTrail on a thread of its own: a trail of millions of events takes a while to hash,
// and the gateway keeps answering meanwhile.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { VerifyReport } from './verify.js';

export interface VerifyJob {
  dir: string;
  keys: [kid: string, spkiPem: string][];
  liveHead: { id: number; hash: string } | null;
  archiveDir?: string | undefined;
  witnessFile?: string | undefined;
}

export function verifyInWorker(
  file: string,
  dir: string,
  keys: ReadonlyMap<string, KeyObject>,
  liveHead: { id: number; hash: string } | null,
  where: { archiveDir?: string | undefined; witnessFile?: string | undefined } = {},
): Promise<VerifyReport> {
  const job: VerifyJob = { dir, keys: [...keys].map(([kid, key]) => [kid, key.export({ format: 'pem', type: 'spki' }).toString()]), liveHead, ...where };
  return new Promise((resolve, reject) => {
    const worker = new Worker(file, { workerData: job, name: 'audit-verify' });
    worker.once('message', (m: { report?: VerifyReport; error?: string }) => (m.report ? resolve(m.report) : reject(new Error(m.error ?? 'verify failed'))));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the verify thread exited (${code})`)));
  });
}

export function keysOf(job: VerifyJob): Map<string, KeyObject> {
  return new Map(job.keys.map(([kid, pem]) => [kid, createPublicKey(pem)]));
}
