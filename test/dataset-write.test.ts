// Removing and uploading datasets through the gateway (issue 20, points 2 and 3) on the real stack:
// a dataset is its owner's to remove or replace, or an admin's by policy; to whoever may not read
// it either it does not exist (404, as a missing one), one who may read it is told the rule (403);
// a dataset a live job reads cannot be removed (409 with the jobs). Every refusal is recorded as
// dataset.delete / dataset.upload. Links planted under the data root are never followed.
import { existsSync, linkSync, mkdirSync, rmSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { runCli } from './support/gatehouse.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

const SLOW = "import time\ndef process(i, o, ctx):\n    time.sleep(60)\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
const tokens: Record<string, string> = {};
const rows = { text: 'id,word\n1,a\n2,b\n', rows: 2 };
const dataset = (name: string, owner: string | null, labels: string[] = []) => writeDataset(stack.dataRoot, name, { format: 'csv', columns: ['id', 'word'], owner, labels, produced_by: 'test', partitions: [rows] });
const del = (user: string, name: string) => stack.api(`/v1/datasets/${name}`, tokens[user], { method: 'DELETE' });
const there = (name: string) => existsSync(join(stack.dataRoot, name, '_dataset.json'));
/** A partition PUT as text/csv; chunked (no Content-Length) unless `length` is given. */
function put(user: string, name: string, n: number, body: Buffer | string, length?: number): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { authorization: `Bearer ${tokens[user]}`, 'content-type': 'text/csv' };
    if (length !== undefined) headers['content-length'] = length;
    const req = request(`${stack.url}/v1/datasets/${name}/partitions/${n}`, { method: 'PUT', ca: stack.ca, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    const bytes = Buffer.from(body);
    // In pieces, so the body really streams.
    for (let i = 0; i < bytes.length; i += 64 * 1024) req.write(bytes.subarray(i, i + 64 * 1024));
    req.end();
  });
}
const commit = (user: string, name: string, body: unknown) => stack.api(`/v1/datasets/${name}/commit`, tokens[user], { method: 'POST', body });
const staging = (user: string, name: string) => join(stack.dataRoot, '.uploads', user, encodeURIComponent(name));
function csvRows(from: number, count: number): string {
  let text = 'id,word,note\n';
  for (let i = from; i < from + count; i++) text += i % 5 === 0 ? `${i},w${i},"a, ""quoted""\nnote"\n` : `${i},w${i},plain\n`;
  return text;
}
const events = (action: string, object: string) => stack.auditEvents().filter((e) => e.action === action && e.object === object);

