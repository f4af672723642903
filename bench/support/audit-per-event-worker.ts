// The baseline store's writer thread: the trail's own TrailWriter, but each event in its own
// transaction (one fsync per event), in arrival order, as a store without group commit writes.
import { parentPort, workerData } from 'node:worker_threads';
import { auditKeyFromPem } from '../../src/audit/signing-key.js';
import { type PendingRow, TrailWriter } from '../../src/audit/writer.js';

const { dir, keyPem } = workerData as { dir: string; keyPem: string };
const port = parentPort!;
const writer = TrailWriter.open(dir, auditKeyFromPem(keyPem));

port.on('message', (m: { n: number; row: PendingRow } | { close: true }) => {
  if ('close' in m) {
    writer.index(true); // the tail into the lookup tables, as the trail's writer thread does at close
    writer.close();
    port.postMessage({ closed: true });
    port.close();
    return;
  }
  try {
    const appended = writer.append([m.row]);
    port.postMessage({ n: m.n, id: appended.firstId });
    writer.index(); // the lookup tables in batches, between commits, as the trail's writer thread does

  } catch (err) {
    port.postMessage({ n: m.n, error: (err as Error).message });
  }
});
port.postMessage({ ready: true });
