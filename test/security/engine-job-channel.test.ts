// The job channel (src/wire/job-channel.ts) is a second door into the engine's intake, so it is
// tried as an attacker would: without the gateway's certificate it does not open; a frame that
// cannot be read closes it before anything of it reaches the intake; a frame's ticket is checked as
// POST /jobs checks it (signature, audience, replay, the spec it was issued for); interleaved
// submissions get their own answers. The gateway's own client is seen using it once it is open.
// The held handover (prepare, then release once job.submit is durable) is tried the same way: a
// held job is nothing the engine runs or stores, only its own connection releases it, once.
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { engineClient, type EngineClient as GatewayEngineClient } from '../../src/proxy/engine-client.js';
import { heldFrame, type JobSpec, jobSpecHash, readTlsMaterial, submissionFrame } from '../../src/wire/index.js';
import { clientCertificate } from '../support/client-cert.js';
import { engineSuite } from '../support/engine-suite.js';
import { gatewayChannel as gatewayChannelTo, openChannel as openChannelTo } from '../support/engine-channel.js';
import { until } from '../support/until.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const resources = { cores: 1, memory_mb: 256, time_limit_s: 120 };
const spec = (output: string, o: Partial<JobSpec> = {}): JobSpec => ({ name: 'c', input: 'words', output, runtime: 'python', source: COPY, resources, max_attempts: 1, ...o });

const suite = engineSuite({ engine: { slots: 2 } }, async (data) => {
  expect(await writeDataset(data, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] })).toBe(true);
}, 60_000);

const openChannel = (tls: { cert?: string; key?: string }) => openChannelTo(suite, tls);
const gatewayChannel = () => gatewayChannelTo(suite);

const jobsOf = async (user: string) => (await suite.client.request('GET', `/jobs?user=${user}`)).json<{ jobs: { id: string }[] }>().jobs;

/** A compact JWS as the gateway's, with claims of our choosing, signed with `key`. */
function ticketWith(claims: Record<string, unknown>, key = suite.client.gatewayKey): string {
  const iat = Math.floor(Date.now() / 1000);
  const head = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'gatehouse-admission+jwt' })).toString('base64url');
  const body = Buffer.from(JSON.stringify({ iss: 'gatehouse-gateway', aud: 'gatehouse-engine', jti: randomUUID(), iat, exp: iat + 60, ...claims })).toString('base64url');
  return `${head}.${body}.${sign(null, Buffer.from(`${head}.${body}`), key).toString('base64url')}`;
}