beforeAll(async () => {
  stack = await Stack.start({ users: { erin: ['analysts'], gina: ['analysts'] }, policyLines: ['p2, user:gina, max_storage_mb, 1'], config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
  for (const user of ['alice', 'bob', 'dave', 'erin', 'gina']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('DELETE /v1/datasets/:name', () => {
  it('lets the owner remove their dataset: gone, nothing parked left behind, the decision and the outcome recorded', async () => {
    await dataset('scratch/alice-tmp', 'alice');
    const answer = await del('alice', 'scratch/alice-tmp');
    expect(answer.status, answer.body).toBe(200);
    expect(answer.json()).toMatchObject({ name: 'scratch/alice-tmp', removed: true, owner: 'alice' });
    expect(existsSync(join(stack.dataRoot, 'scratch', 'alice-tmp'))).toBe(false);
    expect(readdirSync(stack.dataRoot).filter((n) => n.startsWith('.removing-'))).toEqual([]);
    const recorded = events('dataset.delete', 'dataset:scratch/alice-tmp');
    expect(recorded.map((e) => [e.decision, e.details.outcome ?? null])).toEqual([
      ['allow', null],
      ['allow', 'removed'],
    ]);
    expect((await stack.api('/v1/datasets/scratch/alice-tmp', tokens.alice)).status).toBe(404);
  });

  it("refuses erin (who may read alice's dataset) with 403 and the deciding rule; dave (who may not read it) gets the 404 of a missing one; both recorded, the dataset kept", async () => {
    await dataset('scratch/alice-keep', 'alice');
    const erin = await del('erin', 'scratch/alice-keep');
    expect(erin.status, erin.body).toBe(403);
    expect(erin.json()).toMatchObject({ error: 'forbidden', message: expect.stringContaining('belongs to alice'), policy_version: expect.any(String) });
    expect(erin.json()).toHaveProperty('rule');
    const dave = await del('dave', 'scratch/alice-keep');
    const missing = await del('dave', 'scratch/never-was');
    expect(dave.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(dave.json()).toEqual({ ...missing.json(), message: missing.json<{ message: string }>().message.replace('never-was', 'alice-keep') });
    expect(there('scratch/alice-keep')).toBe(true);
    const recorded = events('dataset.delete', 'dataset:scratch/alice-keep');
    expect(recorded.map((e) => [e.actor.user, e.decision])).toEqual([
      ['erin', 'deny'],
      ['dave', 'deny'],
    ]);
    expect(events('dataset.delete', 'dataset:scratch/never-was')[0]).toMatchObject({ decision: 'deny', actor: { user: 'dave' } });
  });

  it("lets an admin (bob, admin on dataset:* by policy) remove alice's dataset, and one nobody owns", async () => {
    await dataset('scratch/alice-old', 'alice');
    await dataset('scratch/nobodys', null);
    expect((await del('alice', 'scratch/nobodys')).status).toBe(403);
    for (const name of ['scratch/alice-old', 'scratch/nobodys']) {
      const answer = await del('bob', name);
      expect(answer.status, answer.body).toBe(200);
      expect(there(name)).toBe(false);
    }
    expect(events('dataset.delete', 'dataset:scratch/alice-old').at(-1)).toMatchObject({ decision: 'allow', actor: { user: 'bob' }, details: { outcome: 'removed', owner: 'alice' } });
  });

  it('refuses with 409 and the job while a live job reads the dataset, recorded; removes it once the job ended', async () => {
    await dataset('scratch/alice-in', 'alice');
    const spec: JobSpec = { name: 'slow', input: 'scratch/alice-in', output: 'scratch/alice-slow-out', runtime: 'python', source: SLOW, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };
    const submitted = await stack.api('/v1/jobs', tokens.alice, { method: 'POST', body: spec });
    expect(submitted.status, submitted.body).toBe(201);
    const { id } = submitted.json<{ id: string }>();
    await until(async () => ((await stack.api(`/v1/jobs/${id}`, tokens.alice)).json<{ state: string }>().state === 'running' ? true : undefined), 30_000, 'the job running');
    const busy = await del('alice', 'scratch/alice-in');
    expect(busy.status, busy.body).toBe(409);
    expect(busy.json()).toMatchObject({ error: 'conflict', jobs: [id] });
    expect(there('scratch/alice-in')).toBe(true);
    expect(events('dataset.delete', 'dataset:scratch/alice-in').at(-1)).toMatchObject({ decision: 'deny', details: { jobs: [id] } });
    expect((await stack.api(`/v1/jobs/${id}`, tokens.alice, { method: 'DELETE' })).status).toBe(200);
    await until(async () => ((await stack.api(`/v1/jobs/${id}`, tokens.alice)).json<{ state: string }>().state === 'cancelled' ? true : undefined), 30_000, 'the job cancelled');
    expect((await del('alice', 'scratch/alice-in')).status).toBe(200);
  }, 60_000);

  it('follows no link: a link planted inside a dataset is removed as a link (its target kept); a dataset name that is a link is not removed', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'gatehouse-outside-'));
    writeFileSync(join(outside, 'precious'), 'keep me');
    await dataset('scratch/alice-linked', 'alice');
    symlinkSync(outside, join(stack.dataRoot, 'scratch', 'alice-linked', 'extra'));
    expect((await del('alice', 'scratch/alice-linked')).status).toBe(200);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me');
    // A folder elsewhere dressed as alice's dataset, linked into the root: never a dataset, never removed.
    mkdirSync(join(outside, 'fake'));
    writeFileSync(join(outside, 'fake', '_dataset.json'), JSON.stringify({ format: 'csv', columns: ['id'], partitions: [], owner: 'alice', labels: [], created_at: null, produced_by: null }));
    symlinkSync(join(outside, 'fake'), join(stack.dataRoot, 'scratch', 'alice-fake'));
    expect((await del('alice', 'scratch/alice-fake')).status).toBe(404);
    expect(existsSync(join(outside, 'fake', '_dataset.json'))).toBe(true);
  });
});

describe('reading a dataset a job reads (the engine hard-links job inputs)', () => {
  it('serves it while the job runs (the links the engine made are its own), and still refuses a partition with a link made anywhere else', async () => {
    await dataset('scratch/alice-busy', 'alice');
    const spec: JobSpec = { name: 'slow', input: 'scratch/alice-busy', output: 'scratch/alice-busy-out', runtime: 'python', source: SLOW, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 }, max_attempts: 1 };
    const submitted = await stack.api('/v1/jobs', tokens.alice, { method: 'POST', body: spec });
    expect(submitted.status, submitted.body).toBe(201);
    const { id } = submitted.json<{ id: string }>();
    await until(async () => ((await stack.api(`/v1/jobs/${id}`, tokens.alice)).json<{ state: string }>().state === 'running' ? true : undefined), 30_000, 'the job running');
    const part = join(stack.dataRoot, 'scratch', 'alice-busy', 'part-00000.csv');
    const linked = await until(() => ((readdirSync(join(stack.dataRoot, '.staging', id, 'in')).length > 0 ? true : undefined)), 30_000, 'the input linked');
    expect(linked).toBe(true);
    const meta = await stack.api('/v1/datasets/scratch/alice-busy', tokens.alice);
    expect(meta.status, meta.body).toBe(200);
    const bytes = await stack.api('/v1/datasets/scratch/alice-busy/partitions/0', tokens.alice);
    expect(bytes.status).toBe(200);
    expect(bytes.body).toBe(readFileSync(part, 'utf8'));
    // A second name nobody but the engine's job areas may give: refused again, as before.
    const foreign = join(stack.dataRoot, 'scratch', 'alice-busy-link');
    linkSync(part, foreign);
    expect((await stack.api('/v1/datasets/scratch/alice-busy', tokens.alice)).status).toBe(404);
    rmSync(foreign);
    expect((await stack.api('/v1/datasets/scratch/alice-busy', tokens.alice)).status).toBe(200);
    expect((await stack.api(`/v1/jobs/${id}`, tokens.alice, { method: 'DELETE' })).status).toBe(200);
  }, 60_000);
});

describe('uploading a dataset', () => {
  it('stages partitions, commits them as a dataset the caller owns (columns from the header, rows, labels), readable back byte-exact; recorded', async () => {
    const parts = [csvRows(0, 3000), csvRows(3000, 10), 'id,word,note\n'];
    for (const [n, text] of parts.entries()) {
      const answer = await put('alice', 'scratch-alice/mine', n, text);
      expect(answer.status, JSON.stringify(answer.json)).toBe(200);
      expect(answer.json).toMatchObject({ partition: n, bytes: Buffer.byteLength(text) });
    }
    expect((await stack.api('/v1/datasets/scratch-alice/mine', tokens.alice)).status).toBe(404); // staged is not visible
    const done = await commit('alice', 'scratch-alice/mine', { partitions: 3, labels: ['internal'] });
    expect(done.status, done.body).toBe(200);
    expect(done.json()).toMatchObject({ owner: 'alice', labels: ['internal'], columns: ['id', 'word', 'note'], partitions: 3, rows: 3010 });
    const meta = (await stack.api('/v1/datasets/scratch-alice/mine', tokens.alice)).json<{ owner: string; labels: string[]; partitions: { rows: number; bytes: number }[] }>();
    expect(meta).toMatchObject({ owner: 'alice', labels: ['internal'] });
    expect(meta.partitions.map((p) => p.rows)).toEqual([3000, 10, 0]);
    for (const [n, text] of parts.entries()) expect((await stack.api(`/v1/datasets/scratch-alice/mine/partitions/${n}`, tokens.alice)).body).toBe(text);
    expect(existsSync(staging('alice', 'scratch-alice/mine'))).toBe(false);
    expect(events('dataset.upload', 'dataset:scratch-alice/mine').map((e) => e.details.bytes)).toEqual(parts.map((t) => Buffer.byteLength(t)));
    expect(events('dataset.write', 'dataset:scratch-alice/mine').at(-1)).toMatchObject({ decision: 'allow', details: { via: 'upload', labels: ['internal'], rows: 3010 } });
  });

  it('refuses a commit whose partitions differ in header, or miss one', async () => {
    expect((await put('alice', 'scratch-alice/bad', 0, 'a,b\n1,2\n')).status).toBe(200);
    expect((await put('alice', 'scratch-alice/bad', 1, 'a,c\n1,2\n')).status).toBe(200);
    const differ = await commit('alice', 'scratch-alice/bad', { partitions: 2 });
    expect(differ.status).toBe(400);
    expect(differ.json<{ message: string }>().message).toMatch(/partition 1's header \(a,c\) differs from partition 0's \(a,b\)/);
    expect((await put('alice', 'scratch-alice/bad', 1, 'a,b\n3,4\n')).status).toBe(200);
    const missing = await commit('alice', 'scratch-alice/bad', { partitions: 3 });
    expect(missing.json<{ message: string }>().message).toMatch(/partition 2 was not uploaded/);
    expect((await stack.api('/v1/uploads/scratch-alice/bad', tokens.alice, { method: 'DELETE' })).status).toBe(200);
    expect(existsSync(staging('alice', 'scratch-alice/bad'))).toBe(false);
  });

  it("refuses another person's namespace (403 with the rule), a label that cannot open what is closed, and erin's overwrite of alice's dataset (403, naming the owner); all recorded", async () => {
    const foreign = await put('erin', 'scratch-alice/mine', 0, 'a\n1\n');
    expect(foreign.status).toBe(403);
    expect(foreign.json).toMatchObject({ error: 'forbidden' });
    await dataset('scratch/alice-owned', 'alice');
    const erin = await put('erin', 'scratch/alice-owned', 0, 'id,word\n');
    expect(erin.status).toBe(403);
    expect(String(erin.json.message)).toContain('belongs to alice');
    await dataset('scratch-dave/his', 'dave');
    const dave = await put('dave', 'scratch/alice-owned', 0, 'id,word\n');
    expect(dave.status).toBe(403); // contractors may not write scratch/* at all: the namespace decides first
    // A contractor declaring pii on his own namespace: the label closes it.
    expect((await put('dave', 'scratch-dave/pii', 0, 'a\n1\n')).status).toBe(200);
    const pii = await commit('dave', 'scratch-dave/pii', { partitions: 1, labels: ['pii'] });
    expect(pii.status).toBe(403);
    expect(there('scratch-dave/pii')).toBe(false);
    // The commit of erin's overwrite is refused the same way.
    expect((await commit('erin', 'scratch/alice-owned', { partitions: 1 })).status).toBe(403);
    expect(events('dataset.upload', 'dataset:scratch-alice/mine').filter((e) => e.decision === 'deny' && e.actor.user === 'erin')).toHaveLength(1);
    expect(events('dataset.upload', 'dataset:scratch/alice-owned').map((e) => [e.actor.user, e.decision])).toEqual([
      ['erin', 'deny'],
      ['dave', 'deny'],
    ]);
    expect(events('dataset.authorize', 'dataset:scratch-dave/pii').at(-1)).toMatchObject({ decision: 'deny', actor: { user: 'dave' } });
    // The owner replaces her own.
    expect((await put('alice', 'scratch/alice-owned', 0, 'id,word\n9,z\n')).status).toBe(200);
    const replaced = await commit('alice', 'scratch/alice-owned', { partitions: 1 });
    expect(replaced.status, replaced.body).toBe(200);
    expect(replaced.json()).toMatchObject({ replaced: true, rows: 1 });
  });

  it('refuses the upload that would cross max_storage_mb (declared, or while streaming), with the limit and its line, removing the partial file', async () => {
    const half = Buffer.alloc(600 * 1024, 'x\n');
    const first = await put('gina', 'scratch/gina-big', 0, Buffer.concat([Buffer.from('x\n'), half]));
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    const streamed = await put('gina', 'scratch/gina-big', 1, Buffer.concat([Buffer.from('x\n'), half]));
    expect(streamed.status, JSON.stringify(streamed.json)).toBe(413);
    expect(streamed.json).toMatchObject({ error: 'payload_too_large', limit: 'max_storage_mb', max: 1, line: expect.stringContaining('p2, user:gina, max_storage_mb, 1') });
    const declared = await put('gina', 'scratch/gina-big', 2, Buffer.concat([Buffer.from('x\n'), half]), half.length + 2);
    expect(declared.status, JSON.stringify(declared.json)).toBe(413);
    expect(readdirSync(staging('gina', 'scratch/gina-big'))).toEqual(['part-00000.csv']);
    expect(events('dataset.upload', 'dataset:scratch/gina-big').filter((e) => e.decision === 'deny').map((e) => e.details.limit)).toEqual(['max_storage_mb', 'max_storage_mb']);
  });

  it('leaves nothing visible when the request is cut mid-stream: no dataset, no partial file', async () => {
    await new Promise<void>((resolve) => {
      const req = request(`${stack.url}/v1/datasets/scratch/alice-cut/partitions/0`, { method: 'PUT', ca: stack.ca, agent: false, headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'text/csv' } });
      req.on('error', () => resolve());
      req.write(csvRows(0, 5000));
      until(() => {
        const dir = staging('alice', 'scratch/alice-cut');
        return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.partial')) ? true : undefined;
      }, 30_000, 'the partial file').then(() => {
        req.destroy();
        resolve();
      });
    });
    await until(() => (readdirSync(staging('alice', 'scratch/alice-cut')).length === 0 ? true : undefined), 30_000, 'the partial file removed');
    expect(existsSync(join(stack.dataRoot, 'scratch', 'alice-cut'))).toBe(false);
    expect((await stack.api('/v1/datasets/scratch/alice-cut', tokens.alice)).status).toBe(404);
    expect((await commit('alice', 'scratch/alice-cut', { partitions: 1 })).status).toBe(400);
  });

  it('follows no link planted in staging: a partition name linked elsewhere is replaced, not written through; a linked staging folder is refused', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'gatehouse-outside-'));
    writeFileSync(join(outside, 'target'), 'keep me');
    expect((await put('alice', 'scratch/alice-link', 0, 'a\n1\n')).status).toBe(200);
    const dir = staging('alice', 'scratch/alice-link');
    rmSync(join(dir, 'part-00000.csv'));
    symlinkSync(join(outside, 'target'), join(dir, 'part-00000.csv'));
    expect((await put('alice', 'scratch/alice-link', 0, 'a\n2\n')).status).toBe(200);
    expect(readFileSync(join(outside, 'target'), 'utf8')).toBe('keep me');
    // A link in place of the whole staging folder: refused, nothing written where it leads.
    rmSync(dir, { recursive: true });
    symlinkSync(outside, dir);
    expect((await put('alice', 'scratch/alice-link', 1, 'a\n3\n')).status).toBe(404);
    expect(readdirSync(outside)).toEqual(['target']);
  });
});

