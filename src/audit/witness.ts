// The witness: every signed checkpoint also leaves the trail's file, appended (O_APPEND) as one
// JSON line to audit.witness_file, which belongs on another volume or host (a file only the
// gateway can append to, a log shipper's spool, a mount the gateway's host cannot rewrite). Each
// line has the shape of the gateway's own log line for a checkpoint ({"audit_checkpoint": {...}}),
// so a SIEM's copy of the gateway log serves as a witness too. Only the JWS in a line counts: the
// other fields are for people and are read back from the JWS.
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readlinkSync, readSync, realpathSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { type Checkpoint, readCheckpoint } from './checkpoint.js';

export interface WitnessEntry extends Checkpoint {
  /** Where in the witness file (1-based line). */
  line: number;
}

export interface WitnessRead {
  entries: WitnessEntry[];
  /** Lines that look like checkpoints but are not readable ones. */
  unreadable: { line: number; problem: string }[];
}

export function witnessLine(cp: Checkpoint): string {
  const { jws, ...shown } = cp;
  return `${JSON.stringify({ time: new Date().toISOString(), audit_checkpoint: { ...shown, jws } })}\n`;
}

function entryOf(text: string, line: number): WitnessEntry | { problem: string } | null {
  if (!text.includes('audit_checkpoint')) return null; // another line of a log
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  const jws = (value as { audit_checkpoint?: { jws?: unknown } } | null)?.audit_checkpoint?.jws;
  if (typeof jws !== 'string') return { problem: 'audit_checkpoint has no jws' };
  const read = readCheckpoint(jws);
  return 'problem' in read ? read : { ...read.checkpoint, line };
}

/** Every checkpoint in a witness file (or a gateway log), in file order, each JWS once. */
export function readWitness(file: string): WitnessRead {
  const out: WitnessRead = { entries: [], unreadable: [] };
  const seen = new Set<string>();
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    const e = entryOf(text, i + 1);
    if (e === null) return;
    if ('problem' in e) out.unreadable.push({ line: i + 1, problem: e.problem });
    else if (!seen.has(e.jws)) {
      seen.add(e.jws);
      out.entries.push(e);
    }
  });
  return out;
}

/** The last chained checkpoint in a witness file, read from its end (the file grows for ever). */
export function lastWitnessEntry(file: string): WitnessEntry | null {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let window = 64 * 1024;
    for (;;) {
      const start = Math.max(0, size - window);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf.toString('utf8').split('\n');
      if (start > 0) lines.shift(); // maybe cut
      for (let i = lines.length - 1; i >= 0; i--) {
        const e = entryOf(lines[i]!, 0);
        if (e && !('problem' in e) && e.seq !== undefined) return e;
      }
      if (start === 0) return null;
      window *= 4;
    }
  } finally {
    closeSync(fd);
  }
}

/** Appends checkpoints to the witness, each line one write(2) on an O_APPEND descriptor, then fsync. */
export class WitnessWriter {
  private fd: number;

  constructor(readonly file: string) {
    this.fd = openSync(file, 'a', 0o600);
    // A line cut by a crash mid-write stays as it is (verify shows it), but the next one starts afresh.
    const size = fstatSync(this.fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      const readFd = openSync(file, 'r');
      try {
        readSync(readFd, last, 0, 1, size - 1);
      } finally {
        closeSync(readFd);
      }
      if (last[0] !== 0x0a) writeSync(this.fd, '\n');
    }
  }

  static exists(file: string): boolean {
    return existsSync(file);
  }

  /** The seq of the last checkpoint whose append (write and fsync) completed. */
  appended: number | undefined;

  append(cps: readonly Checkpoint[]): void {
    if (cps.length === 0) return;
    for (const cp of cps) writeSync(this.fd, witnessLine(cp));
    fsyncSync(this.fd);
    this.appended = cps.at(-1)!.seq;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Where the witness goes: audit.witness_file, or state.dir/audit-witness.jsonl. Never inside
 * audit.dir: whoever can rewrite the trail's folder could rewrite its witness with it.
 */
export function witnessFileOf(configured: string, stateDir: string, auditDir: string): string {
  const file = resolve(configured || join(stateDir, 'audit-witness.jsonl'));
  // Compared as the kernel resolves them: a symlink (in the path or the file itself) into audit.dir is inside.
  const rel = relative(real(auditDir), real(file));
  if (rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))) {
    throw new Error(`audit.witness_file: ${file} is inside audit.dir (${resolve(auditDir)}); a witness must live where a rewrite of the trail's folder does not reach (another volume, an append-only mount)`);
  }
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(`audit.witness_file: cannot create the folder of ${file}: ${(err as Error).message}`);
  }
  return file;
}

/** `path` with every symlink resolved: the nearest existing ancestor's real path, joined with the rest. */
function real(path: string, depth = 0): string {
  let head = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...rest);
    } catch {
      let target: string | null = null;
      try {
        target = readlinkSync(head); // a dangling link: where a write would create the file
      } catch {
        // not a link: go up
      }
      if (target !== null && depth < 40) return join(real(resolve(dirname(head), target), depth + 1), ...rest);
      const up = dirname(head);
      if (up === head) return join(head, ...rest);
      rest.unshift(basename(head));
      head = up;
    }
  }
}
