// The first rows of a partition as JSON (`?preview=N`), read from the partition's stream and
// stopped as soon as they are there: memory is bounded by one row, never by the partition.
// CSV: the first line is the header; every row after it becomes an object keyed by it, values as
// the strings they are (RFC 4180 quoting, a quoted newline included); fields past the header go to
// `_extra`. JSON Lines: each line is the object it holds; a line that is not a JSON object comes
// back as `{ "_raw": "<line>" }` rather than failing the preview.
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { GatehouseError } from '../wire/index.js';

/** A row longer than this ends the preview with an error: a preview is for looking, not for any file. */
export const PREVIEW_ROW_MAX_CHARS = 1024 * 1024;

/** Bytes parsed between two looks at how many rows are there. */
const PARSE_SLICE = 4096;

export interface Preview {
  rows: Record<string, unknown>[];
  /** The bytes taken from the partition to find them. */
  bytes: number;
}

export async function previewRows(source: Readable, format: 'csv' | 'jsonl', n: number): Promise<Preview> {
  const decoder = new StringDecoder('utf8');
  const records: string[][] = [];
  const want = format === 'csv' ? n + 1 : n; // the CSV header is a record too
  let bytes = 0;
  const parser = format === 'csv' ? csvRecords((r) => records.push(r)) : lines((l) => records.push([l]));
  try {
    // Parsed a slice at a time, so the parse stops soon after the rows are there, not a chunk later.
    read: for await (const chunk of source) {
      bytes += (chunk as Buffer).length;
      for (let at = 0; at < (chunk as Buffer).length; at += PARSE_SLICE) {
        parser.push(decoder.write((chunk as Buffer).subarray(at, at + PARSE_SLICE)));
        if (records.length >= want) break read;
      }
    }
    if (records.length < want) parser.end(decoder.end());
  } finally {
    source.destroy(); // the rest is never read
  }
  const wanted = records.slice(0, want);
  if (format === 'jsonl') return { rows: wanted.map(([line]) => jsonRow(line!)), bytes };
  const [header, ...rows] = wanted;
  return { rows: rows.map((r) => keyed(header ?? [], r)), bytes };
}

function keyed(header: string[], fields: string[]): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [i, column] of header.entries()) row[column] = fields[i] ?? null;
  if (fields.length > header.length) row._extra = fields.slice(header.length);
  return row;
}

function jsonRow(line: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // shown raw, below
  }
  return { _raw: line };
}

interface Parser {
  push(text: string): void;
  end(text: string): void;
}

/** Non-empty lines, without their line ending. */
function lines(emit: (line: string) => void): Parser {
  let pending = '';
  const push = (text: string) => {
    pending += text;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      if (line !== '') emit(line);
    }
    if (pending.length > PREVIEW_ROW_MAX_CHARS) throw tooLong();
  };
  return { push, end: (text) => push(`${text}\n`) };
}

/** RFC 4180 records: quoted fields may hold commas, doubled quotes and newlines; blank lines are skipped. */
function csvRecords(emit: (fields: string[]) => void): Parser {
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let afterQuote = false;
  let size = 0;
  let blank = true;
  const endRecord = () => {
    if (!blank) emit([...fields, field]);
    fields = [];
    field = '';
    size = 0;
    blank = true;
  };
  const push = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (++size > PREVIEW_ROW_MAX_CHARS) throw tooLong();
      if (quoted) {
        if (c === '"') {
          quoted = false;
          afterQuote = true;
        } else field += c;
        continue;
      }
      if (c === '"') {
        if (afterQuote) field += '"'; // a doubled quote inside a quoted field
        quoted = true;
        afterQuote = false;
        blank = false;
      } else if (c === ',') {
        fields.push(field);
        field = '';
        afterQuote = false;
        blank = false;
      } else if (c === '\n') {
        afterQuote = false;
        endRecord();
      } else if (c !== '\r') {
        field += c;
        afterQuote = false;
        blank = false;
      }
    }
  };
  return {
    push,
    end: (text) => {
      push(text);
      if (!blank || fields.length > 0) endRecord();
    },
  };
}

function tooLong(): GatehouseError {
  return new GatehouseError('payload_too_large', `a row of this partition is longer than ${PREVIEW_ROW_MAX_CHARS} characters; download the partition instead`);
}
