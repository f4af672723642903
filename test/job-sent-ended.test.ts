// A handover whose job ended on another gateway before this one saved it as sent. On a shared store a
// fast job's end, pushed by the backend to every gateway, can be recorded by another one before the
// sending gateway's save (CI9: a COPY job that ran in milliseconds was answered 409 "it does not run").
// A job that ran to its end stands (201, nothing cancelled, its one job.finish the other gateway's);
// a job cancelled or ended by a decision meanwhile, or a record whose end speaks of another copy, is
// still cancelled on the backend: nothing runs that no record holds.
// Two JobBooks over one store, as two gateways over PostgreSQL (the postgres project) or one file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { loadPolicy, type PolicySnapshot } from '../src/policy/index.js';
import { type JobBook, JobRecords } from '../src/proxy/index.js';
import type { JobRecord } from '../src/proxy/job-records.js';
import type { Store } from '../src/store/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { readTrail } from './support/audit-trail.js';
import { TEST_POLICIES } from './support/gatehouse.js';
import { testJobBook } from './support/job-book.js';
import { type TestBackend, testBackend, testDataset } from './support/test-backend.js';
import { openTestStore } from './support/test-store.js';

let home: string;
let store: Store;
let audit: AuditTrail;
let records: JobRecords;
let backend: TestBackend;
/** The gateway that hands the job over, and the one that sees it end first. */
let sender: JobBook;
let other: JobBook;
const cancels: string[] = [];
let jobs = 0;
const log = { info: () => {}, warn: () => {}, error: () => {} };

const gateway = (policy: PolicySnapshot): JobBook => testJobBook({ store, records, audit, policy, backend, log, shared: true });

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'gatehouse-sent-ended-'));
  store = await openTestStore(join(home, 'var'));
  audit = await AuditTrail.open({ dir: join(home, 'audit'), key: loadAuditKey(join(home, 'certs')), checkpointMs: 3_600_000 });
  const policy = await loadPolicy(TEST_POLICIES);
  backend = testBackend('main', [testDataset('words')]);
  const cancel = backend.cancel;
  backend.cancel = (id) => {
    cancels.push(id);
    return cancel(id);
  };
  records = await JobRecords.open(store);
  sender = gateway(policy);
  other = gateway(policy);
});

afterAll(async () => {
  await audit?.close();
  await store?.close();
  rmSync(home, { recursive: true, force: true });
});

/**
 * A job admitted on the sender and handed to the backend, its record still `dispatching` in the store
 * (the save as sent not made yet), live on both gateways. `name: 'keep-running'` holds it running.
 */
async function handedOver(name: 'copy' | 'keep-running'): Promise<{ mine: JobRecord; theirs: JobRecord }> {
  jobs += 1;
  const id = `jsentended${jobs}`;
  const spec: JobSpec = { name, input: 'words', output: `scratch-alice/sent-${jobs}`, runtime: 'command', argv: ['cp', '{input}', '{output}'], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } };
  const now = new Date().toISOString();
  const r: JobRecord = { id, seq: await records.nextSeq(), user: 'alice', groups: ['analysts'], auth_method: 'oidc', posix_user: null, name, input: spec.input, output: spec.output, backend: 'main', backend_id: null, spec, spec_hash: 'h', cores: 1, memory_mb: 256, time_limit_s: 60, state: 'dispatching', held: true, reason: null, error: null, status: null, core_seconds: 0, policy_version: 'v', created_at: now, admitted_at: now, finished_at: null, cancelled_by: null, login_id: null };
  await records.insert(r);
  await sender.restore();
  await other.restore();
  const mine = sender.liveJob(id);
  const theirs = other.liveJob(id);
  if (mine === undefined || theirs === undefined) throw new Error(`${id} is not live on both gateways`);
  expect(await sender.handOver(mine)).toEqual({ outcome: 'sent' });
  expect(mine.backend_id).toBe(id);
  return { mine, theirs };
}

const finishes = (id: string) => readTrail(join(home, 'audit')).filter((e) => e.object === `job:${id}` && e.action === 'job.finish');

