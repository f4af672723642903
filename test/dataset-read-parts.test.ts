// The pure parts of dataset reads: which bytes a Range header asks for, and the preview's row
// parser fed the same bytes cut at every possible place (a quote, a CRLF or a UTF-8 character split
// across two chunks must not change a row). And the gateway's own reads of a data root it sees
// (the Slurm backend's), refusing planted links as the engine does; which reader data.gateway_reads
// picks; and the preview's bounded windows.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { byteRange } from '../src/proxy/byte-range.js';
import { loadConfig } from '../src/config/index.js';
import { resolveGatewayReads } from '../src/proxy/gateway-reads.js';
import { localReads } from '../src/proxy/local-reads.js';
import { FIRST_WINDOW, LAST_WINDOW, previewSource } from '../src/proxy/preview-source.js';
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

describe('data.gateway_reads: which reader, decided once', () => {
  const root = mkdtempSync(join(tmpdir(), 'gatehouse-gateway-reads-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('auto is local only when the engine listens on this machine; local refuses a data root it cannot read; engine is engine', () => {
    expect(resolveGatewayReads('auto', '127.0.0.1', root)).toBe('local');
    expect(resolveGatewayReads('auto', '::1', root)).toBe('local');
    expect(resolveGatewayReads('auto', 'localhost', root)).toBe('local');
    expect(resolveGatewayReads('auto', 'engine.internal', root)).toBe('engine');
    expect(resolveGatewayReads('auto', '10.0.0.7', root)).toBe('engine');
    expect(resolveGatewayReads('engine', '127.0.0.1', root)).toBe('engine');
    expect(resolveGatewayReads('local', 'engine.internal', root)).toBe('local');
    expect(() => resolveGatewayReads('local', '127.0.0.1', join(root, 'absent'))).toThrow(/data.gateway_reads is local, but the gateway cannot read data.root/);
  });

  it('a value outside auto|local|engine is a configuration error naming the key', () => {
    expect(() => loadConfig({ cwd: root, env: { GATEHOUSE_DATA_GATEWAY_READS: 'sometimes' } })).toThrow(/data\.gateway_reads/);
  });
});

describe('the preview source: bounded windows of the partition, byte-exact end to end', () => {
  it.each([0, 1, FIRST_WINDOW - 1, FIRST_WINDOW, FIRST_WINDOW + 1, 5 * FIRST_WINDOW + 17, 3 * LAST_WINDOW + 5])('%i bytes: read in windows no larger than the last, together the whole', async (size) => {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31) % 251;
    const asked: [number, number][] = [];
    const source = previewSource(async (start, end) => {
      asked.push([start, end]);
      return Readable.from([data.subarray(start, end + 1)]);
    }, size);
    const chunks: Buffer[] = [];
    for await (const c of source) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    for (const [start, end] of asked) expect(end - start + 1).toBeLessThanOrEqual(LAST_WINDOW);
    if (size > 0) expect(asked[0]).toEqual([0, Math.min(FIRST_WINDOW, size) - 1]);
  });

  it('stops asking once the rows are there', async () => {
    const rows = Array.from({ length: 200_000 }, (_, i) => `${i},w${i}`).join('\n');
    const data = Buffer.from(`id,word\n${rows}\n`);
    let asked = 0;
    const source = previewSource(async (start, end) => {
      asked++;
      return Readable.from([data.subarray(start, end + 1)]);
    }, data.length);
    const preview = await previewRows(source, 'csv', 20);
    expect(preview.rows).toHaveLength(20);
    expect(asked).toBe(1);
    expect(preview.bytes).toBe(FIRST_WINDOW);
  });
});
