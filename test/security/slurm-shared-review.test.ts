// Attacker's and operator's review of the Slurm backend over a shared store (1b34901): job records and
// finished logs in the store, the one-time import of an older gateway's state.dir/slurm, the commit of
// a job's output by whichever gateway sees the end. The gateway (this process) is root; the attacker
// is a less privileged process that could place files near state.dir, a person whose job runs as
// their own account, or whoever can write a row of the store (a database account is not root).
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExisting, openRoot } from '../../src/catalog/index.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { ComputeBackend } from '../../src/proxy/index.js';
import { createSlurmClient, type SlurmClient } from '../../src/proxy/slurm/client.js';
import { keptLogBytes, LOGS_KEPT_BYTES, type SlurmJobRecord, SlurmJobRecords } from '../../src/proxy/slurm/job-records.js';
import { commitSlurmOutput } from '../../src/proxy/slurm/output-commit.js';
import { slurmBackend } from '../../src/proxy/slurm/slurm-backend.js';
import { createSlurmTokenMinter } from '../../src/proxy/slurm/token.js';
import { openStore, type Store } from '../../src/store/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { ROOT } from '../support/gatehouse.js';
import { type SlurmCluster, startSlurm } from '../support/slurm.js';
import { onPostgres, testDatabase } from '../support/test-store.js';
import { until } from '../support/until.js';

let home: string;
let store: Store;
let database: ReturnType<typeof testDatabase>;
const JOBS = '/srv/jobs';
let records: SlurmJobRecords;
/** A uid that is neither root nor the gateway's: the less privileged process. */
const OTHER = 4242;

const record = (id: string, o: Partial<SlurmJobRecord> = {}): SlurmJobRecord => ({
  id,
  slurm_job_id: 41,
  user: 'ana',
  posix_user: 'gh-alice',
  uid: 999,
  spec: { name: 'copy', input: 'words', output: `out-${id}`, runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 100, time_limit_s: 60 } },
  granted: { cores: 1, memory_mb: 100, time_limit_s: 60 },
  partitions: [0],
  format: 'csv',
  input_columns: ['word'],
  input_rows: 3,
  input_bytes: 20,
  labels: [],
  dir: join(JOBS, id),
  created_at: '2026-12-01T00:00:00.000Z',
  final: null,
  ...o,
});

let n = 0;
/** A fresh state.dir/slurm as an older gateway left it (root's, 0700). */
function legacyDir(): string {
  const dir = join(home, `state-${n++}`, 'slurm');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
const keptBytes = async (id: string) => (await store.db.selectFrom('slurm_job_logs').select('content').where('job_id', '=', id).execute()).reduce((t, r) => t + r.content.length, 0);
const importOf = (dir: string) => records.importFiles(dir).then(
  (count) => ({ count, error: null }),
  (err: Error) => ({ count: 0, error: err.message }),
);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-shared-'));
  // Over PostgreSQL, one database that a second store (another gateway) can open too.
  database = testDatabase();
  store = await openStore(database ? { stateDir: join(home, 'store'), url: database.url, password: database.password } : { stateDir: join(home, 'store') });
  records = new SlurmJobRecords(store, 20, JOBS);
});

