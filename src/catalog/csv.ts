// The two things an upload needs to know of a CSV partition, read as it streams: its header's
// fields (the dataset's columns) and how many records follow. RFC 4180: a quoted field may hold
// commas, doubled quotes and line breaks, so records are counted by line breaks outside quotes.

/** RFC 4180 fields of one header line (without its line break). */
export function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

export const HEADER_MAX_BYTES = 64 * 1024;

/**
 * Counts a CSV stream's records chunk by chunk, keeping its header line's bytes. `records` counts
 * the header too; a last record without a line break counts.
 */
export class CsvCounter {
  private quoted = false;
  private breaks = 0;
  /** Bytes since the last record break outside quotes (a last record without one still counts). */
  private pending = false;
  private headerBytes: Buffer[] = [];
  private headerLength = 0;
  private headerDone = false;

  push(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 0x22) this.quoted = !this.quoted; // a doubled quote toggles twice: still inside
      else if (c === 0x0a && !this.quoted) {
        if (!this.headerDone) {
          this.headerBytes.push(chunk.subarray(0, i));
          this.headerDone = true;
        }
        this.breaks += 1;
        this.pending = false;
        continue;
      }
      this.pending = true;
    }
    if (!this.headerDone) {
      this.headerBytes.push(Buffer.from(chunk));
      this.headerLength += chunk.length;
      if (this.headerLength > HEADER_MAX_BYTES) throw new Error(`the header line is longer than ${HEADER_MAX_BYTES} bytes`);
    }
  }

  /** Records, the header included. */
  get records(): number {
    return this.breaks + (this.pending ? 1 : 0);
  }

  /** The header's fields; null when the stream was empty. */
  header(): string[] | null {
    const text = Buffer.concat(this.headerBytes).toString('utf8').replace(/\r$/, '');
    if (text === '' && this.records === 0) return null;
    return csvFields(text);
  }

  /** False when the stream ended inside a quoted field (a broken file). */
  get balanced(): boolean {
    return !this.quoted;
  }
}
