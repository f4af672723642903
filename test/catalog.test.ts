import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, listDatasets, openDataset, openRoot, openRootSync, readDataset } from '../src/catalog/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { ensureDemoData } from '../src/compute/index.js';
import { engineClient } from '../src/proxy/index.js';
import { datasetNameProblem, isDatasetName, readTlsMaterial } from '../src/wire/index.js';
import { clientCertificate } from './support/client-cert.js';
import { fetchTls } from './support/https.js';
import { type Sandbox, sandbox, startUp, type Up } from './support/gatehouse.js';
import { until } from './support/until.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-catalog-'));
  dirs.push(dir);
  return dir;
}

interface Made {
  dir: string;
  manifest: Record<string, unknown>;
}

/** A small dataset written by hand, so the reader is checked against files it did not write. */
function makeDataset(root: string, name: string, options: { format?: 'csv' | 'jsonl'; labels?: string[]; edit?: (m: Record<string, unknown>) => void } = {}): Made {
  const format = options.format ?? 'csv';
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const partitions = [0, 1].map((p) => {
    const rows = [1, 2, 3].map((r) => (format === 'csv' ? `${p * 3 + r},row ${r}` : JSON.stringify({ id: p * 3 + r, text: `row ${r}` })));
    const text = `${[...(format === 'csv' ? ['id,text'] : []), ...rows].join('\n')}\n`;
    const file = `part-0000${p}.${format}`;
    writeFileSync(join(dir, file), text);
    return { file, rows: rows.length, bytes: Buffer.byteLength(text) };
  });
  const manifest: Record<string, unknown> = {
    format,
    columns: ['id', 'text'],
    partitions,
    owner: 'alice',
    labels: options.labels ?? [],
    created_at: '2025-03-01T10:00:00Z',
    produced_by: null,
  };
  options.edit?.(manifest);
  writeFileSync(join(dir, '_dataset.json'), JSON.stringify(manifest));
  return { dir, manifest };
}

function datasetErrorOf(promise: Promise<unknown>): Promise<DatasetError> {
  return promise.then(
    () => {
      throw new Error('expected a DatasetError');
    },
    (err: unknown) => {
      expect(err).toBeInstanceOf(DatasetError);
      return err as DatasetError;
    },
  );
}

describe('dataset names', () => {
  it('accepts lower-case names of letters, digits, _ and -, with at most one namespace', () => {
    for (const name of ['transactions', 'a', '0', 'words_norm', 'q3-2024', 'scratch/alice', 'team-7/run_2', 'x'.repeat(128)]) {
      expect(datasetNameProblem(name), name).toBeNull();
      expect(isDatasetName(name), name).toBe(true);
    }
  });

  it('refuses every other name with a sentence saying what is wrong', () => {
    const refused: [string, string][] = [
      ['', 'a dataset name must not be empty'],
      ['..', 'dataset name ".." contains a ".." part; names cannot point outside their folder'],
      ['../etc', 'dataset name "../etc" contains a ".." part; names cannot point outside their folder'],
      ['scratch/../../etc', 'dataset name "scratch/../../etc" contains a ".." part; names cannot point outside their folder'],
      ['./words', 'dataset name "./words" contains a "." part; names cannot point outside their folder'],
      ['/etc/passwd', 'dataset name "/etc/passwd" is an absolute path; names are relative to the data root (name or namespace/name)'],
      ['scratch//alice', 'dataset name "scratch//alice" has an empty part (//)'],
      ['scratch/', 'dataset name "scratch/" ends with /'],
      ['a/b/c', 'dataset name "a/b/c" has 2 slashes; at most one namespace is allowed (namespace/name)'],
      ['Sales', 'dataset name "Sales" has upper-case letters; names are lower case'],
      ['my data', 'dataset name "my data" contains a space; allowed are a-z, 0-9, _ and -, and one / after a namespace'],
      ['data*', 'dataset name "data*" contains "*"; allowed are a-z, 0-9, _ and -, and one / after a namespace'],
      ['words.csv', 'dataset name "words.csv" contains "."; allowed are a-z, 0-9, _ and -, and one / after a namespace'],
      ['caf\u00e9', 'dataset name "café" contains "é"; allowed are a-z, 0-9, _ and -, and one / after a namespace'],
      ['a\u0000b', 'dataset name "a\\u0000b" contains a control character (U+0000); allowed are a-z, 0-9, _ and -, and one / after a namespace'],
      ['_dataset', 'dataset name "_dataset": "_dataset" must start with a letter or a digit'],
      ['scratch/-x', 'dataset name "scratch/-x": "-x" must start with a letter or a digit'],
      ['x'.repeat(129), `dataset name "${'x'.repeat(60)}…" is 129 characters long; the limit is 128`],
    ];
    for (const [name, message] of refused) {
      expect(datasetNameProblem(name), JSON.stringify(name)).toBe(message);
      expect(isDatasetName(name), JSON.stringify(name)).toBe(false);
    }
    expect(isDatasetName(42)).toBe(false);
    expect(isDatasetName(null)).toBe(false);
  });
});