describe('who may open the job channel', () => {
  it('a client without a certificate from our CA does not get past the handshake', async () => {
    expect(await openChannel({})).toHaveProperty('error');
  });

  it("a certificate from our CA that is not the gateway's (a user's) is refused: 403, no channel", async () => {
    expect(await openChannel(clientCertificate(suite.certs, { CN: 'alice', OU: 'users' }))).toEqual({ status: 403 });
  });

  it('another upgrade, or another path, is not the channel', async () => {
    const tls = { cert: readFileSync(join(suite.certs, 'gateway-client.crt'), 'utf8'), key: readFileSync(join(suite.certs, 'gateway-client.key'), 'utf8') };
    const other = await new Promise<number>((resolve) => {
      const req = request(`${suite.engine.url}/jobs`, { ca: readFileSync(join(suite.certs, 'ca.crt'), 'utf8'), ...tls, agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', () => resolve(-1));
      req.end();
    });
    expect(other).toBe(404);
  });
});

describe('frames the engine cannot read close the channel before the intake', () => {
  it('an oversized frame: closed with an error (answer 0), from its length alone; a good frame in the same write is not submitted either', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/over-1');
    const { token } = await suite.client.ticket(s, { user: 'mallory-over' });
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(64 * 1024 * 1024);
    ch.socket.write(Buffer.concat([submissionFrame(1, token, JSON.stringify(s)), huge]));
    const a = await ch.answers();
    expect(a).toMatchObject({ id: 0, status: 400, body: { error: 'invalid_request' } });
    expect(String(a.body.message)).toMatch(/over the channel's limit/);
    await ch.closed;
    expect(await jobsOf('mallory-over')).toEqual([]);
  });

  it('a spec that is not JSON, or a frame whose ticket length runs past its end: closed, nothing queued', async () => {
    for (const bad of [
      submissionFrame(1, 'x', '{"name": "c", '),
      (() => {
        const f = submissionFrame(1, 'abc', '{}');
        f.writeUInt16BE(5000, 9); // the ticket's length, now past the frame's end
        return f;
      })(),
    ]) {
      const ch = await gatewayChannel();
      ch.socket.write(bad);
      expect(await ch.answers()).toMatchObject({ id: 0, status: 400 });
      await ch.closed;
    }
    expect(await jobsOf('c')).toEqual([]);
  });

  it('a spec the schema refuses is answered as POST /jobs answers it (400, the same field), and the channel stays open', async () => {
    const ch = await gatewayChannel();
    const s = { ...spec('scratch/typed'), resources: { ...resources, cores: '1' } } as unknown as JobSpec;
    const { token } = await suite.client.ticket(s);
    const viaHttp = await suite.client.post(s, token);
    ch.socket.write(submissionFrame(5, token, JSON.stringify(s)));
    const a = await ch.answers();
    expect(a).toEqual({ id: 5, status: viaHttp.status, body: viaHttp.json() });
    expect(a.status).toBe(400);
    const ok = spec('scratch/after-typed');
    ch.socket.write(submissionFrame(6, (await suite.client.ticket(ok, { user: 'typed' })).token, JSON.stringify(ok)));
    expect(await ch.answers()).toMatchObject({ id: 6, status: 201 });
    ch.socket.destroy();
  });

  it('a spec with a __proto__ key is refused as POST /jobs refuses it (400), nothing queued', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/proto');
    const text = JSON.stringify(s).replace('{', '{"__proto__":{"polluted":true},');
    const { token } = await suite.client.ticket(s, { user: 'proto' });
    const viaHttp = await suite.client.request('POST', '/jobs', { headers: { 'content-type': 'application/json', 'gatehouse-admission': token }, body: text });
    ch.socket.write(submissionFrame(7, token, text));
    const a = await ch.answers();
    expect(viaHttp.status).toBe(400);
    expect(a).toMatchObject({ id: 7, status: 400, body: { error: viaHttp.json().error } });
    expect(await jobsOf('proto')).toEqual([]);
    ch.socket.destroy();
  });
});

describe("a frame's ticket is checked as POST /jobs checks it", () => {
  it('a replayed ticket: the first frame admits the job, the second is refused 403 replayed', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/replay');
    const { job, token } = await suite.client.ticket(s, { user: 'replayer' });
    ch.socket.write(submissionFrame(1, token, JSON.stringify(s)));
    expect(await ch.answers()).toEqual({ id: 1, status: 201, body: { id: job, state: expect.any(String) } });
    ch.socket.write(submissionFrame(2, token, JSON.stringify(s)));
    const again = await ch.answers();
    expect(again.id).toBe(2);
    expect([403, 409]).toContain(again.status); // the job id exists (409), or the ticket is spent (403): never a second job
    expect((await jobsOf('replayer')).map((j) => j.id)).toEqual([job]);
    // The same ticket over HTTP after the channel admitted it: refused too.
    expect((await suite.client.post(s, token)).status).not.toBe(201);
    ch.socket.destroy();
  });

  it('a ticket for another audience, signed by another key, for another spec, or none: 403/401 with the reason, nothing queued', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/forged');
    const claims = { sub: 'forger', job: `j-${randomUUID().slice(0, 8)}`, spec: jobSpecHash(s), granted: resources };
    const other = generateKeyPairSync('ed25519').privateKey;
    const cases: [string, number, string | undefined][] = [
      [ticketWith({ ...claims, aud: 'someone-else' }), 403, 'malformed'],
      [ticketWith(claims, other), 403, 'foreign'],
      [ticketWith({ ...claims, spec: jobSpecHash(spec('scratch/other')) }), 403, 'mismatch'],
      [ticketWith({ ...claims, granted: { ...resources, cores: 64 } }), 403, 'mismatch'],
      ['', 401, 'missing'],
    ];
    let id = 10;
    for (const [token, status, problem] of cases) {
      ch.socket.write(submissionFrame(++id, token, JSON.stringify(s)));
      const a = await ch.answers();
      expect(a, token).toMatchObject({ id, status, body: { ticket: problem } });
    }
    expect(await jobsOf('forger')).toEqual([]);
    ch.socket.destroy();
  });

  it('interleaved submissions in one write each get their own answer', async () => {
    const ch = await gatewayChannel();
    const good = spec('scratch/inter-good');
    const { job, token } = await suite.client.ticket(good, { user: 'inter' });
    const bad = spec('scratch/inter-bad');
    const frames = [submissionFrame(41, token, JSON.stringify(good)), submissionFrame(42, ticketWith({ sub: 'inter', job: 'j-x', spec: jobSpecHash(bad), granted: resources }, generateKeyPairSync('ed25519').privateKey), JSON.stringify(bad))];
    ch.socket.write(Buffer.concat(frames));
    const answers = [await ch.answers(), await ch.answers()].sort((a, b) => a.id - b.id);
    expect(answers[0]).toMatchObject({ id: 41, status: 201, body: { id: job } });
    expect(answers[1]).toMatchObject({ id: 42, status: 403, body: { ticket: 'foreign' } });
    ch.socket.destroy();
  });
});

