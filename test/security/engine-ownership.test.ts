// The engine decides overwrite ownership again, on its own (defence in depth behind the gateway):
// an admission ticket lets its user replace only a dataset whose manifest names that user as its
// owner, or the one owner the gateway's signed `replaces` claim names (an admin's overwrite by
// policy). Checked at submit, and again at commit just before the old dataset is moved away, so a
// dataset that appeared or changed hands while the job ran is never replaced: the job fails, the
// dataset stays as it was and no staged output is left. Refusals are 409 conflict (never
// forbidden: the gateway reads an engine forbidden as a refused ticket).
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { HealthStatus, JobSpec } from '../../src/wire/index.js';
import type { EngineClient } from '../support/engine.js';
import { engineSuite } from '../support/engine-suite.js';
import { until } from '../support/until.js';
import { GATED } from '../support/gated-job.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const rows = { text: 'id,word\n1,a\n2,b\n', rows: 2 };
const resources = { cores: 1, memory_mb: 256, time_limit_s: 120 };

const suite = engineSuite({ engine: { slots: 2 } }, async () => {
  await dataset('words', 'platform', 'test', 'id,word\n1,new\n2,rows\n');
}, 60_000);

const spec = (output: string, o: Partial<JobSpec> = {}): JobSpec => ({ name: 'o', input: 'words', output, mode: 'overwrite', runtime: 'python', source: COPY, resources, max_attempts: 1, ...o });
const manifest = (name: string) => JSON.parse(readFileSync(join(suite.data, name, '_dataset.json'), 'utf8')) as { owner: string | null; produced_by: string };
const part = (name: string) => readFileSync(join(suite.data, name, 'part-00000.csv'), 'utf8');
async function dataset(name: string, owner: string | null, producedBy: string, text = rows.text): Promise<void> {
  expect(await writeDataset(suite.data, name, { format: 'csv', columns: ['id', 'word'], owner, labels: [], produced_by: producedBy, partitions: [{ text, rows: 2 }] }), `${name} written`).toBe(true);
}

async function refusedAtSubmit(s: JobSpec, o: Parameters<EngineClient['ticket']>[1]): Promise<{ error: string; message: string }> {
  const { token } = await suite.client.ticket(s, o);
  const answer = await suite.client.post(s, token);
  expect(answer.status, answer.body).toBe(409);
  return answer.json<{ error: string; message: string }>();
}

