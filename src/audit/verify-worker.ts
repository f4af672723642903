// The verify thread: its own read-only connection, one report back.
import { parentPort, workerData } from 'node:worker_threads';
import { openAuditDb } from './schema.js';
import { keysOf, type VerifyJob } from './verify-thread.js';
import { verifyTrail } from './verify.js';

const job = workerData as VerifyJob;
try {
  const db = openAuditDb(job.dir, { readonly: true });
  try {
    parentPort!.postMessage({ report: verifyTrail(db, keysOf(job), { liveHead: job.liveHead, ...(job.archiveDir ? { archiveDir: job.archiveDir } : {}), ...(job.witnessFile ? { witnessFile: job.witnessFile } : {}) }) });
  } finally {
    db.close();
  }
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
