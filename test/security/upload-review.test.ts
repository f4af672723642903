// Security review of dataset uploads (issue 20): an attacker's ways past max_storage_mb. The limit
// is the user's staging plus what they own; uploads sent side by side must not each get the whole
// allowance (every one of them checked against the staging as it was when it started).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let stack: Stack;
const tokens: Record<string, string> = {};
const staging = (user: string, name: string) => join(stack.dataRoot, '.uploads', user, encodeURIComponent(name));

/** A chunked PUT the test feeds by hand: `send` more bytes, `end` it, `answer` its status. */
function openPut(user: string, name: string, n: number) {
  let settle!: (v: { status: number; body: string }) => void;
  const answer = new Promise<{ status: number; body: string }>((resolve) => {
    settle = resolve;
  });
  const req = request(`${stack.url}/v1/datasets/${name}/partitions/${n}`, { method: 'PUT', ca: stack.ca, agent: false, headers: { authorization: `Bearer ${tokens[user]}`, 'content-type': 'text/csv' } }, (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => settle({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
  });
  // A refusal may come while the body is still being sent: the socket closing then is expected.
  req.on('error', () => settle({ status: -1, body: '' }));
  return {
    send: (bytes: Buffer) => new Promise<void>((resolve) => (req.write(bytes) ? resolve() : req.once('drain', resolve))),
    /** Buffered here when the other side does not read yet (it may be waiting its turn). */
    write: (bytes: Buffer) => void req.write(bytes),
    end: () => req.end(),
    answer,
  };
}

/** Bytes staged for the user on disk, every upload and partial file included. */
function stagedOnDisk(user: string): number {
  const mine = join(stack.dataRoot, '.uploads', user);
  if (!existsSync(mine)) return 0;
  let total = 0;
  for (const upload of readdirSync(mine)) for (const f of readdirSync(join(mine, upload))) total += statSync(join(mine, upload, f)).size;
  return total;
}

/** What the user's staging takes on disk: every file's and folder's blocks. */
function diskUsed(user: string): number {
  const mine = join(stack.dataRoot, '.uploads', user);
  if (!existsSync(mine)) return 0;
  let total = 0;
  for (const upload of readdirSync(mine)) {
    total += statSync(join(mine, upload)).blocks * 512;
    for (const f of readdirSync(join(mine, upload))) total += statSync(join(mine, upload, f)).blocks * 512;
  }
  return total;
}

beforeAll(async () => {
  // Each test its own person, so what one stages does not decide the other.
  stack = await Stack.start({ users: { gina: ['analysts'], hana: ['analysts'] }, policyLines: ['p2, user:gina, max_storage_mb, 1', 'p2, user:hana, max_storage_mb, 1'] });
  for (const user of ['gina', 'hana']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('max_storage_mb holds against uploads sent side by side', () => {
  it('two partitions of 700 KB streamed at once do not both fit into 1 MB', async () => {
    const head = Buffer.from('x\n');
    const rest = Buffer.alloc(700 * 1024, 'y\n');
    // Each under the limit alone; both started (their partial files there) before either ends.
    // A has started staging (its partial file is there) when B is sent on to the engine (its decision
    // recorded); only then does A send the rest and end, then B.
    const a = openPut('gina', 'scratch/gina-a', 0);
    await a.send(head);
    await until(() => existsSync(staging('gina', 'scratch/gina-a')) && readdirSync(staging('gina', 'scratch/gina-a')).some((f) => f.endsWith('.partial')), 30_000, "A's partial file");
    const b = openPut('gina', 'scratch/gina-b', 0);
    await b.send(head);
    await until(() => stack.auditEvents().some((e) => e.action === 'dataset.authorize' && e.object === 'dataset:scratch/gina-b' && e.decision === 'allow'), 30_000, "B's decision on record");
    await a.send(rest);
    a.end();
    const first = await a.answer;
    b.write(rest);
    b.end();
    const answers = [first, await b.answer];
    // At most one is staged; the other is refused (413), and what stays on disk is within the limit.
    expect(answers.map((x) => x.status).filter((s) => s === 200).length, JSON.stringify(answers)).toBeLessThanOrEqual(1);
    await until(() => !readdirSync(join(stack.dataRoot, '.uploads', 'gina')).some((u) => readdirSync(join(stack.dataRoot, '.uploads', 'gina', u)).some((f) => f.endsWith('.partial'))), 30_000, 'partial files removed');
    expect(stagedOnDisk('gina')).toBeLessThanOrEqual(1024 * 1024);
  }, 60_000);

  it('many tiny partitions count what they take on disk: max_storage_mb bounds the blocks and files, not only the bytes sent', async () => {
    // One byte each, under names of their own: each is a file and a folder, a block or more of disk.
    let refused: { status: number; body: string } | undefined;
    for (let i = 0; i < 400 && refused === undefined; i++) {
      const put = openPut('hana', `scratch/hana-tiny-${i}`, 0);
      await put.send(Buffer.from('x'));
      put.end();
      const answer = await put.answer;
      if (answer.status !== 200) refused = answer;
    }
    expect(refused?.status, 'no tiny upload was ever refused').toBe(413);
    expect(diskUsed('hana')).toBeLessThanOrEqual(1024 * 1024);
  }, 300_000);
});

