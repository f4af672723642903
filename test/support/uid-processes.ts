// The live (not zombie) processes of one uid, read from /proc (one whose first thread ended counts while another runs): what a job uid still runs after its
// engine, launcher or job is gone. For the suites that check nothing of a job outlives it.
import { readdir, readFile } from 'node:fs/promises';

export interface UidProcess {
  pid: number;
  name: string;
  ppid: number;
}

export async function liveProcesses(uid: number): Promise<UidProcess[]> {
  const found: UidProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      if (/^Uid:\s*(\d+)/m.exec(status)?.[1] !== String(uid)) continue;
      // A first thread shown Z with another thread running is a live process, not a zombie (uid-leftovers.ts).
      if (/^State:\s*[ZX]/m.test(status) && !(await runsOn(entry))) continue;
      found.push({ pid: Number(entry), name: /^Name:\s*(.*)$/m.exec(status)?.[1] ?? '', ppid: Number(/^PPid:\s*(\d+)/m.exec(status)?.[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Whether any thread of `pid` still runs. */
async function runsOn(pid: string): Promise<boolean> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tids) {
    const status = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8').catch(() => null);
    if (status !== null && !/^State:\s*[ZX]/m.test(status)) return true;
  }
  return false;
}

/** One line a process, for a failure's message. */
export const describeProcess = (p: UidProcess): string => `${p.pid} ${p.name} ppid ${p.ppid}`;
