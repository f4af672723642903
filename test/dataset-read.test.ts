// Reading datasets through the gateway (issue 20, point 1) on the real stack: the manifest with
// partitions, owner, labels and lineage; a partition streamed byte-exact (read by the gateway or the engine), in whole
// or by Range (so a download resumes), 416 past the end; ?preview=N rows as JSON. Every refusal
// kind (no grant, a label deny, another person's namespace, a missing dataset) answers the same
// 404 and is recorded; every partition served is recorded as dataset.read with its bytes.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { runCli } from './support/gatehouse.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

let stack: Stack;
const tokens: Record<string, string> = {};

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** GET with the caller's token and extra headers; the body as bytes. */
function get(path: string, user: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(`${stack.url}${path}`, { ca: stack.ca, agent: false, headers: { authorization: `Bearer ${tokens[user]}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
const json = <T = Record<string, unknown>>(r: Raw) => JSON.parse(r.body.toString('utf8')) as T;
const file = (name: string, n: number, ext = 'csv') => readFileSync(join(stack.dataRoot, name, `part-${String(n).padStart(5, '0')}.${ext}`));

/** A CSV partition of `rows` rows, some fields quoted (a comma, a quote and a newline inside). */
function csv(from: number, rows: number): { text: string; rows: number } {
  let text = 'id,word,note\n';
  for (let i = from; i < from + rows; i++) text += i % 7 === 0 ? `${i},w${i},"a, ""quoted""\nnote ${i}"\n` : `${i},w${i},plain ${i}\n`;
  return { text, rows };
}

// Both ways a partition reaches the gateway (data.gateway_reads): its own open of data.root, and
// the engine's stream over mTLS; every case below holds for both.
describe.each(['local', 'engine'] as const)('data.gateway_reads: %s', (reads) => {
  beforeAll(async () => {
    stack = await Stack.start({ config: { data: { gateway_reads: reads } } });
    const base = { format: 'csv' as const, columns: ['id', 'word', 'note'], produced_by: 'test' };
    await writeDataset(stack.dataRoot, 'words', { ...base, owner: 'platform', labels: [], produced_by: 'job-words-1', partitions: [csv(0, 20), csv(20, 60_000), { text: 'id,word,note\n', rows: 0 }] });
    await writeDataset(stack.dataRoot, 'customers', { ...base, owner: 'platform', labels: ['pii'], partitions: [csv(0, 5)] });
    await writeDataset(stack.dataRoot, 'scratch-bob/result', { ...base, owner: 'bob', labels: [], partitions: [csv(0, 5)] });
    // dave's own namespace, but the manifest says pii: the label deny holds there too.
    await writeDataset(stack.dataRoot, 'scratch-dave/leak', { ...base, owner: 'dave', labels: ['pii'], partitions: [csv(0, 5)] });
    await writeDataset(stack.dataRoot, 'scratch/events', { format: 'jsonl', columns: ['id', 'kind'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: '{"id":1,"kind":"a"}\nnot json\n{"id":3,"kind":"c"}\n', rows: 3 }] });
    for (const user of ['alice', 'carol', 'dave']) tokens[user] = await stack.login(user);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  describe('GET /v1/datasets/:name', () => {
    it('gives the manifest: partitions with rows and bytes, owner, labels, lineage and the caller’s actions', async () => {
      const answer = await get('/v1/datasets/words', 'alice');
      expect(answer.status, answer.body.toString()).toBe(200);
      const d = json<{ partitions: { index: number; rows: number; bytes: number }[]; owner: string; produced_by: string; labels: string[]; rows: number; bytes: number; actions: string[]; columns: string[]; etag: string }>(answer);
      expect(d.partitions).toEqual([0, 1, 2].map((i) => ({ index: i, rows: [20, 60_000, 0][i], bytes: file('words', i).length })));
      expect(d).toMatchObject({ owner: 'platform', produced_by: 'job-words-1', labels: [], rows: 60_020, columns: ['id', 'word', 'note'], actions: ['read'] });
      expect(d.etag).toMatch(/^[0-9a-f]{64}$/);
      const namespaced = await get('/v1/datasets/scratch-bob/result', 'alice');
      expect(namespaced.status).toBe(200);
      expect(json(namespaced)).toMatchObject({ name: 'scratch-bob/result', owner: 'bob' });
      const decided = stack.auditEvents().filter((e) => e.action === 'dataset.authorize' && e.object === 'dataset:words' && e.actor.user === 'alice');
      expect(decided.at(-1)).toMatchObject({ decision: 'allow', details: { requested: 'read', via: 'GET /v1/datasets/:name' } });
    });
  });

  describe('a partition', () => {
    it('streams whole and byte-exact (a 1.8 MB one too), recorded as dataset.read with the bytes served', async () => {
      for (const n of [0, 1, 2]) {
        const answer = await get(`/v1/datasets/words/partitions/${n}`, 'alice');
        expect(answer.status).toBe(200);
        expect(answer.headers['accept-ranges']).toBe('bytes');
        expect(answer.body.equals(file('words', n))).toBe(true);
      }
      const expected = file('words', 1).length;
      expect(expected).toBeGreaterThan(1_000_000);
      const read = await until(() => stack.auditEvents().find((e) => e.action === 'dataset.read' && e.object === 'dataset:words' && e.details.partition === 1), 10_000, 'dataset.read of partition 1');
      expect(read).toMatchObject({ decision: 'allow', actor: { user: 'alice' }, details: { bytes: expected, complete: true } });
    });

    it('honours Range (206 with Content-Range, a suffix too) and refuses one past the end with 416', async () => {
      const whole = file('words', 1);
      const part = await get('/v1/datasets/words/partitions/1', 'alice', { range: 'bytes=100-1099' });
      expect(part.status).toBe(206);
      expect(part.headers['content-range']).toBe(`bytes 100-1099/${whole.length}`);
      expect(part.body.equals(whole.subarray(100, 1100))).toBe(true);
      const tail = await get('/v1/datasets/words/partitions/1', 'alice', { range: 'bytes=-10' });
      expect(tail.status).toBe(206);
      expect(tail.body.equals(whole.subarray(whole.length - 10))).toBe(true);
      const past = await get('/v1/datasets/words/partitions/1', 'alice', { range: `bytes=${whole.length}-` });
      expect(past.status).toBe(416);
      expect(past.headers['content-range']).toBe(`bytes */${whole.length}`);
      expect(json(past)).toMatchObject({ error: 'range_not_satisfiable', bytes: whole.length });
      const read = await until(() => stack.auditEvents().find((e) => e.action === 'dataset.read' && e.details.range === '100-1099'), 10_000, 'dataset.read of the range');
      expect(read.details).toMatchObject({ partition: 1, bytes: 1000, complete: true });
    });

    it('resumes: a download cut anywhere continues with Range to the same bytes; If-Range of another version gets the whole', async () => {
      const whole = file('words', 1);
      const etag = (await get('/v1/datasets/words/partitions/1', 'alice', { range: 'bytes=0-0' })).headers.etag as string;
      for (const cut of [1, 65_536, whole.length - 1]) {
        const first = await get('/v1/datasets/words/partitions/1', 'alice', { range: `bytes=0-${cut - 1}` });
        const rest = await get('/v1/datasets/words/partitions/1', 'alice', { range: `bytes=${cut}-`, 'if-range': etag });
        expect(rest.status).toBe(206);
        expect(Buffer.concat([first.body, rest.body]).equals(whole)).toBe(true);
      }
      const stale = await get('/v1/datasets/words/partitions/1', 'alice', { range: 'bytes=10-', 'if-range': `"${'0'.repeat(64)}"` });
      expect(stale.status).toBe(200);
      expect(stale.body.equals(whole)).toBe(true);
    });

    it('previews the first N rows as JSON keyed by the CSV header (quoted commas, quotes and newlines kept), recorded', async () => {
      const answer = await get('/v1/datasets/words/partitions/0?preview=8', 'alice');
      expect(answer.status, answer.body.toString()).toBe(200);
      const p = json<{ columns: string[]; rows: Record<string, string>[] }>(answer);
      expect(p.rows).toHaveLength(8);
      expect(p.rows[0]).toEqual({ id: '0', word: 'w0', note: 'a, "quoted"\nnote 0' });
      expect(p.rows[1]).toEqual({ id: '1', word: 'w1', note: 'plain 1' });
      expect(p.rows[7]).toEqual({ id: '7', word: 'w7', note: 'a, "quoted"\nnote 7' });
      // More rows than the partition has: all of them; an empty partition: none.
      expect(json<{ rows: unknown[] }>(await get('/v1/datasets/words/partitions/0?preview=1000', 'alice')).rows).toHaveLength(20);
      expect(json<{ rows: unknown[] }>(await get('/v1/datasets/words/partitions/2?preview=5', 'alice')).rows).toEqual([]);
      expect((await get('/v1/datasets/words/partitions/0?preview=0', 'alice')).status).toBe(400);
      expect((await get('/v1/datasets/words/partitions/0?preview=1001', 'alice')).status).toBe(400);
      const read = await until(() => stack.auditEvents().find((e) => e.action === 'dataset.read' && e.details.preview_rows === 8), 10_000, 'dataset.read of the preview');
      expect(read).toMatchObject({ object: 'dataset:words', details: { partition: 0 } });
    });

    it('previews JSON Lines as the objects the lines hold, a line that is not one as _raw', async () => {
      const answer = await get("/v1/datasets/scratch/events/partitions/0?preview=3", "alice");
      expect(answer.status, answer.body.toString()).toBe(200);
      const p = json<{ rows: unknown[] }>(answer);
      expect(p.rows).toEqual([{ id: 1, kind: 'a' }, { _raw: 'not json' }, { id: 3, kind: 'c' }]);
    });

    it('stops reading when the caller goes away: a download abandoned after its first bytes is recorded as incomplete, with what was served', async () => {
      const size = 40 * 1024 * 1024;
      await writeDataset(stack.dataRoot, 'scratch/big', { format: 'csv', columns: ['x'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: `x\n${'y'.repeat(size - 4)}\n`, rows: 1 }] });
      await new Promise<void>((resolve, reject) => {
        const req = request(`${stack.url}/v1/datasets/scratch/big/partitions/0`, { ca: stack.ca, agent: false, headers: { authorization: `Bearer ${tokens.alice}` } }, (res) => {
          expect(res.statusCode).toBe(200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        req.end();
      });
      const read = await until(() => stack.auditEvents().find((e) => e.action === 'dataset.read' && e.object === 'dataset:scratch/big'), 30_000, 'the abandoned read recorded');
      expect(read.details.complete).toBe(false);
      // The bytes that went out before the caller left, not the partition's size.
      expect(read.details.bytes as number).toBeLessThan(size / 2);
    });

    it('answers 404 for a partition the dataset does not have', async () => {
      expect((await get('/v1/datasets/words/partitions/3', 'alice')).status).toBe(404);
    });
  });

  describe('refusals look like absence', () => {
    const kinds: [string, string, string][] = [
      ['no grant (an auditor)', 'carol', 'words'],
      ['a label deny (a contractor, pii by policy and manifest)', 'dave', 'customers'],
      ["a label deny in the caller's own namespace (the manifest says pii)", 'dave', 'scratch-dave/leak'],
      ["another person's private namespace", 'dave', 'scratch-bob/result'],
      ['a missing dataset', 'alice', 'no-such-dataset'],
      ['a missing dataset in a namespace', 'dave', 'scratch-dave/nothing'],
    ];
    it.each(kinds)('%s: the same 404 on the manifest, a partition and a preview, each recorded as a deny', async (_kind, user, name) => {
      const before = stack.auditEvents().length;
      for (const path of [`/v1/datasets/${name}`, `/v1/datasets/${name}/partitions/0`, `/v1/datasets/${name}/partitions/0?preview=3`]) {
        const answer = await get(path, user, { range: 'bytes=0-10' });
        expect(answer.status, path).toBe(404);
        expect(json(answer), path).toEqual({ error: 'not_found', message: `no dataset ${name}` });
        expect(answer.headers.etag, path).toBeUndefined();
      }
      const denials = stack.auditEvents().slice(before).filter((e) => e.action === 'dataset.authorize' && e.object === `dataset:${name}`);
      expect(denials).toHaveLength(3);
      for (const e of denials) expect(e).toMatchObject({ decision: 'deny', actor: { user }, details: { requested: 'read' } });
      expect(stack.auditEvents().slice(before).some((e) => e.action === 'dataset.read')).toBe(false);
    });
  });

  describe('gatehouse get and preview', () => {
    let home: string;
    /** The CLI as `user`, logged in (a saved login with the stack's token) to the stack's gateway. */
    const cli = (user: string, args: string[]) => {
      const config = join(home, user);
      mkdirSync(join(config, 'gatehouse'), { recursive: true, mode: 0o700 });
      const login = { user, auth_method: 'oidc', access_token: tokens[user], refresh_token: 'unused', expires_at: new Date(Date.now() + 3600_000).toISOString() };
      writeFileSync(join(config, 'gatehouse', 'credentials.json'), JSON.stringify({ [stack.url]: login }), { mode: 0o600 });
      return runCli([...args, '--url', stack.url, '--ca', join(stack.certsDir, 'ca.crt')], { env: { XDG_CONFIG_HOME: config }, timeoutMs: 120_000 });
    };
    const out = (name: string) => join(home, 'out', name);

    beforeAll(() => {
      home = mkdtempSync(join(tmpdir(), 'gatehouse-get-'));
    });
    afterAll(() => rmSync(home, { recursive: true, force: true }));

    it('downloads every partition byte-exact into -o DIR, or those --partitions names', async () => {
      const all = await cli('alice', ['get', 'words', '-o', out('all')]);
      expect(all.code, all.stderr).toBe(0);
      for (const n of [0, 1, 2]) expect(readFileSync(join(out('all'), `part-0000${n}.csv`)).equals(file('words', n))).toBe(true);
      const some = await cli('alice', ['get', 'words', '-o', out('some'), '--partitions', '0,2-2']);
      expect(some.code, some.stderr).toBe(0);
      expect(readdirSync(out('some')).filter((f) => f.startsWith('part-')).sort()).toEqual(['part-00000.csv', 'part-00002.csv']);
      const bad = await cli('alice', ['get', 'words', '-o', out('bad'), '--partitions', '0,5']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('numbered 0 to 2');
    }, 180_000);

    it('continues a partial file with Range to the same bytes, and starts over a partial of another version', async () => {
      const whole = file('words', 1);
      const dir = out('resume');
      expect((await cli('alice', ['get', 'words', '-o', dir, '--partitions', '0'])).code).toBe(0); // names the version
      writeFileSync(join(dir, 'part-00001.csv.partial'), whole.subarray(0, 12_345));
      const resumed = await cli('alice', ['get', 'words', '-o', dir, '--partitions', '1', '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(readFileSync(join(dir, 'part-00001.csv')).equals(whole)).toBe(true);
      expect(existsSync(join(dir, 'part-00001.csv.partial'))).toBe(false);
      expect(JSON.parse(resumed.stdout)).toMatchObject({ bytes: whole.length, fetched: whole.length - 12_345 });
      await until(() => stack.auditEvents().find((e) => e.action === 'dataset.read' && e.details.range === `12345-${whole.length - 1}`), 10_000, 'the resumed range recorded');

      const other = out('other-version');
      mkdirSync(other, { recursive: true });
      writeFileSync(join(other, '.gatehouse-get.json'), JSON.stringify({ name: 'words', etag: 'f'.repeat(64) }));
      writeFileSync(join(other, 'part-00001.csv.partial'), 'zzzz');
      expect((await cli('alice', ['get', 'words', '-o', other, '--partitions', '1'])).code).toBe(0);
      expect(readFileSync(join(other, 'part-00001.csv')).equals(whole)).toBe(true);
    }, 180_000);

    it('previews rows as a table or JSON, and refuses a dataset the caller may not read as a missing one', async () => {
      const json = await cli('alice', ['preview', 'words', '--rows', '3', '--json']);
      expect(json.code, json.stderr).toBe(0);
      expect(JSON.parse(json.stdout).rows).toEqual([
        { id: '0', word: 'w0', note: 'a, "quoted"\nnote 0' },
        { id: '1', word: 'w1', note: 'plain 1' },
        { id: '2', word: 'w2', note: 'plain 2' },
      ]);
      const shown = await cli('alice', ['preview', 'words', '--partition', '1', '--rows', '2']);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(/id\s+word\s+note/);
      expect(shown.stdout).toContain('w21');
      const denied = await cli('dave', ['get', 'customers', '-o', out('denied')]);
      const missing = await cli('dave', ['get', 'nothing-here', '-o', out('missing')]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain('no dataset customers');
      expect(denied.stderr.replace('customers', 'X')).toBe(missing.stderr.replace('nothing-here', 'X'));
    }, 180_000);
  });

  describe('who reads the bytes', () => {
    // Last: the engine is stopped and started again. With it stopped, the gateway's own reads go on
    // (a download, a range, a preview, byte-exact) and a missing dataset still answers 404 as a
    // refused one; through the engine, the read itself is what fails (503).
    it(reads === 'local' ? 'the gateway itself: served byte-exact with the engine stopped; absence and refusal still alike' : 'the engine: with it stopped, a read answers 503 not_ready', async () => {
      await stack.engine.stop();
      try {
        const whole = await get('/v1/datasets/words/partitions/1', 'alice');
        const range = await get('/v1/datasets/words/partitions/1', 'alice', { range: 'bytes=5-99' });
        const preview = await get('/v1/datasets/words/partitions/0?preview=2', 'alice');
        if (reads === 'engine') {
          for (const answer of [whole, range, preview]) expect(json(answer)).toMatchObject({ error: 'not_ready' });
          return;
        }
        expect(whole.body.equals(file('words', 1))).toBe(true);
        expect(range.status).toBe(206);
        expect(range.body.equals(file('words', 1).subarray(5, 100))).toBe(true);
        expect(json<{ rows: unknown[] }>(preview).rows).toHaveLength(2);
        const missing = await get('/v1/datasets/scratch-dave/nothing/partitions/0', 'dave');
        const refused = await get('/v1/datasets/scratch-bob/result/partitions/0', 'dave');
        expect([missing.status, refused.status]).toEqual([404, 404]);
        expect(json(refused)).toEqual({ error: 'not_found', message: 'no dataset scratch-bob/result' });
      } finally {
        await stack.startEngine();
      }
    });
  });
});
