// What a job or a person wrote is data, never control. Job errors, log lines, names, reasons and
// audit fields reach other people's terminals (an admin's `jobs --all`, `status`, `logs`, `audit
// query`): a control character or escape sequence in them would be acted on by the viewer's
// terminal (recolour, move the cursor, rewrite the title, set the clipboard with OSC 52, hide a
// link with OSC 8, overwrite a line with \r, ring the bell, reorder text with bidi overrides).
// Everything the CLI prints from the gateway goes through here and comes out visibly escaped.
//
// The escapes are JSON's (`\u001b`, `\n`, `\r`, `\t`), so escaping JSON text leaves valid JSON
// that parses back to the same value: `safeJson` is JSON.stringify plus the characters JSON leaves
// raw (DEL, C1, bidi controls, line separators).

/**
 * Characters a terminal may act on, other than newline and tab: C0 controls (ESC, BEL, CR, BS...),
 * DEL, C1 controls (U+0080–U+009F: CSI, OSC, ST... as code points), the bidi marks, embeddings,
 * overrides and isolates (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), and U+2028/U+2029.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same, and newline and tab too: for a value that must stay on its line (a table cell, a field). */
const CONTROL_OR_BREAK = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escaped(c: string): string {
  return NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** One value on one line: every control character, newline and tab included, shown escaped. */
export function visible(text: string): string {
  return text.replace(CONTROL_OR_BREAK, escaped);
}

/** Text of several lines (a log, a message): newlines and tabs kept, every other control escaped. */
export function visibleLines(text: string): string {
  return text.replace(CONTROL, escaped);
}

/** JSON for a terminal or a pipe: what JSON.stringify gives, with no character left a terminal acts on. */
export function safeJson(value: unknown): string {
  return visibleLines(JSON.stringify(value));
}

/** A line for people on stdout, escaped. */
export const printLine = (line: string): void => void process.stdout.write(`${visibleLines(line)}\n`);

/** A line for people on stderr, escaped. */
export const printNote = (line: string): void => void process.stderr.write(`${visibleLines(line)}\n`);

/**
 * A byte stream (a job's log) made safe as it passes: decoded as UTF-8 across chunk boundaries
 * (a character split between two chunks is kept whole; bytes that are not UTF-8 become U+FFFD, so
 * no raw 0x80–0x9F byte reaches an 8-bit terminal), controls escaped, newlines and tabs kept.
 */
export class VisibleStream {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  /** The escaped text of this chunk (possibly empty while a character is incomplete). */
  push(chunk: Uint8Array): string {
    return visibleLines(this.decoder.decode(chunk, { stream: true }));
  }

  /** What is left at the end: an incomplete last character, as U+FFFD. */
  end(): string {
    return visibleLines(this.decoder.decode());
  }
}
