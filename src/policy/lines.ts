// Splits policy.csv into lines exactly as Casbin's file adapter does (same comment rule, same CSV
// rules, same trimming), keeping each line's number so every problem and every decision can point
// at it. Plain lines take a fast split; a line with quotes or brackets goes through Casbin's own
// parser, so the two never disagree.
import { casbin } from './casbin.js';

export interface PolicyLine {
  /** Position among all loaded lines: file order, which is also Casbin's order. */
  id: number;
  /** The line type: p, p2, g, g2, ... */
  type: string;
  fields: string[];
  file: string;
  line: number;
}

export interface RawProblem {
  line: number;
  message: string;
}

const parser = new casbin.BracketAwareCsvParser();

/** Calls `onLine` for each policy line; yields to the event loop every `chunk` lines. */
export async function readLines(
  _file: string,
  text: string,
  onLine: (type: string, fields: string[], line: number) => void,
  onProblem: (p: RawProblem) => void,
  options: { chunk?: number; pause?: () => Promise<void> } = {},
): Promise<void> {
  const rows = text.split('\n');
  const chunk = options.chunk ?? 10_000;
  for (let i = 0; i < rows.length; i++) {
    if (options.pause && i > 0 && i % chunk === 0) await options.pause();
    const row = rows[i]!;
    if (!row || row.trim().startsWith('#')) continue;
    let tokens: string[];
    if (!/["()]/.test(row)) {
      tokens = row.split(',').map((t) => t.trim());
    } else {
      try {
        const parsed = parser.parse(row) as string[][] | null;
        if (!parsed || !parsed[0]) continue;
        tokens = parsed[0].map((t, j) => {
          let v = j === 0 ? t.trim() : t;
          if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
          return j === 0 ? v : v.replace(/""/g, '"').trim();
        });
      } catch (err) {
        onProblem({ line: i + 1, message: `cannot parse the line: ${(err as Error).message.replace(/ at line 1$/, '')}` });
        continue;
      }
    }
    if (tokens.length === 1 && tokens[0] === '') continue; // a line of spaces
    onLine(tokens[0]!, tokens.slice(1), i + 1);
  }
}

/** The line as people read it: `p, role:analysts, dataset:transactions, read, allow`. */
export function lineText(l: Pick<PolicyLine, 'type' | 'fields'>): string {
  return [l.type, ...l.fields].join(', ');
}

/** `policy.csv:12`. */
export function lineRef(l: Pick<PolicyLine, 'file' | 'line'>): string {
  return `${l.file}:${l.line}`;
}
