// review36: a held job (prepared on the job channel, not yet released) is a job in flight for the
// engine's conflict rules too. The intake refuses a job that overwrites a dataset another job reads,
// and one that reads a dataset another job writes; a held job is not in the engine's runs yet, so
// before this it was not seen, and both jobs were admitted once released.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { FrameReader, heldFrame, JOB_CHANNEL_PATH, JOB_CHANNEL_PROTOCOL, type JobSpec, readAnswer, submissionFrame } from '../../src/wire/index.js';
import { engineSuite } from '../support/engine-suite.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const resources = { cores: 1, memory_mb: 256, time_limit_s: 120 };
const spec = (input: string, output: string, o: Partial<JobSpec> = {}): JobSpec => ({ name: 'c', input, output, runtime: 'python', source: COPY, resources, max_attempts: 1, ...o });

const suite = engineSuite({ engine: { slots: 2 } }, async (data) => {
  for (const name of ['shared/a-read', 'shared/a-other', 'shared/b-replaced', 'shared/b-other']) {
    expect(await writeDataset(data, name, { format: 'csv', columns: ['id'], owner: 'owner', labels: [], produced_by: 'test', partitions: [{ text: 'id\n1\n', rows: 1 }] })).toBe(true);
  }
}, 60_000);

async function gatewayChannel() {
  return new Promise<{ socket: Socket; answer: () => Promise<{ id: number; status: number; body: Record<string, unknown> }> }>((resolve, reject) => {
    const tls = { cert: readFileSync(join(suite.certs, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(suite.certs, 'gateway-client.key'), 'utf8') };
    const req = request(`${suite.engine.url}${JOB_CHANNEL_PATH}`, { ca: readFileSync(join(suite.certs, 'ca.crt'), 'utf8'), ...tls, agent: false, headers: { connection: 'Upgrade', upgrade: JOB_CHANNEL_PROTOCOL } });
    req.on('error', reject);
    req.on('response', (res) => reject(new Error(`no channel: ${res.statusCode}`)));
    req.on('upgrade', (_res, socket: Socket, head: Buffer) => {
      const reader = new FrameReader(1024 * 1024);
      const queue: Buffer[] = [];
      let wake: (() => void) | null = null;
      const take = (chunk: Buffer) => {
        queue.push(...reader.push(chunk));
        wake?.();
      };
      socket.on('data', take);
      if (head.length > 0) take(head);
      resolve({
        socket,
        answer: async () => {
          while (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const a = readAnswer(queue.shift()!);
          return { id: a.id, status: a.status, body: JSON.parse(a.text) as Record<string, unknown> };
        },
      });
    });
    req.end();
  });
}

const prepareFrame = (id: number, token: string, s: JobSpec) => submissionFrame(id, token, JSON.stringify(s), 'prepare');

describe('a held job counts for the conflict rules', () => {
  it('a dataset a held job reads is not overwritten by a job admitted meanwhile', async () => {
    const ch = await gatewayChannel();
    const reader = spec('shared/a-read', 'scratch/reader-1');
    const r = await suite.client.ticket(reader, { user: 'reader' });
    ch.socket.write(prepareFrame(1, r.token, reader));
    expect(await ch.answer()).toMatchObject({ id: 1, status: 200 });
    // The owner replaces what the held job was decided to read, while it is held.
    const writer = spec('shared/a-other', 'shared/a-read', { mode: 'overwrite' });
    const w = await suite.client.ticket(writer, { user: 'owner' });
    expect((await suite.client.post(writer, w.token)).status).toBe(409);
    ch.socket.write(heldFrame(2, 'release', r.job));
    expect(await ch.answer()).toMatchObject({ id: 2, status: 201 });
    ch.socket.destroy();
  });

  it('a dataset a held job overwrites is not read by a job admitted meanwhile', async () => {
    const ch = await gatewayChannel();
    const writer = spec('shared/b-other', 'shared/b-replaced', { mode: 'overwrite' });
    const w = await suite.client.ticket(writer, { user: 'owner' });
    ch.socket.write(prepareFrame(1, w.token, writer));
    expect(await ch.answer()).toMatchObject({ id: 1, status: 200 });
    const reader = spec('shared/b-replaced', 'scratch/reader-2');
    const r = await suite.client.ticket(reader, { user: 'reader' });
    expect((await suite.client.post(reader, r.token)).status).toBe(409);
    ch.socket.write(heldFrame(2, 'drop', w.job));
    expect(await ch.answer()).toMatchObject({ id: 2, status: 200, body: { dropped: true } });
    // Dropped: nothing holds it any more, the reader goes through.
    const again = await suite.client.ticket(reader, { user: 'reader' });
    expect((await suite.client.post(reader, again.token)).status).toBe(201);
    ch.socket.destroy();
  });
});