/**
 * The engine's intake opens a job's input with synchronous calls (openDataset's `sync`): for every
 * name the listing or a person could give (broken, linked, hidden, nested, missing), it gets exactly
 * what the asynchronous open gets, the dataset or the same refusal (code, message, path).
 */
async function expectSyncAgrees(root: string): Promise<void> {
  const names = new Set<string>(['nothing', 'scratch/nothing']);
  for (const top of readdirSync(root)) {
    names.add(top);
    try {
      for (const inner of readdirSync(join(root, top))) names.add(`${top}/${inner}`);
    } catch {
      // not a folder (or a link to none): its name alone is probed
    }
  }
  const outcome = (p: Promise<unknown>) => p.then((d) => ({ ok: d }), (err: unknown) => (err instanceof DatasetError ? { code: err.code, message: err.message, path: err.path } : { other: String(err) }));
  for (const name of names) {
    const viaAsync = await outcome(openRoot(root).then((r) => openDataset(r, name)));
    const viaSync = await outcome(Promise.resolve().then(() => openDataset(openRootSync(root), name, { sync: true })));
    expect(viaSync, name).toEqual(viaAsync);
  }
}

/**
 * The listing for one name (what the gateway asks when a submission names a dataset its cached
 * listing lacks) says of that name exactly what the whole listing says: for every dataset listed,
 * every folder name one and two levels deep (broken, linked, hidden, nested), and names nowhere.
 */
async function expectEachNameAlone(root: string): Promise<void> {
  const full = await listDatasets(root);
  const names = new Set<string>([...full.datasets.map((d) => d.name), 'nothing', 'scratch/nothing']);
  for (const top of readdirSync(root)) {
    names.add(top);
    try {
      for (const inner of readdirSync(join(root, top))) names.add(`${top}/${inner}`);
    } catch {
      // not a folder (or a link to none): its name alone is probed
    }
  }
  let listed = 0;
  for (const name of names) {
    const alone = await listDatasets(root, name);
    expect(alone.datasets, name).toEqual(full.datasets.filter((d) => d.name === name));
    listed += alone.datasets.length;
  }
  expect(listed).toBe(full.datasets.length);
}

