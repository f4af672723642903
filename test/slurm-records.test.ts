// The Slurm backend's job records in the store (src/proxy/slurm/job-records.ts), without a cluster:
// a final record is never written again, records of a gateway from before the store kept them
// (state.dir/slurm/<id>.json and <id>.logs/) are imported once, and over PostgreSQL finishing a job
// is exclusive across gateways (two stores over one database: two gateways).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SlurmJobRecord, SlurmJobRecords } from '../src/proxy/slurm/job-records.js';
import { openStore, type Store } from '../src/store/index.js';
import type { JobStatus } from '../src/wire/index.js';
import { onPostgres, openTestStore, testDatabase } from './support/test-store.js';
import { until } from './support/until.js';

let home: string;
let store: Store;
let records: SlurmJobRecords;

const record = (id: string, o: Partial<SlurmJobRecord> = {}): SlurmJobRecord => ({
  id,
  slurm_job_id: 41,
  user: 'ana',
  posix_user: 'gh-alice',
  uid: 999,
  spec: { name: 'copy', input: 'words', output: `out-${id}`, runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 100, time_limit_s: 60 } },
  granted: { cores: 1, memory_mb: 100, time_limit_s: 60 },
  partitions: [0, 1],
  format: 'csv',
  input_columns: ['word'],
  input_rows: 3,
  input_bytes: 20,
  labels: [],
  dir: `/jobs/${id}`,
  created_at: '2026-12-01T00:00:00.000Z',
  final: null,
  ...o,
});
const ended = (id: string, state: JobStatus['state']) => ({ id, state }) as JobStatus;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-records-'));
  store = await openTestStore(join(home, 'state'));
  records = new SlurmJobRecords(store, 20, '/jobs');
});

afterAll(async () => {
  await store?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('Slurm job records in the store', () => {
  it('keeps a live record up to date, and never writes over a final one', async () => {
    expect(await records.write(record('r-1'))).toBe(true);
    expect(await records.write(record('r-1', { breach: 'widened' }))).toBe(true);
    expect((await records.read('r-1'))?.breach).toBe('widened');
    expect((await records.live()).map((r) => r.id)).toContain('r-1');

    expect(await records.write(record('r-1', { final: ended('r-1', 'succeeded') }))).toBe(true);
    // A gateway that looked before the end writes what it saw then: refused.
    expect(await records.write(record('r-1', { breach: 'late' }))).toBe(false);
    expect(await records.write(record('r-1', { final: ended('r-1', 'failed') }))).toBe(false);
    expect((await records.read('r-1'))?.final?.state).toBe('succeeded');
    expect((await records.live()).map((r) => r.id)).not.toContain('r-1');
    expect(await records.read('../r-1')).toBeNull();
  });

  it('keeps a finished job’s logs as bytes, NUL included', async () => {
    const log = Buffer.from('line one\n\0binary\xff\nlast', 'latin1');
    await records.keepLog('r-1', 1, log);
    expect((await records.keptLog('r-1', 1)).equals(log)).toBe(true);
    expect((await records.keptLog('r-1', 0)).length).toBe(0);
  });

  it('imports the records and kept logs of a gateway from before, once, and sets their folder aside', async () => {
    const dir = join(home, 'state', 'slurm');
    mkdirSync(join(dir, 'old-2.logs'), { recursive: true });
    writeFileSync(join(dir, 'old-1.json'), JSON.stringify(record('old-1')));
    writeFileSync(join(dir, 'old-2.json'), JSON.stringify(record('old-2', { final: ended('old-2', 'failed') })));
    writeFileSync(join(dir, 'old-2.logs', 'log-1.txt'), 'kept before\n');
    writeFileSync(join(dir, 'old-3.json.123.tmp'), '{"half');
    // One the store has already (written since, say, by another gateway) is left as the store has it.
    await records.write(record('old-1', { final: ended('old-1', 'succeeded') }));
    writeFileSync(join(dir, 'old-1.json'), JSON.stringify(record('old-1')));

    expect(await records.importFiles(dir)).toBe(1);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(join(home, 'state', 'slurm.imported', 'old-2.json'))).toBe(true);
    expect((await records.read('old-1'))?.final?.state).toBe('succeeded');
    expect((await records.read('old-2'))?.final?.state).toBe('failed');
    expect((await records.keptLog('old-2', 1)).toString()).toBe('kept before\n');
    expect(await records.read('old-3')).toBeNull();
    expect(await records.importFiles(dir)).toBe(0); // nothing left to import
  });
});

describe.runIf(onPostgres())('finishing a job over a shared store', () => {
  it('lets one gateway at a time finish a given job, and another job meanwhile', async () => {
    const db = testDatabase()!;
    const [one, two] = await Promise.all([0, 1].map(() => openStore({ stateDir: home, url: db.url, password: db.password })));
    try {
      const [a, b] = [new SlurmJobRecords(one!, 20, '/jobs'), new SlurmJobRecords(two!, 20, '/jobs')];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let inside = false;
      const first = a.exclusively('job-x', async () => {
        inside = true;
        await held;
        inside = false;
      });
      await until(() => inside, 10_000, 'the first gateway inside');
      // Another job's finish is not held up.
      expect(await b.exclusively('job-y', async () => 'other')).toBe('other');
      let sawInside: boolean | null = null;
      const second = b.exclusively('job-x', async () => {
        sawInside = inside;
      });
      // The second waits: its session is there, trying, while the first is inside.
      const waiting = async () => (await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where application_name = 'gatehouse slurm finish'`.execute(one!.db)).rows[0]!.n;
      await until(async () => (await waiting()) === 2, 10_000, 'the second gateway trying');
      expect(sawInside).toBeNull();
      release();
      await Promise.all([first, second]);
      expect(sawInside).toBe(false);
      expect(await waiting()).toBe(0); // sessions ended, locks with them
    } finally {
      await Promise.all([one?.close(), two?.close()]);
    }
  });
});