describe('a handover whose job ended on another gateway before it was saved as sent', () => {
  it('stands when the job ran to its end first: nothing is cancelled and its one end is the other gateway’s', async () => {
    const { mine, theirs } = await handedOver('copy');
    const ran = await backend.status(mine.id);
    expect(ran?.state).toBe('succeeded');
    await other.observe(theirs, ran!); // the backend's pushed end, recorded over there first
    expect(sender.usage('alice').running_jobs).toBe(1);

    expect(await sender.keepSent(mine)).toBe(true);
    expect(cancels).not.toContain(mine.id);
    expect(mine.state).toBe('succeeded');
    expect((await records.get(mine.id))?.state).toBe('succeeded');
    expect(finishes(mine.id).map((e) => e.decision)).toEqual(['allow']);
    // Not live here any more, and its hold is gone.
    expect(sender.liveJob(mine.id)).toBeUndefined();
    expect(sender.usage('alice').running_jobs).toBe(0);
  });

  it('stands when the job failed on its own: a failure the backend reported is a run too', async () => {
    const { mine, theirs } = await handedOver('copy');
    const ran = await backend.status(mine.id);
    await other.observe(theirs, { ...ran!, state: 'failed', error: 'partition 0: exit 1' });
    expect(await sender.keepSent(mine)).toBe(true);
    expect(cancels).not.toContain(mine.id);
    expect((await records.get(mine.id))?.state).toBe('failed');
  });

  it('cancels the copy when its owner cancelled it through the other gateway meanwhile', async () => {
    const { mine, theirs } = await handedOver('keep-running');
    await other.cancelledBy(theirs, 'alice');
    await other.end(theirs, 'cancelled', null, null); // no backend id there yet: only the record ends
    expect(await sender.keepSent(mine)).toBe(false);
    expect(cancels).toContain(mine.id);
    expect((await backend.status(mine.id))?.state).toBe('cancelled');
    expect(mine.state).toBe('cancelled');
    expect(sender.usage('alice').running_jobs).toBe(0);
  });

  // review38, as the owner who wants an output written with no dataset.write on the trail: a cancel through
  // the other gateway lands between the handover and the save, after the job already ran to its end.
  it('puts the write on the trail when the copy it cancels had already run to its end and written its output', async () => {
    const { mine, theirs } = await handedOver('copy');
    expect((await backend.status(mine.id))?.state).toBe('succeeded'); // ran at once, its output written
    await other.cancelledBy(theirs, 'alice');
    await other.end(theirs, 'cancelled', null, null); // no backend id there yet: only the record ends
    expect(await sender.keepSent(mine)).toBe(false);
    expect(cancels).toContain(mine.id);
    expect((await records.get(mine.id))?.state).toBe('cancelled');
    const writes = readTrail(join(home, 'audit')).filter((e) => e.action === 'dataset.write' && e.details.job === mine.id);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatchObject({ object: `dataset:${mine.output}`, decision: 'allow', actor: { user: 'alice' }, details: { record_state: 'cancelled' } });
  });

  it('cancels the copy when the other gateway ended it by a decision, even after seeing it run', async () => {
    const { mine, theirs } = await handedOver('keep-running');
    const running = await backend.status(mine.id);
    await other.observe(theirs, running!);
    await other.end(theirs, 'failed', 'backend main lost the job', null); // keeps the last (running) status
    expect(await sender.keepSent(mine)).toBe(false);
    expect(cancels).toContain(mine.id);
    expect((await backend.status(mine.id))?.state).toBe('cancelled');
  });

  it('cancels the copy when the end on record is another copy’s (a resend that ran under another backend id)', async () => {
    const { mine, theirs } = await handedOver('keep-running');
    const running = await backend.status(mine.id);
    const finishedAt = new Date().toISOString();
    await other.end(theirs, 'succeeded', null, { ...running!, id: `${mine.id}-resent`, state: 'succeeded', finished_at: finishedAt });
    expect(await sender.keepSent(mine)).toBe(false);
    expect(cancels).toContain(mine.id);
    expect((await backend.status(mine.id))?.state).toBe('cancelled');
  });
});
