// A job's start is on the trail once, however the gateway's views of it interleave. A status read
// that sees the job ended can be waiting on its record's write while a poll (the reconciler's older
// listing) sees it running: the end had decided "never seen running" before its write and recorded
// the start a second time. The soak found it on PostgreSQL, whose round trips open that window.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { loadPolicy, type PolicySnapshot } from '../src/policy/index.js';
import { type JobBook, JobRecords } from '../src/proxy/index.js';
import type { JobRecord } from '../src/proxy/job-records.js';
import type { Store } from '../src/store/index.js';
import type { JobSpec, JobStatus } from '../src/wire/index.js';
import { readTrail } from './support/audit-trail.js';
import { TEST_POLICIES } from './support/gatehouse.js';
import { testJobBook } from './support/job-book.js';
import { testBackend, testDataset } from './support/test-backend.js';
import { openTestStore } from './support/test-store.js';

let home: string;
let store: Store;
let audit: AuditTrail;
let records: JobRecords;
let book: JobBook;
let jobs = 0;
const errors: string[] = [];
const log = { info: () => {}, warn: () => {}, error: (o: object, m: string) => errors.push(`${m} ${JSON.stringify(o)}`) };

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-start-once-'));
  store = await openTestStore(join(home, 'var'));
  audit = await AuditTrail.open({ dir: join(home, 'audit'), key: loadAuditKey(join(home, 'certs')), checkpointMs: 3_600_000 });
  const policy: PolicySnapshot = await loadPolicy(TEST_POLICIES);
  const backend = testBackend('main', [testDataset('words')]);
  records = await JobRecords.open(store);
  book = testJobBook({ store, records, audit, policy, backend, log, shared: store.dialect === 'postgres' });
});

afterAll(async () => {
  await audit?.close();
  await store?.close();
  rmSync(home, { recursive: true, force: true });
});

/** A job handed to its backend and not yet seen started there: live in the book, as after a restart. */
async function queuedJob(): Promise<JobRecord> {
  jobs += 1;
  const id = `jstartonce${jobs}`;
  const spec: JobSpec = { name: 'copy', input: 'words', output: `scratch-alice/once-${jobs}`, runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } };
  const now = new Date().toISOString();
  const r: JobRecord = { id, seq: await records.nextSeq(), user: 'alice', groups: ['analysts'], auth_method: 'oidc', posix_user: null, name: spec.name, input: spec.input, output: spec.output, backend: 'main', backend_id: id, spec, spec_hash: 'h', cores: 1, memory_mb: 256, time_limit_s: 60, state: 'queued', held: true, reason: null, error: null, status: null, core_seconds: 0, policy_version: 'v', created_at: now, admitted_at: now, finished_at: null, cancelled_by: null, login_id: null };
  await records.insert(r);
  await book.restore();
  const live = book.liveJob(id);
  if (live === undefined) throw new Error(`${id} is not live in the book`);
  return live;
}

const status = (r: JobRecord, state: 'running' | 'succeeded'): JobStatus => {
  const started = new Date(Date.now() - 1000).toISOString();
  const done = state === 'succeeded';
  return {
    id: r.id,
    name: r.name,
    user: r.user,
    state,
    input: r.input,
    output: r.output,
    runtime: 'command',
    resources: { cores: 1, memory_mb: 256, time_limit_s: 60 },
    partitions: { total: 1, done: done ? 1 : 0, failed: 0, running: done ? 0 : 1 },
    workers: done ? 0 : 1,
    rows_in: done ? 3 : 0,
    rows_out: done ? 3 : 0,
    bytes_in: 24,
    bytes_out: done ? 24 : 0,
    created_at: started,
    started_at: started,
    finished_at: done ? new Date().toISOString() : null,
    core_seconds: 0.5,
    attempts: 1,
    error: null,
    reason: null,
  };
};

const eventsOf = (r: JobRecord) => readTrail(join(home, 'audit')).filter((e) => e.object === `job:${r.id}`).map((e) => e.action);

describe('a job seen started and ended at once', () => {
  it('records job.start once when the end is on its way to the records as a poll sees the job running', async () => {
    const r = await queuedJob();
    // Both at once, as a status read and the reconciler do: neither waits for the other.
    await Promise.all([book.end(r, 'succeeded', null, status(r, 'succeeded')), book.observe(r, status(r, 'running'))]);
    expect(eventsOf(r)).toEqual(['job.start', 'job.finish']);
    expect((await records.get(r.id))?.state).toBe('succeeded');
  });

  it('records job.start once when the poll sees it running first', async () => {
    const r = await queuedJob();
    await Promise.all([book.observe(r, status(r, 'running')), book.end(r, 'succeeded', null, status(r, 'succeeded'))]);
    expect(eventsOf(r)).toEqual(['job.start', 'job.finish']);
  });

  it('records job.start for a job that ended before any poll saw it run', async () => {
    const r = await queuedJob();
    await book.end(r, 'succeeded', null, status(r, 'succeeded'));
    expect(eventsOf(r)).toEqual(['job.start', 'job.finish']);
    expect(errors).toEqual([]);
  });
});
