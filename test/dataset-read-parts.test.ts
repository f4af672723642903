// The pure parts of dataset reads: which bytes a Range header asks for, and the preview's row
// parser fed the same bytes cut at every possible place (a quote, a CRLF or a UTF-8 character split
// across two chunks must not change a row). And the gateway's own reads of a data root it sees
// (the Slurm backend's), refusing planted links as the engine does.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { byteRange } from '../src/proxy/byte-range.js';
import { localReads } from '../src/proxy/local-reads.js';
import { previewRows } from '../src/proxy/preview-rows.js';

describe('byteRange', () => {
  it.each([
    [undefined, 100, 'whole'],
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=90-500', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-500', 100, { start: 0, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=9-3', 100, 'whole'],
    ['bytes=0-1,5-6', 100, 'whole'],
    ['items=0-1', 100, 'whole'],
    ['bytes=-', 100, 'whole'],
  ] as const)('%s of %i bytes: %o', (header, size, expected) => {
    expect(byteRange(header, size)).toEqual(expected);
  });
});

const rows = (text: string, format: 'csv' | 'jsonl', n: number, cut: number) => previewRows(Readable.from([Buffer.from(text).subarray(0, cut), Buffer.from(text).subarray(cut)].filter((b) => b.length > 0)), format, n);

describe('previewRows', () => {
  const csv = 'id,name,note\r\n1,"Ann, the ""first""","two\nlines"\r\n\r\n2,Zoë,\n3,x,y,extra\n4';
  it('parses RFC 4180 CSV the same however the bytes are cut', async () => {
    for (let cut = 0; cut <= Buffer.byteLength(csv); cut++) {
      expect((await rows(csv, 'csv', 10, cut)).rows, `cut at ${cut}`).toEqual([
        { id: '1', name: 'Ann, the "first"', note: 'two\nlines' },
        { id: '2', name: 'Zoë', note: '' },
        { id: '3', name: 'x', note: 'y', _extra: ['extra'] },
        { id: '4', name: null, note: null },
      ]);
    }
  });

  it('stops at N rows', async () => {
    expect((await rows(csv, 'csv', 1, 5)).rows).toHaveLength(1);
  });

  it('gives JSON Lines as their objects, anything else as _raw', async () => {
    const text = '{"a":1}\r\n[1,2]\n\n{"b":"é"}';
    for (let cut = 0; cut <= Buffer.byteLength(text); cut++) {
      expect((await rows(text, 'jsonl', 10, cut)).rows).toEqual([{ a: 1 }, { _raw: '[1,2]' }, { b: 'é' }]);
    }
  });
});

describe("the gateway's own reads (a data root it sees, as for Slurm)", () => {
  const root = mkdtempSync(join(tmpdir(), 'gatehouse-local-reads-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const reads = localReads(root);
  const base = { format: 'csv' as const, columns: ['id'], owner: 'alice', labels: [], produced_by: null };

  it('streams a range of the version asked for, refuses another version, and a planted link as a missing dataset', async () => {
    await writeDataset(root, 'scratch/a', { ...base, partitions: [{ text: 'id\n1\n2\n', rows: 2 }] });
    const found = await reads.readDataset('scratch/a');
    expect(found?.manifest.partitions[0]?.bytes).toBe(7);
    const chunks: Buffer[] = [];
    for await (const c of await reads.readPartition('scratch/a', 0, found!.etag, 3, 4)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('1\n');
    await expect(reads.readPartition('scratch/a', 0, 'f'.repeat(64), 0, 1)).rejects.toMatchObject({ code: 'conflict' });
    symlinkSync(join(root, 'scratch', 'a'), join(root, 'scratch', 'b'));
    expect(await reads.readDataset('scratch/b')).toBeNull();
    expect(await reads.readDataset('../etc')).toBeNull();
    await expect(reads.readPartition('scratch/b', 0, found!.etag, 0, 1)).rejects.toMatchObject({ code: 'not_found' });
  });
});
