// The CSV header and record counting an upload's commit rests on (src/catalog/csv.ts): quoted
// commas, doubled quotes and line breaks inside quotes, CRLF, a last record without a line break,
// and chunk boundaries anywhere (inside a quote, between \r and \n).
import { describe, expect, it } from 'vitest';
import { CsvCounter, csvFields } from '../src/catalog/index.js';

function count(text: string, chunk: number): { header: string[] | null; records: number; balanced: boolean } {
  const counter = new CsvCounter();
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += chunk) counter.push(bytes.subarray(i, i + chunk));
  return { header: counter.header(), records: counter.records, balanced: counter.balanced };
}

describe('csvFields', () => {
  it('splits a header line as RFC 4180 says', () => {
    expect(csvFields('id,word,note')).toEqual(['id', 'word', 'note']);
    expect(csvFields('"a,b","say ""hi""",')).toEqual(['a,b', 'say "hi"', '']);
    expect(csvFields('')).toEqual(['']);
  });
});

describe('CsvCounter', () => {
  const text = 'id,"the ""word""",note\r\n1,a,"x, y"\r\n2,b,"line\none"\r\n3,c,last';
  it('reads the header and counts records (a quoted line break is inside a record), whatever the chunking', () => {
    for (const chunk of [1, 2, 3, 7, 64, 1 << 20]) {
      expect(count(text, chunk), `chunks of ${chunk}`).toEqual({ header: ['id', 'the "word"', 'note'], records: 4, balanced: true });
    }
  });
  it('counts a header alone as one record, an empty stream as none, and sees a file ending inside quotes', () => {
    expect(count('a,b\n', 2)).toEqual({ header: ['a', 'b'], records: 1, balanced: true });
    expect(count('', 2)).toEqual({ header: null, records: 0, balanced: true });
    expect(count('a\n"open\n', 3).balanced).toBe(false);
  });
  it('refuses a header longer than 64 KiB', () => {
    expect(() => count('x'.repeat(70 * 1024), 4096)).toThrow(/header line is longer/);
  });
});
