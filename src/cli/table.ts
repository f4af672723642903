// Plain aligned tables for people; the commands print JSON instead with --json.
import { visible } from './safe-text.js';

/**
 * Rows of cells under a header, columns padded to their widest cell, two spaces apart. Cells are
 * data (names, reasons, errors someone else wrote): their control characters are shown escaped.
 */
export function table(header: string[], unsafeRows: string[][]): string {
  const rows = unsafeRows.map((r) => r.map(visible));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** 1.2 MiB: sizes people compare at a glance. */
export const formatBytes = (b: number) =>
  b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(1)} GiB` : b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : b >= 1 << 10 ? `${(b / (1 << 10)).toFixed(1)} KiB` : `${b} B`;