const prepareFrame = (id: number, token: string, s: JobSpec) => submissionFrame(id, token, JSON.stringify(s), 'prepare');
const engineJob = async (id: string) => (await suite.client.request('GET', `/jobs/${id}`)).status;

describe('the held handover: prepare, then release', () => {
  it('a prepared job is checked but neither stored nor run until its release; the release answers as POST /jobs', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/held-1');
    const { job, token } = await suite.client.ticket(s, { user: 'holder' });
    ch.socket.write(prepareFrame(1, token, s));
    expect(await ch.answers()).toEqual({ id: 1, status: 200, body: { id: job, state: 'held' } });
    // Held: the engine knows no such job, lists none, and has made nothing for it.
    expect(await engineJob(job)).toBe(404);
    expect(await jobsOf('holder')).toEqual([]);
    expect(existsSync(join(suite.box.dir, 'data', 'scratch', 'held-1'))).toBe(false);
    ch.socket.write(heldFrame(2, 'release', job));
    expect(await ch.answers()).toEqual({ id: 2, status: 201, body: { id: job, state: expect.any(String) } });
    expect((await jobsOf('holder')).map((j) => j.id)).toEqual([job]);
    // A second release is harmless: nothing is held any more, and there is still one job.
    ch.socket.write(heldFrame(3, 'release', job));
    expect(await ch.answers()).toMatchObject({ id: 3, status: 404, body: { error: 'not_found', held: false } });
    expect((await jobsOf('holder')).map((j) => j.id)).toEqual([job]);
    ch.socket.destroy();
  });

  it('a prepare is refused as a submission would be (a forged ticket, a missing input), and nothing is held to release', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/held-forged');
    const forged = ticketWith({ sub: 'holder2', job: 'j-forged', spec: jobSpecHash(s), granted: resources }, generateKeyPairSync('ed25519').privateKey);
    ch.socket.write(prepareFrame(1, forged, s));
    expect(await ch.answers()).toMatchObject({ id: 1, status: 403, body: { ticket: 'foreign' } });
    ch.socket.write(heldFrame(2, 'release', 'j-forged'));
    expect(await ch.answers()).toMatchObject({ id: 2, status: 404 });
    const missing = spec('scratch/held-missing', { input: 'no-such-input' });
    const t = await suite.client.ticket(missing, { user: 'holder2' });
    ch.socket.write(prepareFrame(3, t.token, missing));
    expect(await ch.answers()).toMatchObject({ id: 3, status: 404, body: { field: 'body.input' } });
    ch.socket.write(heldFrame(4, 'release', t.job));
    expect(await ch.answers()).toMatchObject({ id: 4, status: 404, body: { held: false } });
    expect(await jobsOf('holder2')).toEqual([]);
    ch.socket.destroy();
  });

  it('a release for a job never prepared, or held by another connection, is refused; the holder still releases it', async () => {
    const holder = await gatewayChannel();
    const other = await gatewayChannel();
    const s = spec('scratch/held-theirs');
    const { job, token } = await suite.client.ticket(s, { user: 'theirs' });
    other.socket.write(heldFrame(1, 'release', 'j-never-prepared'));
    expect(await other.answers()).toMatchObject({ id: 1, status: 404, body: { held: false } });
    holder.socket.write(prepareFrame(1, token, s));
    expect(await holder.answers()).toMatchObject({ id: 1, status: 200 });
    // The other gateway connection knows the id and names it: not its job to release, nor to drop.
    other.socket.write(heldFrame(2, 'release', job));
    expect(await other.answers()).toMatchObject({ id: 2, status: 404, body: { held: false } });
    other.socket.write(heldFrame(3, 'drop', job));
    expect(await other.answers()).toEqual({ id: 3, status: 200, body: { dropped: false } });
    expect(await engineJob(job)).toBe(404);
    holder.socket.write(heldFrame(2, 'release', job));
    expect(await holder.answers()).toMatchObject({ id: 2, status: 201, body: { id: job } });
    holder.socket.destroy();
    other.socket.destroy();
  });

  it("a prepare's ticket admits once: replayed while held (prepare, frame, POST /jobs) or after the release, it is refused", async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/held-replay');
    const { job, token } = await suite.client.ticket(s, { user: 'replay-held' });
    ch.socket.write(prepareFrame(1, token, s));
    expect(await ch.answers()).toMatchObject({ id: 1, status: 200 });
    ch.socket.write(prepareFrame(2, token, s));
    expect(await ch.answers()).toMatchObject({ id: 2, status: 403, body: { ticket: 'replayed' } });
    ch.socket.write(submissionFrame(3, token, JSON.stringify(s)));
    expect(await ch.answers()).toMatchObject({ id: 3, status: 403, body: { ticket: 'replayed' } });
    expect((await suite.client.post(s, token)).status).toBe(403);
    // Another ticket for the same job id or the same output, while held: refused too (the id and output are reserved).
    const sameJob = await suite.client.ticket(s, { user: 'replay-held', job });
    ch.socket.write(prepareFrame(4, sameJob.token, s));
    expect(await ch.answers()).toMatchObject({ id: 4, status: 409 });
    ch.socket.write(heldFrame(5, 'release', job));
    expect(await ch.answers()).toMatchObject({ id: 5, status: 201 });
    ch.socket.write(prepareFrame(6, token, s));
    expect(await ch.answers()).toMatchObject({ id: 6, status: 403, body: { ticket: 'replayed' } });
    expect((await jobsOf('replay-held')).map((j) => j.id)).toEqual([job]);
    ch.socket.destroy();
  });

  it('a dropped job, or every job of a connection that ends, is let go: never admitted, its output free again', async () => {
    const ch = await gatewayChannel();
    const s = spec('scratch/held-dropped');
    const first = await suite.client.ticket(s, { user: 'dropped' });
    ch.socket.write(prepareFrame(1, first.token, s));
    expect(await ch.answers()).toMatchObject({ id: 1, status: 200 });
    ch.socket.write(heldFrame(2, 'drop', first.job));
    expect(await ch.answers()).toEqual({ id: 2, status: 200, body: { dropped: true } });
    ch.socket.write(heldFrame(3, 'release', first.job));
    expect(await ch.answers()).toMatchObject({ id: 3, status: 404 });
    expect(await engineJob(first.job)).toBe(404);

    // Held on a connection that then ends: the engine drops it (its log says so), and the output is free.
    const second = await suite.client.ticket(s, { user: 'dropped' });
    ch.socket.write(prepareFrame(4, second.token, s));
    expect(await ch.answers()).toMatchObject({ id: 4, status: 200 });
    ch.socket.destroy();
    await until(() => (suite.engine.output().includes(`"job":"${second.job}"`) && suite.engine.output().includes('its channel ended') ? true : undefined), 20_000, 'the held job dropped with its channel');
    const next = await gatewayChannel();
    next.socket.write(heldFrame(1, 'release', second.job));
    expect(await next.answers()).toMatchObject({ id: 1, status: 404 });
    const third = await suite.client.ticket(s, { user: 'dropped' });
    next.socket.write(submissionFrame(2, third.token, JSON.stringify(s)));
    expect(await next.answers()).toMatchObject({ id: 2, status: 201, body: { id: third.job } });
    expect((await jobsOf('dropped')).map((j) => j.id)).toEqual([third.job]);
    next.socket.destroy();
  });
});

