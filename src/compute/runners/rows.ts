// Counting a partition file's rows the way the runners do (python_runner.py and node_runner.mjs
// count their own outputs with the same rules); here for the command runtime's outputs.
import { open } from 'node:fs/promises';

const CHUNK = 1 << 20;
const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Rows and bytes of a partition file, read in binary chunks.
 * CSV: newlines minus the header line, a last line without its newline counted too.
 * JSON Lines: lines that are not empty (a lone carriage return counts as empty).
 */
export async function countRows(file: string, format: 'csv' | 'jsonl'): Promise<{ rows: number; bytes: number }> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    let bytes = 0;
    let newlines = 0;
    let nonEmpty = 0;
    let lineLength = 0; // bytes of the current line read so far
    let lineFirst = -1; // its first byte, to tell a lone '\r'
    let last = NEWLINE;
    const counts = (length: number, first: number) => length > 1 || (length === 1 && first !== CARRIAGE_RETURN);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      bytes += bytesRead;
      last = chunk[bytesRead - 1]!;
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
        newlines++;
        if (counts(lineLength + nl - start, lineLength > 0 ? lineFirst : chunk[start]!)) nonEmpty++;
        lineLength = 0;
        start = nl + 1;
      }
      if (start < bytesRead) {
        if (lineLength === 0) lineFirst = chunk[start]!;
        lineLength += bytesRead - start;
      }
    }
    if (format === 'jsonl') return { rows: nonEmpty + (counts(lineLength, lineFirst) ? 1 : 0), bytes };
    const lines = newlines + (last !== NEWLINE ? 1 : 0);
    return { rows: Math.max(lines - 1, 0), bytes };
  } finally {
    await handle.close();
  }
}