describe('the catalog', () => {
  it('lists datasets sorted by name, with partitions, rows and bytes summed from the manifest', async () => {
    const root = folder();
    makeDataset(root, 'words', { format: 'jsonl' });
    const sales = makeDataset(root, 'sales', { labels: ['pii'] });
    writeFileSync(join(root, 'README.txt'), 'not a dataset'); // stray files at the root are ignored
    mkdirSync(join(root, '.staging-x-1-00000000')); // hidden folders too
    const { datasets, problems } = await listDatasets(root);
    expect(problems).toEqual([]);
    expect(datasets.map((d) => d.name)).toEqual(['sales', 'words']);
    const bytes = (sales.manifest.partitions as { bytes: number }[]).reduce((n, p) => n + p.bytes, 0);
    expect(datasets[0]).toEqual({
      name: 'sales',
      format: 'csv',
      columns: ['id', 'text'],
      partitions: 2,
      rows: 6,
      bytes,
      owner: 'alice',
      labels: ['pii'],
      created_at: '2025-03-01T10:00:00Z',
      produced_by: null,
    });
    expect(datasets[1]).toMatchObject({ name: 'words', format: 'jsonl', partitions: 2, rows: 6 });
    await expectEachNameAlone(root);
  });

  it('reads one dataset by name, and refuses a bad name or a missing dataset', async () => {
    const root = folder();
    makeDataset(root, 'sales');
    makeDataset(root, 'scratch/alice');
    expect(await readDataset(root, 'sales')).toMatchObject({ name: 'sales', rows: 6 });
    expect(await readDataset(root, 'scratch/alice')).toMatchObject({ name: 'scratch/alice', rows: 6 });

    const climb = await datasetErrorOf(readDataset(root, '../etc'));
    expect(climb.code).toBe('invalid_name');
    expect(climb.message).toMatch(/contains a "\.\." part/);
    const missing = await datasetErrorOf(readDataset(root, 'nothing'));
    expect([missing.code, missing.message, missing.path]).toEqual(['not_found', 'no dataset nothing', join(root, 'nothing')]);
    const namespace = await datasetErrorOf(readDataset(root, 'scratch'));
    expect([namespace.code, namespace.message]).toEqual(['not_found', 'no _dataset.json']);
    const noRoot = await datasetErrorOf(readDataset(join(root, 'absent'), 'sales'));
    expect([noRoot.code, noRoot.message]).toEqual(['not_found', 'the data root does not exist']);
  });

  it('lists datasets one namespace deep, and only folders with a manifest inside a namespace', async () => {
    const root = folder();
    makeDataset(root, 'transactions');
    makeDataset(root, 'scratch/alice');
    makeDataset(root, 'scratch/bob', { format: 'jsonl' });
    makeDataset(root, 'team-7/q3');
    mkdirSync(join(root, 'scratch', 'notes'));
    writeFileSync(join(root, 'scratch', 'notes', 'todo.txt'), 'not data');
    mkdirSync(join(root, 'empty-namespace'));
    // Inside a dataset nothing is a namespace: a nested manifest is neither listed nor readable.
    makeDataset(root, 'transactions/nested');

    const { datasets, problems } = await listDatasets(root);
    expect(datasets.map((d) => d.name)).toEqual(['scratch/alice', 'scratch/bob', 'team-7/q3', 'transactions']);
    expect(problems).toEqual([{ path: join(root, 'scratch', 'notes'), message: 'no _dataset.json (a folder inside the namespace scratch must be a dataset)' }]);
    const nested = await datasetErrorOf(readDataset(root, 'transactions/nested'));
    expect([nested.code, nested.message]).toEqual(['not_found', 'transactions is a dataset, not a namespace']);
    await expectEachNameAlone(root);
  });

  it('skips each kind of broken manifest, reporting it with its path, and still lists the others', async () => {
    const root = folder();
    makeDataset(root, 'good');
    makeDataset(root, 'scratch/fine');
    const broken: [name: string, damage: (m: Made) => void, message: string, file?: string][] = [
      ['not-json', (m) => writeFileSync(join(m.dir, '_dataset.json'), '{"format": "csv",'), '_dataset.json is not valid JSON: '],
      ['empty-file', (m) => writeFileSync(join(m.dir, '_dataset.json'), ''), '_dataset.json is not valid JSON: '],
      ['a-list', (m) => writeFileSync(join(m.dir, '_dataset.json'), '[]'), '_dataset.json must be a JSON object, got []'],
      ['no-owner', (m) => rewrite(m, (x) => delete x.owner), '_dataset.json: missing "owner"'],
      ['unknown-field', (m) => rewrite(m, (x) => (x.colour = 'blue')), '_dataset.json: unknown field "colour"'],
      ['parquet', (m) => rewrite(m, (x) => (x.format = 'parquet')), '_dataset.json: format: expected "csv" or "jsonl", got "parquet"'],
      ['no-columns', (m) => rewrite(m, (x) => (x.columns = [])), '_dataset.json: columns: expected a non-empty list of distinct column names, got []'],
      ['twin-columns', (m) => rewrite(m, (x) => (x.columns = ['id', 'id'])), '_dataset.json: columns: expected a non-empty list of distinct column names, got ["id","id"]'],
      ['negative-rows', (m) => rewrite(m, (x) => ((x.partitions as { rows: number }[])[1]!.rows = -1)), '_dataset.json: partitions[1].rows: expected a whole number of rows, 0 or more, got -1'],
      ['partition-field', (m) => rewrite(m, (x) => ((x.partitions as Record<string, unknown>[])[0]!.sha = 'x')), '_dataset.json: partitions[0]: unknown field "sha"'],
      ['loud-label', (m) => rewrite(m, (x) => (x.labels = ['PII'])), '_dataset.json: labels[0]: expected a label of lower-case letters, digits, _ and - (such as pii), got "PII"'],
      ['bad-date', (m) => rewrite(m, (x) => (x.created_at = 'yesterday')), '_dataset.json: created_at: expected an RFC 3339 date-time such as 2024-05-01T12:00:00Z, or null, got "yesterday"'],
      ['owner-number', (m) => rewrite(m, (x) => (x.owner = 7)), '_dataset.json: owner: expected a user or group name, or null, got 7'],
      ['out-of-order', (m) => rewrite(m, (x) => (x.partitions as unknown[]).reverse()), "_dataset.json: partitions[0].file: expected part-00000.csv (numbered from 0, in the dataset's format), got \"part-00001.csv\""],
      ['wrong-format', (m) => rewrite(m, (x) => (x.format = 'jsonl')), "_dataset.json: partitions[0].file: expected part-00000.jsonl (numbered from 0, in the dataset's format), got \"part-00000.csv\""],
      ['wrong-bytes', (m) => writeFileSync(join(m.dir, 'part-00001.csv'), 'id,text\n1,changed after the manifest\n'), 'part-00001.csv has 37 bytes; _dataset.json says 32', 'part-00001.csv'],
      ['lost-partition', (m) => rmSync(join(m.dir, 'part-00000.csv')), 'part-00000.csv is listed in _dataset.json but missing', 'part-00000.csv'],
      ['extra-partition', (m) => writeFileSync(join(m.dir, 'part-00002.csv'), 'id,text\n'), 'part-00002.csv is not listed in _dataset.json', 'part-00002.csv'],
      ['folder-partition', (m) => replaceWithFolder(join(m.dir, 'part-00000.csv')), 'part-00000.csv is not a file', 'part-00000.csv'],
      ['manifest-folder', (m) => replaceWithFolder(join(m.dir, '_dataset.json')), '_dataset.json is not a file'],
      ['no-manifest', (m) => rmSync(join(m.dir, '_dataset.json')), 'has partition files but no _dataset.json', ''],
      ['Upper', () => {}, 'dataset name "Upper" has upper-case letters; names are lower case', ''],
    ];
    const expected: { path: string; message: string }[] = [];
    for (const [name, damage, message, file] of broken) {
      const made = makeDataset(root, name);
      damage(made);
      expected.push({ path: file === '' ? made.dir : join(made.dir, file ?? '_dataset.json'), message });
    }
    const { datasets, problems } = await listDatasets(root);
    expect(datasets.map((d) => d.name)).toEqual(['good', 'scratch/fine']);
    expected.sort((a, b) => (a.path < b.path ? -1 : 1));
    expect(problems.map((p) => p.path)).toEqual(expected.map((p) => p.path));
    for (const [i, problem] of problems.entries()) {
      if (expected[i]!.message.endsWith(': ')) expect(problem.message.startsWith(expected[i]!.message), problem.message).toBe(true);
      else expect(problem.message).toBe(expected[i]!.message);
    }
    await expectEachNameAlone(root);
    await expectSyncAgrees(root);
  });

  it('refuses symbolic links: those that lead outside the data root, and those inside it that would give a dataset a second name', async () => {
    const outside = folder();
    const root = join(folder(), 'data');
    mkdirSync(root);
    makeDataset(root, 'good');
    makeDataset(outside, 'elsewhere');
    makeDataset(outside, 'ns/inner');
    writeFileSync(join(outside, 'secret.csv'), 'id,text\n1,row 1\n2,row 2\n3,row 3\n');
    writeFileSync(join(outside, 'manifest.json'), readFileSync(join(root, 'good', '_dataset.json')));

    symlinkSync(join(outside, 'elsewhere'), join(root, 'escaped')); // a whole dataset
    symlinkSync(join(outside, 'ns'), join(root, 'ns-link')); // a namespace
    const partition = makeDataset(root, 'partition-link');
    rmSync(join(partition.dir, 'part-00000.csv'));
    symlinkSync(join(outside, 'secret.csv'), join(partition.dir, 'part-00000.csv'));
    // A partition linked to another dataset's, of the very size its manifest lists: refused for the link alone.
    const alias = makeDataset(root, 'partition-alias');
    rmSync(join(alias.dir, 'part-00000.csv'));
    symlinkSync(join(root, 'good', 'part-00000.csv'), join(alias.dir, 'part-00000.csv'));
    const manifest = makeDataset(root, 'manifest-link');
    rmSync(join(manifest.dir, '_dataset.json'));
    symlinkSync(join(outside, 'manifest.json'), join(manifest.dir, '_dataset.json'));
    symlinkSync('good', join(root, 'alias')); // stays inside: a second name for `good`, refused
    symlinkSync(join(root, 'nowhere'), join(root, 'dangling'));

    const leadsOutside = 'is a symbolic link that leads outside the data root';
    const { datasets, problems } = await listDatasets(root);
    expect(datasets.map((d) => d.name)).toEqual(['good']);
    expect(problems).toEqual([
      { path: join(root, 'alias'), message: 'is a symbolic link; under the data root datasets are real folders and files, so none has a second name' },
      { path: join(root, 'dangling'), message: 'is a broken symbolic link' },
      { path: join(root, 'escaped'), message: leadsOutside },
      { path: join(root, 'manifest-link', '_dataset.json'), message: leadsOutside },
      { path: join(root, 'ns-link'), message: leadsOutside },
      { path: join(root, 'partition-alias', 'part-00000.csv'), message: 'is a symbolic link; under the data root datasets are real folders and files, so none has a second name' },
      { path: join(root, 'partition-link', 'part-00000.csv'), message: leadsOutside },
    ]);
    const refused = await datasetErrorOf(readDataset(root, 'escaped'));
    expect([refused.code, refused.path]).toEqual(['outside_root', join(root, 'escaped')]);
    expect((await datasetErrorOf(readDataset(root, 'ns-link/inner'))).code).toBe('outside_root');
    await expectEachNameAlone(root);
    await expectSyncAgrees(root);
  });

  it('never writes a dataset inside another dataset or through a linked namespace', async () => {
    const root = join(folder(), 'data');
    mkdirSync(root);
    makeDataset(root, 'good');
    const other = folder();
    symlinkSync(other, join(root, 'linked'));
    const data = { format: 'csv' as const, columns: ['id'], owner: null, labels: [], produced_by: null, partitions: [{ text: 'id\n1\n', rows: 1 }] };
    const inside = await datasetErrorOf(writeDataset(root, 'good/x', data));
    expect([inside.code, inside.message]).toEqual(['invalid_name', 'good is a dataset, not a namespace']);
    expect((await datasetErrorOf(writeDataset(root, 'linked/x', data))).code).toBe('outside_root');
    expect(readdirSync(other)).toEqual([]);
    expect(await writeDataset(root, 'scratch/x', data)).toBe(true);
    expect((await readDataset(root, 'scratch/x')).rows).toBe(1);
  });

  it('reports a data root that does not exist instead of failing', async () => {
    const root = join(folder(), 'data');
    expect(await listDatasets(root)).toEqual({ datasets: [], problems: [{ path: root, message: 'the data root does not exist' }] });
    const viaSync = (() => {
      try {
        return openRootSync(root);
      } catch (err) {
        return err;
      }
    })();
    expect(viaSync).toMatchObject({ code: 'not_found', message: 'the data root does not exist', path: root });
  });
});

