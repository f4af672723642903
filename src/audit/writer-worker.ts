// The writer thread. Batches that arrive while a commit is on disk wait in the port; the next
// commit takes them all at once, so many requests share one transaction and one fsync, and the
// gateway's event loop never blocks on the disk. After a failed write the database is closed and
// opened afresh with the next batch, so a store that comes back is used again.
import { createPublicKey } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { archiveBefore } from './retention.js';
import { auditKeyFromPem } from './signing-key.js';
import { type PendingRow, TrailWriter } from './writer.js';
import type { FromWriter, ToWriter, WriterData } from './writer-protocol.js';

const data = workerData as WriterData;
const port = parentPort!;
const key = auditKeyFromPem(data.keyPem);
for (const [kid, pem] of data.knownKeys) if (!key.known.has(kid)) key.known.set(kid, createPublicKey(pem));
const post = (m: FromWriter) => port.postMessage(m);

let writer: TrailWriter | null = null;
let queue: { batch: number; rows: PendingRow[] }[] = [];
let scheduled = false;
let closing = false;

const message = (err: unknown) => {
  const e = err as NodeJS.ErrnoException & { code?: string };
  return e.code ? `${e.code}: ${e.message}` : String(e?.message ?? err);
};

function open(): TrailWriter {
  writer ??= TrailWriter.open(data.dir, key, {
    ...(data.witnessFile ? { witnessFile: data.witnessFile } : {}),
    ...(data.archiveDir ? { archiveDir: data.archiveDir } : {}),
    ...(data.witnessReset !== undefined ? { witnessReset: data.witnessReset } : {}),
  });
  return writer;
}

function drop(): void {
  try {
    writer?.close();
  } catch {
    // already unusable
  }
  writer = null;
}

function commit(): void {
  scheduled = false;
  const taken = queue;
  queue = [];
  if (taken.length === 0) return;
  try {
    const w = open();
    const rows = taken.length === 1 ? taken[0]!.rows : taken.flatMap((t) => t.rows);
    const appended = w.append(rows);
    let offset = 0;
    for (const t of taken) {
      const n = t.rows.length;
      const hashes = appended.hashes.slice(offset, offset + n);
      const prevHash = offset === 0 ? appended.prevHash : appended.hashes[offset - 1]!;
      post({ type: 'ack', batch: t.batch, firstId: appended.firstId + offset, prevHash, hashes });
      offset += n;
    }
  } catch (err) {
    drop();
    for (const t of taken) post({ type: 'fail', batch: t.batch, error: message(err) });
    return;
  }
  lookups(false);
}

/**
 * The lookup tables catch up between commits (after the acks went out), a step of the index pass
 * at a time (lookup-index.ts: IndexPass), each step followed by whatever commits arrived meanwhile,
 * so a pass never holds the commits for long; `all` (close, archive) indexes the whole tail at once.
 * A failure here loses no event (queries scan the un-indexed tail), so it is reported and the
 * writer opened afresh.
 */
function lookups(all: boolean, quiet = false): void {
  if (!writer) return;
  try {
    if (all) writer.index(true);
    else if (writer.indexStep(quiet) && !stepQueued) {
      stepQueued = true;
      setImmediate(() => {
        stepQueued = false;
        lookups(false);
      });
    }
  } catch (err) {
    drop();
    post({ type: 'broken', error: `indexing the trail's lookup tables: ${message(err)}` });
  }
}
let stepQueued = false;

function checkpoint(final = false): void {
  // A quiet trail's tail is indexed within one checkpoint interval (in steps, as commits may come).
  lookups(final, true);
  if (!writer) return;
  try {
    const cp = writer.checkpoint();
    if (cp) post({ type: 'checkpoint', checkpoint: cp });
  } catch (err) {
    drop();
    post({ type: 'broken', error: message(err) });
  }
}

const timer = setInterval(() => checkpoint(), data.checkpointMs);

port.on('message', (m: ToWriter) => {
  if (m.type === 'append') {
    queue.push({ batch: m.batch, rows: m.rows });
    if (!scheduled) {
      scheduled = true;
      setImmediate(commit);
    }
  } else if (m.type === 'archive') {
    commit(); // earlier events first
    lookups(true); // no pass left halfway to copy the lookup rows of events the archive removes
    try {
      const w = open();
      const result = archiveBefore(w, m.before, m.archiveDir, m.maxEvents);
      post({ type: 'archived', result });
    } catch (err) {
      drop();
      post({ type: 'archived', result: null, error: message(err) });
    }
  } else if (m.type === 'close' && !closing) {
    closing = true;
    commit();
    checkpoint(true); // the tail indexed and signed before the gateway stops
    clearInterval(timer);
    drop();
    post({ type: 'closed' });
    port.close();
  }
});

try {
  const w = open();
  const notices: string[] = [];
  if (w.witnessResetBy) notices.push(`audit: the witness (${w.witnessResetBy.why === 'behind' ? `cut back to checkpoint ${w.witnessResetBy.had}` : w.witnessResetBy.why}) was started again from checkpoint ${w.witnessResetBy.at} by GATEHOUSE_AUDIT_WITNESS_RESET (recorded in the trail as audit.witness_reset)`);
  if (w.witnessAdopted) notices.push(`audit: the witness held checkpoint ${w.witnessAdopted.seq} (event #${w.witnessAdopted.event_id}) that the trail lacked (a stop between the two writes): taken into the trail`);
  post({ type: 'ready', head: w.head, notices });
} catch (err) {
  drop();
  post({ type: 'open_failed', error: message(err) });
}