describe("the gateway's engine client", () => {
  let gateway: GatewayEngineClient;
  afterAll(() => gateway?.close());

  it('submits over the channel once it is open, with the same answers as POST /jobs', async () => {
    const url = new URL(suite.engine.url);
    gateway = engineClient({ host: url.hostname, port: Number(url.port), tls: readTlsMaterial(suite.certs, 'gatewayClient') });
    const key = createPrivateKey(readFileSync(join(suite.certs, 'gateway-client.key'), 'utf8'));
    const ids: string[] = [];
    // The first submission opens the channel in the background (and takes POST /jobs itself).
    await until(async () => {
      const s = spec(`scratch/gw-${ids.length}`);
      const { job, token } = await suite.client.ticket(s, { user: 'gw', key });
      expect(await gateway.submit(s, token)).toMatchObject({ id: job });
      ids.push(job);
      return suite.engine.output().includes(`"channel":"jobs"`) && suite.engine.output().includes(job) ? true : undefined;
    }, 20_000, 'a submission over the job channel', 50);
    // Refusals come back as the same GatehouseError as over HTTP.
    const s = spec('scratch/gw-refused');
    const { token } = await suite.client.ticket(s, { user: 'gw', key });
    await gateway.submit(s, token);
    await expect(gateway.submit(s, token)).rejects.toMatchObject({ code: expect.stringMatching(/^(internal|conflict)$/) });
  });
});