describe('gatehouse put, rm and datasets', () => {
  /** The CLI as `user`, logged in (a saved login with the stack's token) to the stack's gateway. */
  const cli = (home: string, user: string, args: string[]) => {
    const config = join(home, user);
    mkdirSync(join(config, 'gatehouse'), { recursive: true, mode: 0o700 });
    const login = { user, auth_method: 'oidc', access_token: tokens[user], refresh_token: 'unused', expires_at: new Date(Date.now() + 3600_000).toISOString() };
    writeFileSync(join(config, 'gatehouse', 'credentials.json'), JSON.stringify({ [stack.url]: login }), { mode: 0o600 });
    return runCli([...args, '--url', stack.url, '--ca', join(stack.certsDir, 'ca.crt')], { env: { XDG_CONFIG_HOME: config }, timeoutMs: 120_000 });
  };

  it('uploads DIR/*.csv as partitions in name order and commits, lists it with owner, size and where one may write, and removes it', async () => {
    const home = mkdtempSync(join(tmpdir(), 'gatehouse-put-'));
    const dir = join(home, 'data');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.csv'), csvRows(0, 100));
    writeFileSync(join(dir, 'b.csv'), csvRows(100, 50));
    writeFileSync(join(dir, 'notes.txt'), 'not a partition');
    const put = await cli(home, 'alice', ['put', dir, 'scratch-alice/cli', '--labels', 'internal']);
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toContain('scratch-alice/cli: 2 partition(s), 150 rows');
    expect((await stack.api('/v1/datasets/scratch-alice/cli/partitions/1', tokens.alice)).body).toBe(csvRows(100, 50));
    const listed = await cli(home, 'alice', ['datasets']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/scratch-alice\/cli\s+read,write\s+csv\s+2\s+150\s+\S+.*internal\s+alice/);
    expect(listed.stderr, listed.stdout).toContain('you may write: scratch-alice/*, scratch/*');
    const refused = await cli(home, 'erin', ['rm', 'scratch-alice/cli']);
    expect(refused.code).toBe(4);
    const removed = await cli(home, 'alice', ['rm', 'scratch-alice/cli']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('removed scratch-alice/cli');
    expect(there('scratch-alice/cli')).toBe(false);
    // A folder without partitions is a usage error; a refused upload leaves nothing staged.
    expect((await cli(home, 'alice', ['put', join(home, 'nothing-here'), 'scratch-alice/x'])).code).toBe(2);
    const foreign = await cli(home, 'erin', ['put', dir, 'scratch-alice/erins']);
    expect(foreign.code).toBe(4);
    expect(existsSync(staging('erin', 'scratch-alice/erins'))).toBe(false);
    rmSync(home, { recursive: true, force: true });
  }, 240_000);
});