describe('the engine refuses an overwrite the ticket does not entitle', () => {
  it("refuses dave's ticket to overwrite alice's dataset at submit: 409 conflict naming both, nothing queued, the dataset untouched", async () => {
    await dataset('scratch/cat_totals', 'alice', 'alice-original');
    const before = readFileSync(join(suite.data, 'scratch/cat_totals', '_dataset.json'), 'utf8');
    const body = await refusedAtSubmit(spec('scratch/cat_totals'), { user: 'dave' });
    expect(body.error).toBe('conflict');
    expect(body.message).toContain('scratch/cat_totals belongs to alice');
    expect(body.message).toContain('dave');
    expect(readFileSync(join(suite.data, 'scratch/cat_totals', '_dataset.json'), 'utf8')).toBe(before);
    expect(part('scratch/cat_totals')).toBe(rows.text);
    const listed = (await suite.client.request('GET', '/jobs')).json<{ jobs: { user: string }[] }>().jobs;
    expect(listed.filter((j) => j.user === 'dave')).toEqual([]);
  });

  it('refuses a replaces claim that names another owner than the manifest, and a dataset nobody owns without a claim for null', async () => {
    await dataset('scratch/carols', 'carol', 'carol-original');
    await dataset('scratch/nobodys', null, 'demo');
    expect((await refusedAtSubmit(spec('scratch/carols'), { user: 'bob', replaces: { owner: 'alice' } })).message).toContain('scratch/carols belongs to carol');
    expect((await refusedAtSubmit(spec('scratch/carols'), { user: 'bob', replaces: { owner: null } })).message).toContain('scratch/carols belongs to carol');
    expect((await refusedAtSubmit(spec('scratch/nobodys'), { user: 'alice' })).message).toContain('scratch/nobodys has no owner');
    expect((await refusedAtSubmit(spec('scratch/nobodys'), { user: 'bob', replaces: { owner: 'alice' } })).message).toContain('scratch/nobodys has no owner');
    expect(manifest('scratch/carols')).toMatchObject({ owner: 'carol', produced_by: 'carol-original' });
    expect(manifest('scratch/nobodys')).toMatchObject({ owner: null, produced_by: 'demo' });
  });

  it("fails dave's job at commit when alice's dataset appeared under its output while it ran: her data and manifest stay, nothing staged is left", async () => {
    const id = await suite.client.submit(spec('scratch/late', { source: GATED }), { user: 'dave' });
    const work = join(suite.data, '.staging', id, 'work');
    await suite.client.waitFor(id, (s) => s.state === 'running');
    await until(async () => (existsSync(work) ? true : undefined), 30_000, "dave's work folder");
    // Between dave's submit (no such dataset then) and his commit, alice's dataset appears.
    await dataset('scratch/late', 'alice', 'alice-late', 'id,word\n1,alices\n2,own\n');
    const before = readFileSync(join(suite.data, 'scratch/late', '_dataset.json'), 'utf8');
    writeFileSync(join(work, 'go'), '');
    const ended = await suite.client.waitFor(id);
    expect(ended.state).toBe('failed');
    expect(ended.error).toContain('scratch/late belongs to alice');
    expect(readFileSync(join(suite.data, 'scratch/late', '_dataset.json'), 'utf8')).toBe(before);
    expect(part('scratch/late')).toBe('id,word\n1,alices\n2,own\n');
    expect(existsSync(join(suite.data, '.staging', id))).toBe(false);
    expect(readdirSync(join(suite.data, 'scratch')).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('fails an admin\'s job at commit when the dataset changed hands after the gateway named its owner', async () => {
    await dataset('scratch/moving', 'alice', 'alice-original');
    const id = await suite.client.submit(spec('scratch/moving', { source: GATED }), { user: 'bob', replaces: { owner: 'alice' } });
    const work = join(suite.data, '.staging', id, 'work');
    await suite.client.waitFor(id, (s) => s.state === 'running');
    await until(async () => (existsSync(work) ? true : undefined), 30_000, "bob's work folder");
    // The dataset changes hands meanwhile (an admin's edit of its manifest): it is carol's now.
    const file = join(suite.data, 'scratch/moving', '_dataset.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), owner: 'carol', produced_by: 'carol-now' }));
    writeFileSync(join(work, 'go'), '');
    const ended = await suite.client.waitFor(id);
    expect(ended.state).toBe('failed');
    expect(ended.error).toContain('scratch/moving belongs to carol');
    expect(manifest('scratch/moving')).toMatchObject({ owner: 'carol', produced_by: 'carol-now' });
  });
});

describe('the engine reads the owner without trusting what others could change', () => {
  it('refuses to replace a dataset whose folder others can write, or whose manifest is a link (even to a manifest naming the user)', async () => {
    await dataset('scratch/open', 'alice', 'alice-original');
    chmodSync(join(suite.data, 'scratch/open'), 0o777);
    expect((await refusedAtSubmit(spec('scratch/open'), { user: 'alice' })).message).toContain('writable by others than the engine');
    await dataset('scratch/linked', 'carol', 'carol-original');
    const elsewhere = join(suite.box.dir, 'alices-manifest.json');
    const file = join(suite.data, 'scratch/linked', '_dataset.json');
    writeFileSync(elsewhere, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), owner: 'alice' }));
    unlinkSync(file);
    symlinkSync(elsewhere, file);
    expect((await refusedAtSubmit(spec('scratch/linked'), { user: 'alice' })).message).toContain('symbolic link');
    expect(readlinkSync(file)).toBe(elsewhere);
    expect(part('scratch/linked')).toBe(rows.text);
  });
});

describe('the engine lets the entitled replace', () => {
  it("lets the owner replace her own dataset, and she stays its owner", async () => {
    await dataset('scratch/alices', 'alice', 'alice-original');
    const id = await suite.client.submit(spec('scratch/alices'), { user: 'alice' });
    const ended = await suite.client.waitFor(id);
    expect(ended.state, ended.error ?? '').toBe('succeeded');
    expect(manifest('scratch/alices')).toMatchObject({ owner: 'alice', produced_by: id });
    expect(part('scratch/alices')).toBe('id,word\n1,new\n2,rows\n');
  });

  it("lets an admin replace someone else's dataset, and a dataset nobody owns, when the ticket's claim names that owner", async () => {
    await dataset('scratch/franks', 'frank', 'frank-original');
    const taken = await suite.client.waitFor(await suite.client.submit(spec('scratch/franks'), { user: 'bob', replaces: { owner: 'frank' } }));
    expect(taken.state, taken.error ?? '').toBe('succeeded');
    expect(manifest('scratch/franks')).toMatchObject({ owner: 'bob', produced_by: taken.id });
    await dataset('scratch/orphan', null, 'demo');
    const orphan = await suite.client.waitFor(await suite.client.submit(spec('scratch/orphan'), { user: 'bob', replaces: { owner: null } }));
    expect(orphan.state, orphan.error ?? '').toBe('succeeded');
    expect(manifest('scratch/orphan')).toMatchObject({ owner: 'bob', produced_by: orphan.id });
  });

  it("keeps the claim across an engine restart: an admin's overwrite interrupted by a restart still replaces the dataset it names", async () => {
    await dataset('scratch/restart', 'erin', 'erin-original');
    const id = await suite.client.submit(spec('scratch/restart', { source: GATED }), { user: 'bob', replaces: { owner: 'erin' } });
    await suite.client.waitFor(id, (s) => s.state === 'running');
    await suite.restart();
    const work = join(suite.data, '.staging', id, 'work');
    await until(async () => (existsSync(work) ? true : undefined), 30_000, "bob's work folder after the restart");
    writeFileSync(join(work, 'go'), '');
    const ended = await suite.client.waitFor(id);
    expect(ended.state, ended.error ?? '').toBe('succeeded');
    expect(manifest('scratch/restart')).toMatchObject({ owner: 'bob', produced_by: id });
  });
});

describe("the engine's /healthz", () => {
  it('says how many worker slots it has', async () => {
    const res = await suite.client.request('GET', '/healthz');
    expect(res.status).toBe(200);
    expect(res.json<HealthStatus>()).toMatchObject({ status: 'ok', service: 'engine', slots: 2 });
  });
});