function rewrite(made: Made, edit: (m: Record<string, unknown>) => void): void {
  edit(made.manifest);
  writeFileSync(join(made.dir, '_dataset.json'), JSON.stringify(made.manifest));
}

/** RFC 4180 fields of one line (no line breaks inside fields in our data). */
function csvFields(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        const quote = line.indexOf('"', j);
        if (line[quote + 1] === '"') {
          value += line.slice(j, quote + 1);
          j = quote + 2;
        } else {
          value += line.slice(j, quote);
          i = quote + 1;
          break;
        }
      }
      fields.push(value);
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      fields.push(line.slice(i, end));
      i = end;
    }
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

describe('the demo datasets', () => {
  const DEMO = { transactions: [16, 300_000, 'csv'], customers: [2, 2_000, 'csv'], words: [4, 50_000, 'jsonl'] } as const;
  let made: string;
  let first: { created: string[] };
  beforeAll(async () => {
    made = join(mkdtempSync(join(tmpdir(), 'gatehouse-demo-')), 'data');
    first = await ensureDemoData(made);
  });
  afterAll(() => rmSync(join(made, '..'), { recursive: true, force: true }));

  it('are the same bytes on every run, and their manifests agree with their partition files', async () => {
    const again = join(folder(), 'data');
    expect(first).toEqual({ created: ['transactions', 'customers', 'words'] });
    expect(await ensureDemoData(again)).toEqual({ created: ['transactions', 'customers', 'words'] });

    const hash = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
    for (const [name, [partitions, rows, format]] of Object.entries(DEMO)) {
      const files = readdirSync(join(made, name)).sort();
      expect(readdirSync(join(again, name)).sort()).toEqual(files);
      for (const file of files.filter((f) => f.startsWith('part-'))) expect(hash(join(made, name, file)), `${name}/${file}`).toBe(hash(join(again, name, file)));
      const manifest = JSON.parse(readFileSync(join(made, name, '_dataset.json'), 'utf8')) as {
        format: string; columns: string[]; partitions: { file: string; rows: number; bytes: number }[]; created_at: string; labels: string[]; owner: string;
      };
      const other = JSON.parse(readFileSync(join(again, name, '_dataset.json'), 'utf8')) as typeof manifest;
      expect({ ...other, created_at: null }).toEqual({ ...manifest, created_at: null }); // only the creation time differs
      expect(manifest.format).toBe(format);
      expect(manifest.owner).toBe('platform');
      expect(manifest.labels).toEqual(name === 'customers' ? ['pii'] : []);
      expect(manifest.partitions).toHaveLength(partitions);
      expect(manifest.partitions.reduce((n, p) => n + p.rows, 0)).toBe(rows);

      for (const partition of manifest.partitions) {
        const path = join(made, name, partition.file);
        expect(statSync(path).size, partition.file).toBe(partition.bytes);
        const lines = readFileSync(path, 'utf8').split('\n');
        expect(lines.pop(), 'ends with a line break').toBe('');
        if (format === 'csv') expect(lines.shift()).toBe(manifest.columns.join(','));
        expect(lines, partition.file).toHaveLength(partition.rows);
        // Collected, not asserted line by line: a failure shows the first few bad rows.
        const misshapen = lines.filter((line) =>
          format === 'csv'
            ? csvFields(line).length !== manifest.columns.length
            : JSON.stringify(Object.keys(JSON.parse(line) as object)) !== JSON.stringify(manifest.columns),
        );
        expect(misshapen.slice(0, 3), partition.file).toEqual([]);
      }
    }
    const { datasets, problems } = await listDatasets(made);
    expect(problems).toEqual([]);
    expect(datasets.map((d) => [d.name, d.partitions, d.rows])).toEqual([
      ['customers', 2, 2_000],
      ['transactions', 16, 300_000],
      ['words', 4, 50_000],
    ]);
  });

  it('hold what a demo needs: customers that transactions point to, and words a normaliser has work with', () => {
    const rowsOf = (file: string) => readFileSync(join(made, file), 'utf8').split('\n').slice(1, -1);
    const customerIds = new Set([...rowsOf('customers/part-00000.csv'), ...rowsOf('customers/part-00001.csv')].map((l) => l.split(',')[0]));
    expect(customerIds.size).toBe(2_000);
    const payments = rowsOf('transactions/part-00000.csv').map(csvFields);
    expect(payments.filter((f) => !customerIds.has(f[1]))).toEqual([]);
    expect(payments.some((f) => f[4] === 'Books, Maps & More')).toBe(true); // a quoted field
    expect(payments[0]![6]).toMatch(/^2024-01-01T\d\d:\d\d:\d\dZ$/);

    const words = readFileSync(join(made, 'words', 'part-00000.jsonl'), 'utf8').split('\n').slice(0, -1).map((l) => (JSON.parse(l) as { word: string }).word);
    const odd = words.filter((w) => w !== w.normalize('NFC').trim().toLowerCase().replace(/[^\p{L}\p{N}'-]/gu, ''));
    expect(odd.length / words.length).toBeGreaterThan(0.1);
    expect(odd.length / words.length).toBeLessThan(0.3);
  });

  it('creates only what is missing, leaves existing folders alone and clears staging abandoned by a dead writer', async () => {
    const root = join(folder(), 'data');
    const mine = makeDataset(root, 'customers'); // someone's own dataset with a demo name
    const abandoned = join(root, '.staging-words-999999999-0badf00d'); // no such pid: its writer is gone
    mkdirSync(abandoned);
    writeFileSync(join(abandoned, 'part-00000.jsonl'), '{"id":1,"word":"half"}\n');

    expect(await ensureDemoData(root)).toEqual({ created: ['transactions', 'words'] });
    expect(JSON.parse(readFileSync(join(mine.dir, '_dataset.json'), 'utf8'))).toEqual(mine.manifest);
    expect(readdirSync(root).sort()).toEqual(['customers', 'transactions', 'words']);
    expect(await ensureDemoData(root)).toEqual({ created: [] });
    rmSync(join(root, 'words'), { recursive: true });
    expect(await ensureDemoData(root)).toEqual({ created: ['words'] });
  });
});

describe('the engine catalog over mTLS', () => {
  let box: Sandbox;
  let up: Up;
  let data: string;
  const gatewayCert = () => ({ cert: readFileSync(join(box.dir, 'certs', 'gateway-client.crt'), 'utf8'), key: readFileSync(join(box.dir, 'certs', 'gateway-client.key'), 'utf8') });

  beforeAll(async () => {
    box = sandbox();
    data = join(box.dir, 'data'); // data.root's default, beside the sandbox's gatehouse.yaml
    makeDataset(data, 'scratch/alice', { format: 'jsonl' });
    makeDataset(data, 'broken', { edit: (m) => (m.format = 'xlsx') });
    up = await startUp(box); // adds the demo datasets before the engine starts
  });

  afterAll(async () => {
    await up?.stop();
    box?.remove();
  });

  it('answers GET /datasets to the gateway certificate with every good dataset, sorted by name', async () => {
    const res = await fetchTls(`${up.ready.engine.url}/datasets`, { ca: up.ca, ...gatewayCert() });
    expect(res.status).toBe(200);
    const { datasets } = res.json<{ datasets: Record<string, unknown>[] }>();
    expect(datasets.map((d) => d.name)).toEqual(['customers', 'scratch/alice', 'transactions', 'words']);
    expect(datasets[2]).toEqual({
      name: 'transactions',
      format: 'csv',
      columns: ['id', 'customer_id', 'amount', 'currency', 'merchant', 'category', 'ts'],
      partitions: 16,
      rows: 300_000,
      bytes: readdirSync(join(data, 'transactions')).filter((f) => f.startsWith('part-')).reduce((n, f) => n + statSync(join(data, 'transactions', f)).size, 0),
      owner: 'platform',
      labels: [],
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      produced_by: 'gatehouse demo data',
    });
    expect(datasets[0]).toMatchObject({ name: 'customers', labels: ['pii'], rows: 2_000 });
  });

  it('logs the dataset it skipped with the path of its manifest', async () => {
    const listed = await fetchTls(`${up.ready.engine.url}/datasets`, { ca: up.ca, ...gatewayCert() });
    // pino writes asynchronously, in order: once this listing's request line is in, so is anything it logged.
    const parsed = () => readFileSync(up.ready.engine.log, 'utf8').split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
    await until(() => parsed().some((l) => l.request_id === listed.headers['x-request-id'] && l.msg === 'request'), 10_000, "the listing's request line in the engine log");
    const lines = parsed();
    const skipped = lines.filter((l) => l.msg === 'dataset skipped');
    expect(skipped).toHaveLength(1); // once per change, not once per listing
    expect(skipped[0]).toMatchObject({
      level: 40,
      path: join(data, 'broken', '_dataset.json'),
      problem: '_dataset.json: format: expected "csv" or "jsonl", got "xlsx"',
    });
  });

  it('is what EngineClient.datasets() gives the gateway', async () => {
    const port = Number(new URL(up.ready.engine.url).port);
    const client = engineClient({ host: '127.0.0.1', port, tls: readTlsMaterial(join(box.dir, 'certs'), 'gatewayClient') });
    try {
      const listed = await client.datasets();
      const res = await fetchTls(`${up.ready.engine.url}/datasets`, { ca: up.ca, ...gatewayCert() });
      expect(listed).toEqual(res.json<{ datasets: unknown[] }>().datasets);
      expect(listed.map((d) => d.name)).toEqual(['customers', 'scratch/alice', 'transactions', 'words']);
    } finally {
      client.close();
    }
  });

  it('forbids any other certificate and refuses unknown query parameters', async () => {
    const user = clientCertificate(join(box.dir, 'certs'), { CN: 'alice', OU: 'users' });
    const forbidden = await fetchTls(`${up.ready.engine.url}/datasets`, { ca: up.ca, ...user });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json()).toEqual({ error: 'forbidden', message: 'the engine serves only the gateway' });
    const query = await fetchTls(`${up.ready.engine.url}/datasets?owner=alice`, { ca: up.ca, ...gatewayCert() });
    expect(query.status).toBe(400);
    expect(query.json()).toEqual({ error: 'invalid_request', field: 'query.owner', message: 'query.owner is not a known field' });
  });
});

/** A file turned into a folder of the same name (what a corrupted or hostile data root can hold). */
function replaceWithFolder(path: string): void {
  rmSync(path);
  mkdirSync(path);
}