afterAll(async () => {
  await store?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('the import of state.dir/slurm never follows what a less privileged process placed', () => {
  it('refuses a state.dir/slurm that is a link to a folder of another account', async () => {
    const theirs = join(home, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    writeFileSync(join(theirs, 'link-1.json'), JSON.stringify(record('link-1')));
    chownSync(theirs, OTHER, OTHER);
    chownSync(join(theirs, 'link-1.json'), OTHER, OTHER);
    const dir = legacyDir();
    rmSync(dir, { recursive: true });
    symlinkSync(theirs, dir);
    const { error } = await importOf(dir);
    expect(error).toMatch(/link|not the gateway's own/);
    expect(await records.read('link-1')).toBeNull();
  });

  it('refuses a record file that is a link, or another account’s, or in a folder others may write', async () => {
    const elsewhere = join(home, 'elsewhere.json');
    writeFileSync(elsewhere, JSON.stringify(record('planted-1')));
    const linked = legacyDir();
    symlinkSync(elsewhere, join(linked, 'planted-1.json'));
    expect((await importOf(linked)).error).toMatch(/link/);

    const owned = legacyDir();
    writeFileSync(join(owned, 'planted-2.json'), JSON.stringify(record('planted-2')));
    chownSync(join(owned, 'planted-2.json'), OTHER, OTHER);
    expect((await importOf(owned)).error).toMatch(/not a plain file of the gateway's own/);

    const open = legacyDir();
    writeFileSync(join(open, 'planted-3.json'), JSON.stringify(record('planted-3')));
    chmodSync(open, 0o777); // mkdirSync's mode is masked by the umask
    expect((await importOf(open)).error).toMatch(/not the gateway's own folder/);

    for (const id of ['planted-1', 'planted-2', 'planted-3']) expect(await records.read(id)).toBeNull();
  });

  it('never copies a file a kept log links to into the store (where the job’s owner reads it)', async () => {
    const secret = join(home, 'secret');
    writeFileSync(secret, 'root-only secret\n', { mode: 0o600 });
    const dir = legacyDir();
    writeFileSync(join(dir, 'log-link.json'), JSON.stringify(record('log-link', { final: { id: 'log-link', state: 'succeeded' } as never })));
    mkdirSync(join(dir, 'log-link.logs'));
    symlinkSync(secret, join(dir, 'log-link.logs', 'log-0.txt'));
    expect((await importOf(dir)).error).toMatch(/link/);
    expect((await records.keptLog('log-link', 0)).toString()).not.toContain('secret');
  });

  it('reads no record larger than its bound, and keeps no more of its logs than a finished job’s', async () => {
    const big = legacyDir();
    writeFileSync(join(big, 'huge-1.json'), JSON.stringify(record('huge-1')) + ' '.repeat(5 * 1024 * 1024));
    expect((await importOf(big)).error).toMatch(/larger than/);
    expect(await records.read('huge-1')).toBeNull();

    // One partition's log of 20 MiB, NUL bytes and invalid UTF-8 in it; and a job of 2100 partitions, 4 KiB each
    // (the backend kept at least 4 KiB a partition: 8.4 MiB here).
    const dir = legacyDir();
    writeFileSync(join(dir, 'huge-2.json'), JSON.stringify(record('huge-2', { final: { id: 'huge-2', state: 'failed' } as never })));
    mkdirSync(join(dir, 'huge-2.logs'));
    writeFileSync(join(dir, 'huge-2.logs', 'log-0.txt'), Buffer.alloc(20 * 1024 * 1024, Buffer.from('\0\xff\xfe line\n', 'latin1')));
    const many = Array.from({ length: 2100 }, (_, i) => i);
    writeFileSync(join(dir, 'huge-3.json'), JSON.stringify(record('huge-3', { partitions: many, final: { id: 'huge-3', state: 'failed' } as never })));
    mkdirSync(join(dir, 'huge-3.logs'));
    for (const p of many) writeFileSync(join(dir, 'huge-3.logs', `log-${p}.txt`), Buffer.alloc(4096, 'x'));
    expect(await importOf(dir)).toEqual({ count: 2, error: null });
    expect(await keptBytes('huge-2')).toBeGreaterThan(0);
    expect(await keptBytes('huge-2')).toBeLessThanOrEqual(LOGS_KEPT_BYTES);
    expect((await records.keptLog('huge-2', 0)).subarray(0, 3).equals(Buffer.from('\0\xff\xfe', 'latin1'))).toBe(true);
    expect(await keptBytes('huge-3')).toBeLessThanOrEqual(LOGS_KEPT_BYTES);
    // The same share applies to a job the backend finishes: 8 MiB in all, however many partitions.
    expect(keptLogBytes(10_000) * 10_000).toBeLessThanOrEqual(LOGS_KEPT_BYTES);
  }, 60_000);

  it('refuses a record naming a folder other than its own, root, or another job', async () => {
    const victim = join(home, 'victim');
    const cases: [string, Partial<SlurmJobRecord>][] = [
      ['steer-1', { dir: victim }],
      ['steer-2', { dir: join(JOBS, 'steer-2', '..', '..', 'etc') }],
      ['steer-3', { uid: 0 }],
      ['steer-4', { posix_user: 'root' }],
      ['steer-5', { posix_user: 'x -c y' }],
      ['steer-6', { id: 'another' }],
      ['steer-7', { partitions: [-1] }],
    ];
    for (const [id, o] of cases) {
      const dir = legacyDir();
      writeFileSync(join(dir, `${id}.json`), JSON.stringify(record(id, o)));
      const { error } = await importOf(dir);
      expect(error, `${id}: ${JSON.stringify(o)}`).toMatch(/not a valid record|other than its own|root|another job/);
      expect(await store.db.selectFrom('slurm_jobs').select('id').where('id', '=', id).executeTakeFirst()).toBeUndefined();
    }
  });
});

describe('a row of the store is checked before the backend acts on it', () => {
  it('refuses a tampered record (another folder, root’s uid), and the other live records go on', async () => {
    await records.write(record('row-ok'));
    for (const [id, o] of [
      ['row-1', { dir: '/etc' }],
      ['row-2', { uid: 0 }],
      ['row-3', { posix_user: 'root' }],
    ] as [string, Partial<SlurmJobRecord>][]) {
      await store.db.insertInto('slurm_jobs').values({ id, live: 1, record: JSON.stringify(record(id, o)), updated_at: new Date().toISOString() }).execute();
      await expect(records.read(id), id).rejects.toThrow(/not acted on/);
    }
    const live = (await records.live()).map((r) => r.id);
    expect(live).toContain('row-ok');
    expect(live.filter((id) => id.startsWith('row-') && id !== 'row-ok')).toEqual([]);
  });
});

describe('against the private cluster', () => {
  let slurm: SlurmCluster;
  let client: SlurmClient;
  let dataRoot: string;
  let jobsDir: string;
  let backend: ComputeBackend;

  beforeAll(async () => {
    slurm = await startSlurm();
    dataRoot = join(home, 'data');
    mkdirSync(dataRoot, { mode: 0o700 });
    await writeDataset(dataRoot, 'words', { format: 'csv', columns: ['word'], owner: 'ana', labels: [], produced_by: null, partitions: [['word', 'a', 'b'], ['word', 'c']].map((rows) => ({ text: `${rows.join('\n')}\n`, rows: rows.length - 1 })) });
    const minter = createSlurmTokenMinter({ keyFile: slurm.jwtKeyFile, ttlSeconds: 300 });
    client = createSlurmClient({ url: slurm.restUrl, apiVersion: slurm.apiVersion, timeoutMs: 10_000, minter, accountUids: { min: slurm.user.uid } });
    jobsDir = join(slurm.workDir, 'jobs-shared');
    backend = slurmBackend({ client, url: slurm.restUrl, dataRoot, jobsDir, store, partition: slurm.partition, account: '', statusUser: 'nobody', taskCommand: [process.execPath, join(ROOT, 'bin', 'gatehouse-task.js')], python: 'python3', pollMs: 100 });
  }, 120_000);

  afterAll(async () => {
    await slurm?.stop();
  });

  const spec = (output: string): JobSpec => ({ name: 'shared', input: 'words', output, runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 2, memory_mb: 200, time_limit_s: 120 } });
  const row = async (id: string) => JSON.parse((await store.db.selectFrom('slurm_jobs').select('record').where('id', '=', id).executeTakeFirstOrThrow()).record) as SlurmJobRecord;
  /** Slurm says every task completed (without asking the backend, which would finish the job). */
  const tasksDone = async (id: string) => {
    const r = await row(id);
    await until(
      async () => {
        const tasks = await client.arrayTasks(r.posix_user, r.slurm_job_id!);
        return tasks !== null && tasks.length === r.partitions.length && tasks.every((t) => t.state === 'COMPLETED');
      },
      60_000,
      `job ${id}'s tasks completed`,
      100,
    );
    return r;
  };

  it('never hands another person’s Slurm record (status, kept logs, cancel) to a new job under the same id', async () => {
    // Records are never purged; the gateway's own row of a job may be (a submission no backend took).
    const id = `reused-${Date.now()}`;
    await records.write(record(id, { user: 'bob', posix_user: 'gh-bob', dir: join(jobsDir, id), final: { id, state: 'succeeded' } as never }));
    await records.keepLog(id, 0, Buffer.from("bob's secret\n"));
    const answer = await backend.submit({ id, user: 'ana', posix_user: slurm.user.name, spec: spec('out-reused'), granted: spec('out-reused').resources }).then(
      (b) => `taken as ${b.backendId}`,
      (err: Error) => err.message,
    );
    expect(answer).toMatch(/already the id of another Slurm job/);
  });

  it('a retry after a finisher died between the commit and recording the end sees its own output: succeeded, committed once', async () => {
    const id = `once-${Date.now()}`;
    await backend.submit({ id, user: 'ana', posix_user: slurm.user.name, spec: spec('out-once'), granted: spec('out-once').resources });
    const r = await tasksDone(id);
    // What the gateway that died had done: the output committed, the record still live, the folder there.
    await commitSlurmOutput({ jobId: id, jobDir: r.dir, uid: r.uid!, dataRoot, spec: r.spec, user: r.user, partitions: r.partitions, format: r.format, inputColumns: r.input_columns, labels: r.labels });
    const before = await readExisting(await openRoot(dataRoot), 'out-once');
    const s = await backend.status(id);
    expect(s?.state, s?.error ?? '').toBe('succeeded');
    expect(s?.rows_out).toBe(3);
    const after = await readExisting(await openRoot(dataRoot), 'out-once');
    expect(after?.manifest?.produced_by).toBe(id);
    expect(after?.ino, 'the output was committed again').toBe(before?.ino);
    expect(existsSync(r.dir)).toBe(false);
  }, 90_000);

  it('never removes, reads or commits from a folder a tampered row names', async () => {
    const victim = join(home, 'victim-folder');
    mkdirSync(join(victim, 'out'), { recursive: true, mode: 0o700 });
    writeFileSync(join(victim, 'precious'), 'root-only\n');
    const id = `tamper-${Date.now()}`;
    await backend.submit({ id, user: 'ana', posix_user: slurm.user.name, spec: spec('out-tamper'), granted: spec('out-tamper').resources });
    const r = await tasksDone(id);
    await store.db.updateTable('slurm_jobs').set({ record: JSON.stringify({ ...r, dir: victim }) }).where('id', '=', id).execute();
    const answer = await backend.status(id).then(
      (s) => s?.state,
      (err: Error) => err.message,
    );
    expect(readdirSync(victim).sort(), `the gateway acted on the tampered folder (${answer})`).toEqual(['out', 'precious']);
    expect(answer).toMatch(/not acted on/);
    // The true record back: the job finishes as it should.
    await store.db.updateTable('slurm_jobs').set({ record: JSON.stringify(r) }).where('id', '=', id).execute();
    expect((await backend.status(id))?.state).toBe('succeeded');
  }, 90_000);

  it.runIf(onPostgres())('does not wait on another gateway finishing a job (or frozen while it does): the job is still running there', async () => {
    const other = await openStore({ stateDir: join(home, 'other'), url: database!.url, password: database!.password });
    const id = `elsewhere-${Date.now()}`;
    let release!: () => void;
    let holding: Promise<unknown> | undefined;
    try {
      await backend.submit({ id, user: 'ana', posix_user: slurm.user.name, spec: spec('out-elsewhere'), granted: spec('out-elsewhere').resources });
      await tasksDone(id);
      // Gateway A took the job's finishing lock and is stuck in its commit (frozen, or copying a large output).
      const held = new Promise<void>((resolve) => (release = resolve));
      let inside = false;
      holding = new SlurmJobRecords(other, 20, jobsDir).exclusively(id, async () => {
        inside = true;
        await held;
      });
      await until(() => inside, 10_000, 'gateway A inside');
      // Gateway B (this backend) answers at once, and the leader's reconcile goes on: before, both waited for A.
      expect((await backend.status(id))?.state).toBe('running');
      expect((await backend.active()).map((s) => s.id)).toContain(id);
      expect(await readExisting(await openRoot(dataRoot), 'out-elsewhere')).toBeNull();
      // A died without finishing: its session ends, the lock with it, and B finishes the job.
      release();
      await holding;
      expect((await backend.status(id))?.state).toBe('succeeded');
    } finally {
      release?.();
      await holding?.catch(() => undefined);
      await other.close();
    }
  }, 60_000);
});
