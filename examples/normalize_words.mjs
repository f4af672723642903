// Normalise the `word` column of a partition: NFKC, lower case, no surrounding punctuation or
// spaces. The Node twin of normalize_words.py, for the `node` runtime, with the same rules.
//
// Reads CSV (with a header) or JSON Lines, chosen by the input file's extension, and writes the
// same format; every other column is kept as it is. "Punctuation" is any Unicode punctuation
// character (\p{P}), "spaces" any separator or control character (\p{Z}, \p{Cc}).
//
//   gatehouse submit --input words --output scratch/words_norm_node --node examples/normalize_words.mjs
import { readFile, writeFile } from 'node:fs/promises';

const EDGES = /^[\p{P}\p{Z}\p{Cc}]+|[\p{P}\p{Z}\p{Cc}]+$/gu;
// Words repeat: each distinct form is normalised once (bounded, for columns of unique values).
const CACHE_LIMIT = 200_000;
const cache = new Map();

export function normalize(word) {
  let text = cache.get(word);
  if (text === undefined) {
    text = word.normalize('NFKC').toLowerCase().replace(EDGES, '');
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(word, text);
  }
  return text;
}

export async function process(inputPath, outputPath, ctx) {
  const text = await readFile(inputPath, 'utf8');
  const jsonl = inputPath.endsWith('.jsonl') || inputPath.endsWith('.json');
  const { out, rows } = jsonl ? normalizeJsonl(text) : normalizeCsv(text, inputPath);
  await writeFile(outputPath, out);
  ctx?.log(`normalised ${rows} rows`);
}

function normalizeJsonl(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const record = JSON.parse(line);
    if (record !== null && typeof record === 'object' && typeof record.word === 'string') record.word = normalize(record.word);
    out.push(JSON.stringify(record));
  }
  return { out: out.length === 0 ? '' : `${out.join('\n')}\n`, rows: out.length };
}

function normalizeCsv(text, inputPath) {
  const rows = parseCsv(text.replace(/^\uFEFF/, ''));
  const header = rows.shift();
  if (header === undefined) return { out: '', rows: 0 };
  const column = header.indexOf('word');
  if (column === -1) throw new Error(`${inputPath} has no 'word' column (columns: ${header.join(', ')})`);
  const lines = [formatRow(header)];
  for (const row of rows) {
    if (row.length > column) row[column] = normalize(row[column]);
    lines.push(formatRow(row));
  }
  return { out: `${lines.join('\n')}\n`, rows: rows.length };
}

/** RFC 4180 fields: quoted ones may hold commas, doubled quotes and line breaks. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else field += c;
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
    i++;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Quotes a field the way Python's csv module does by default (QUOTE_MINIMAL). */
function formatRow(row) {
  return row.map((f) => (/[",\r\n]/.test(f) || (row.length === 1 && f === '') ? `"${f.replaceAll('"', '""')}"` : f)).join(',');
}
