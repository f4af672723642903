// An attacker's look at dataset reads (GET /v1/datasets/…): a name that climbs out of the data
// root, and links or second names planted in a dataset folder (what a task's uid could leave in an
// output, or someone with write on a namespace) to hand a contractor a pii file under a name they
// may read. Each is refused as a missing dataset, recorded, and never serves a byte of the target.
// A FIFO or a device in place of a partition, and a hard link of a file outside the root, likewise;
// for both readers (data.gateway_reads). And the engine's read routes serve only the gateway's certificate.
import { execFileSync } from 'node:child_process';
import { linkSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { clientCertificate } from '../support/client-cert.js';
import { Stack } from '../support/stack.js';

let stack: Stack;
const tokens: Record<string, string> = {};
const SECRET = 'customer-secret-row';

interface Raw {
  status: number;
  body: string;
}

function get(base: string, path: string, o: { token?: string; cert?: string; key?: string } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    // By host and path, not a URL: a URL would resolve the .. segments before they were ever sent.
    const { hostname, port } = new URL(base);
    const req = request({ hostname, port, path, ca: stack.ca, agent: false, cert: o.cert, key: o.key, headers: o.token ? { authorization: `Bearer ${o.token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const pii = { text: `id,secret\n1,${SECRET}\n`, rows: 1 };
const decoy = { text: `id,secret\n1,${'x'.repeat(SECRET.length)}\n`, rows: 1 }; // the same size as the pii partition

// Both readers (data.gateway_reads): the gateway's own open of data.root and the engine's; each
// refusal below must hold for both, alike.
describe.each(['local', 'engine'] as const)('data.gateway_reads: %s', (reads) => {
  beforeAll(async () => {
    stack = await Stack.start({ config: { data: { gateway_reads: reads } } });
    const base = { format: 'csv' as const, columns: ['id', 'secret'], produced_by: 'test' };
    await writeDataset(stack.dataRoot, 'customers', { ...base, owner: 'platform', labels: ['pii'], partitions: [pii] });
    await writeDataset(stack.dataRoot, 'scratch-bob/result', { ...base, owner: 'bob', labels: [], partitions: [decoy] });
    const target = join(stack.dataRoot, 'customers', 'part-00000.csv');
    // A partition that is a link to the pii file, of exactly the size its manifest lists.
    await writeDataset(stack.dataRoot, 'scratch-dave/linked', { ...base, owner: 'dave', labels: [], partitions: [decoy] });
    rmSync(join(stack.dataRoot, 'scratch-dave/linked/part-00000.csv'));
    symlinkSync(target, join(stack.dataRoot, 'scratch-dave/linked/part-00000.csv'));
    // A second name (hard link) of the pii file: from then on neither name is served (one link each is the rule).
    await writeDataset(stack.dataRoot, 'scratch-dave/hardlinked', { ...base, owner: 'dave', labels: [], partitions: [decoy] });
    rmSync(join(stack.dataRoot, 'scratch-dave/hardlinked/part-00000.csv'));
    linkSync(target, join(stack.dataRoot, 'scratch-dave/hardlinked/part-00000.csv'));
    // A manifest that is a link to the pii dataset's (no labels of its own to deny on).
    await writeDataset(stack.dataRoot, 'scratch-dave/manifest', { ...base, owner: 'dave', labels: [], partitions: [decoy] });
    rmSync(join(stack.dataRoot, 'scratch-dave/manifest/_dataset.json'));
    symlinkSync(join(stack.dataRoot, 'customers', '_dataset.json'), join(stack.dataRoot, 'scratch-dave/manifest/_dataset.json'));
    // A FIFO and a device where a partition file should be (a reader that opened them blindly would
    // hang on the one and read the other), and a second name of a file outside the data root.
    await writeDataset(stack.dataRoot, 'scratch-dave/fifo', { ...base, owner: 'dave', labels: [], partitions: [decoy] });
    rmSync(join(stack.dataRoot, 'scratch-dave/fifo/part-00000.csv'));
    execFileSync('mkfifo', [join(stack.dataRoot, 'scratch-dave/fifo/part-00000.csv')]);
    await writeDataset(stack.dataRoot, 'scratch-dave/device', { ...base, owner: 'dave', labels: [], partitions: [decoy] });
    rmSync(join(stack.dataRoot, 'scratch-dave/device/part-00000.csv'));
    execFileSync('mknod', [join(stack.dataRoot, 'scratch-dave/device/part-00000.csv'), 'c', '1', '3']); // /dev/null's numbers
    const outside = join(stack.home, 'outside.csv');
    writeFileSync(outside, pii.text);
    await writeDataset(stack.dataRoot, 'scratch-dave/outside', { ...base, owner: 'dave', labels: [], partitions: [decoy] });
    rmSync(join(stack.dataRoot, 'scratch-dave/outside/part-00000.csv'));
    linkSync(outside, join(stack.dataRoot, 'scratch-dave/outside/part-00000.csv'));
    // A dataset folder that is a link to the pii dataset, and a namespace that is a link to bob's.
    symlinkSync(join(stack.dataRoot, 'customers'), join(stack.dataRoot, 'scratch-dave/alias'));
    symlinkSync(join(stack.dataRoot, 'scratch-bob'), join(stack.dataRoot, 'scratch-x'));
    for (const user of ['alice', 'dave']) tokens[user] = await stack.login(user);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  const paths = (name: string) => [`/v1/datasets/${name}`, `/v1/datasets/${name}/partitions/0`, `/v1/datasets/${name}/partitions/0?preview=5`];

  describe('planted links and second names', () => {
    it.each([
      ['a partition that is a symbolic link to a pii file', 'scratch-dave/linked'],
      ['a partition that is a hard link of a pii file', 'scratch-dave/hardlinked'],
      ["a manifest that is a symbolic link to a pii dataset's", 'scratch-dave/manifest'],
      ['a dataset folder that is a symbolic link to a pii dataset', 'scratch-dave/alias'],
      ['a FIFO in place of a partition file', 'scratch-dave/fifo'],
      ['a character device in place of a partition file', 'scratch-dave/device'],
      ['a partition that is a hard link of a file outside the data root', 'scratch-dave/outside'],
    ])('%s: the same 404 as a missing dataset, for its namespace owner and for an analyst alike; no byte of the target', async (_what, name) => {
      for (const user of ['dave', 'alice']) {
        for (const path of paths(name)) {
          const answer = await get(stack.url, path, { token: tokens[user] });
          expect(answer.status, `${user} ${path}`).toBe(404);
          expect(JSON.parse(answer.body)).toEqual({ error: 'not_found', message: `no dataset ${name}` });
          expect(answer.body).not.toContain(SECRET);
        }
      }
      const recorded = stack.auditEvents().filter((e) => e.action === 'dataset.authorize' && e.object === `dataset:${name}`);
      expect(recorded).toHaveLength(6);
      expect(recorded.every((e) => e.decision === 'deny')).toBe(true);
    });

    it('refuses a namespace that is a symbolic link to another person’s', async () => {
      for (const path of paths('scratch-x/result')) expect((await get(stack.url, path, { token: tokens.alice })).status, path).toBe(404);
      // The real one reads, so the refusal above is the link's.
      expect((await get(stack.url, '/v1/datasets/scratch-bob/result/partitions/0', { token: tokens.alice })).status).toBe(200);
    });
  });

  describe('names that climb', () => {
    it.each([
      ['/v1/datasets/..%2F..%2Fetc', '../../etc'],
      ['/v1/datasets/../customers', '../customers'],
      ['/v1/datasets/%2e%2e/customers/partitions/0', '../customers'],
      ['/v1/datasets/scratch-dave/..%2F..%2Fcustomers/partitions/0', 'scratch-dave/../../customers'],
      ['/v1/datasets/.hidden', '.hidden'],
    ])('%s is a missing dataset, recorded as a deny naming the problem', async (path, name) => {
      const answer = await get(stack.url, path, { token: tokens.dave });
      expect(answer.status).toBe(404);
      expect(JSON.parse(answer.body)).toEqual({ error: 'not_found', message: `no dataset ${name}` });
      expect(answer.body).not.toContain(SECRET);
      expect([...stack.auditEvents()].reverse().find((e) => e.action === 'dataset.authorize' && e.object === `dataset:${name}`)).toMatchObject({ decision: 'deny', actor: { user: 'dave' } });
    });
  });

  describe("the engine's read routes", () => {
    const gateway = () => ({ cert: readFileSync(join(stack.certsDir, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(stack.certsDir, 'gateway-client.key'), 'utf8') });
    const read = (name: string) => `/dataset/partition?name=${encodeURIComponent(name)}&n=0&etag=${'0'.repeat(64)}&start=0&end=1`;

    it("answer only the gateway's certificate: a user's certificate from the same CA is refused, and none fails the handshake", async () => {
      const manifest = await get(stack.engine.url, '/dataset?name=scratch-bob/result', gateway());
      expect(manifest.status, manifest.body).toBe(200); // the route is there and serves the gateway
      const { etag } = JSON.parse(manifest.body) as { etag: string };
      const path = `/dataset/partition?name=scratch-bob/result&n=0&etag=${etag}&start=0&end=${decoy.text.length - 1}`;
      expect((await get(stack.engine.url, path, gateway())).body).toBe(decoy.text);

      const user = clientCertificate(stack.certsDir, { CN: 'dave', OU: 'users' });
      for (const p of [path, '/dataset?name=scratch-bob/result']) {
        const refused = await get(stack.engine.url, p, user);
        expect(refused.status).toBe(403);
        expect(refused.body).not.toContain('xxxx');
      }
      await expect(get(stack.engine.url, path)).rejects.toThrow();
    });

    it('refuse a climbing name, a planted link and a stale version even from the gateway', async () => {
      const climbing = await get(stack.engine.url, read("../customers"), gateway());
      expect(climbing.status, climbing.body).toBe(404);
      expect((await get(stack.engine.url, '/dataset?name=scratch-dave/linked', gateway())).status).toBe(404);
      const stale = await get(stack.engine.url, read('scratch-bob/result'), gateway());
      expect(stale.status).toBe(409);
      expect(stale.body).not.toContain('xxxx');
    });
  });
});
