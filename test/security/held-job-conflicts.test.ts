
import { describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { heldFrame, type JobSpec, submissionFrame } from '../../src/wire/index.js';
import { gatewayChannel as gatewayChannelTo } from '../support/engine-channel.js';
import { engineSuite } from '../support/engine-suite.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const resources = { cores: 1, memory_mb: 256, time_limit_s: 120 };
const spec = (input: string, output: string, o: Partial<JobSpec> = {}): JobSpec => ({ name: 'c', input, output, runtime: 'python', source: COPY, resources, max_attempts: 1, ...o });

const suite = engineSuite({ engine: { slots: 2 } }, async (data) => {
  for (const name of ['shared/a-read', 'shared/a-other', 'shared/b-replaced', 'shared/b-other']) {
    expect(await writeDataset(data, name, { format: 'csv', columns: ['id'], owner: 'owner', labels: [], produced_by: 'test', partitions: [{ text: 'id\n1\n', rows: 1 }] })).toBe(true);
  }
}, 60_000);

const gatewayChannel = () => gatewayChannelTo(suite);

const prepareFrame = (id: number, token: string, s: JobSpec) => submissionFrame(id, token, JSON.stringify(s), 'prepare');

describe('a held job counts for the conflict rules', () => {
  it('a dataset a held job reads is not overwritten by a job admitted meanwhile', async () => {
    const ch = await gatewayChannel();
    const reader = spec('shared/a-read', 'scratch/reader-1');
    const r = await suite.client.ticket(reader, { user: 'reader' });
    ch.socket.write(prepareFrame(1, r.token, reader));
    expect(await ch.answers()).toMatchObject({ id: 1, status: 200 });
    // The owner replaces what the held job was decided to read, while it is held.
    const writer = spec('shared/a-other', 'shared/a-read', { mode: 'overwrite' });
    const w = await suite.client.ticket(writer, { user: 'owner' });
    expect((await suite.client.post(writer, w.token)).status).toBe(409);
    ch.socket.write(heldFrame(2, 'release', r.job));
    expect(await ch.answers()).toMatchObject({ id: 2, status: 201 });
    ch.socket.destroy();
  });

  it('a dataset a held job overwrites is not read by a job admitted meanwhile', async () => {
    const ch = await gatewayChannel();
    const writer = spec('shared/b-other', 'shared/b-replaced', { mode: 'overwrite' });
    const w = await suite.client.ticket(writer, { user: 'owner' });
    ch.socket.write(prepareFrame(1, w.token, writer));
    expect(await ch.answers()).toMatchObject({ id: 1, status: 200 });
    const reader = spec('shared/b-replaced', 'scratch/reader-2');
    const r = await suite.client.ticket(reader, { user: 'reader' });
    expect((await suite.client.post(reader, r.token)).status).toBe(409);
    ch.socket.write(heldFrame(2, 'drop', w.job));
    expect(await ch.answers()).toMatchObject({ id: 2, status: 200, body: { dropped: true } });
    // Dropped: nothing holds it any more, the reader goes through.
    const again = await suite.client.ticket(reader, { user: 'reader' });
    expect((await suite.client.post(reader, again.token)).status).toBe(201);
    ch.socket.destroy();
  });
});
