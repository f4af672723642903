// What a removal or an upload may leave behind (issue 20's closing note), on the real stack:
// a dataset removal cut short by a crash leaves a `.removing-*` folder in the data root, swept when
// the engine starts (and nothing else with it); an upload whose bytes stop coming gives back the
// user's staging turn after data.upload_idle_timeout (1 s here), its partial file removed, so the
// next upload of that person goes through. Waits are for events (an answer, a start), never a time.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../src/compute/catalog/index.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

let stack: Stack;
const tokens: Record<string, string> = {};
const staging = (user: string, name: string) => join(stack.dataRoot, '.uploads', user, encodeURIComponent(name));

/** A PUT of a partition that sends `first` and then nothing (its request left open); resolves with the answer. */
function stalledPut(user: string, name: string, first: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${stack.url}/v1/datasets/${name}/partitions/0`, { method: 'PUT', ca: stack.ca, agent: false, headers: { authorization: `Bearer ${tokens[user]}`, 'content-type': 'text/csv' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> });
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.write(first);
  });
}

function put(user: string, name: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${stack.url}/v1/datasets/${name}/partitions/0`, { method: 'PUT', ca: stack.ca, agent: false, headers: { authorization: `Bearer ${tokens[user]}`, 'content-type': 'text/csv' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  stack = await Stack.start({ config: { data: { upload_idle_timeout: '1s' } } });
  tokens.alice = await stack.login('alice');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('an upload whose bytes stop coming', () => {
  it('is stopped after data.upload_idle_timeout: 400 naming it, the partial file removed, and the next upload of that person goes through', async () => {
    const stalled = await stalledPut('alice', 'scratch/alice-stalled', 'id,word\n1,a\n');
    expect(stalled.status).toBe(400);
    expect(stalled.json).toMatchObject({ error: 'invalid_request', message: expect.stringContaining('no bytes for 1 s') });
    expect(readdirSync(staging('alice', 'scratch/alice-stalled')).filter((f) => f.endsWith('.partial'))).toEqual([]);
    // The turn is free again: an upload of the same person is staged, and commits.
    expect(await put('alice', 'scratch/alice-next', 'id,word\n1,a\n')).toBe(200);
    expect((await stack.api('/v1/datasets/scratch/alice-next/commit', tokens.alice, { method: 'POST', body: { partitions: 1 } })).status).toBe(200);
  });
});

describe('a removal cut short by a crash', () => {
  it('leaves a .removing-* folder that the next engine start sweeps, and nothing else with it', async () => {
    await writeDataset(stack.dataRoot, 'scratch/kept', { format: 'csv', columns: ['id'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id\n1\n', rows: 1 }] });
    // What removeDataset leaves when killed between its rename and its rm: the dataset, parked.
    const parked = join(stack.dataRoot, '.removing-3f1c2b7e-0000-4000-8000-000000000000');
    mkdirSync(join(parked, 'inner'), { recursive: true });
    writeFileSync(join(parked, '_dataset.json'), '{}');
    writeFileSync(join(parked, 'inner', 'part-00000.csv'), 'id\n1\n');
    // Names a sweep must not take: a dataset and a hidden file that merely look alike.
    await writeDataset(stack.dataRoot, 'removing-report', { format: 'csv', columns: ['id'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id\n1\n', rows: 1 }] });
    writeFileSync(join(stack.dataRoot, '.removing'), 'not a parked removal');
    const before = readdirSync(stack.dataRoot).filter((f) => f !== '.removing-3f1c2b7e-0000-4000-8000-000000000000').sort();

    await stack.engine.stop();
    await stack.startEngine();
    await until(() => (existsSync(parked) ? undefined : true), 30_000, 'the parked removal swept');
    expect(readdirSync(stack.dataRoot).sort()).toEqual(before);
    expect((await stack.api('/v1/datasets/scratch/kept', tokens.alice)).status).toBe(200);
    expect(readFileSync(join(stack.dataRoot, 'removing-report', 'part-00000.csv'), 'utf8')).toBe('id\n1\n');
    expect(readFileSync(join(stack.dataRoot, '.removing'), 'utf8')).toBe('not a parked removal');
  });
});
