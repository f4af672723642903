// The bundled engine end to end: a real `gatehouse engine` process, real Python and Node workers,
// real files, tickets signed with the gateway's key.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvFields } from '../src/catalog/index.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec, JobStatus } from '../src/wire/index.js';
import { EngineClient, type EngineProcess, startEngineProcess } from './support/engine.js';
import { alive, ROOT, type Sandbox, sandbox } from './support/gatehouse.js';
import { clientCertificate } from './support/client-cert.js';
import { fetchTls } from './support/https.js';
import { until } from './support/until.js';

const WORDS = ['Hello,', '  World ', 'ÉCOLE', '"quoted"', 'ﬁne', 'déjà-vu!', 'MiXeD', '...dots...'];
const PARTS = 6;
const ROWS = 200;

function wordRows(part: number): { id: number; word: string }[] {
  return Array.from({ length: ROWS }, (_, i) => ({ id: part * ROWS + i, word: `${WORDS[(part + i) % WORDS.length]}${i % 7}` }));
}

function csv(rows: { id: number; word: string }[]): string {
  const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  return `id,word\n${rows.map((r) => `${r.id},${quote(r.word)}`).join('\n')}\n`;
}

/** The normaliser's rule, written independently of examples/normalize_words.py. */
function normalised(word: string): string {
  return word.normalize('NFKC').toLowerCase().replace(/^[\p{P}\p{Z}\p{Cc}]+|[\p{P}\p{Z}\p{Cc}]+$/gu, '');
}

/** Every CSV data row of a dataset folder's partitions, parsed simply (our words have no newlines). */
function readCsvRows(dir: string): string[][] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('part-'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').trimEnd().split('\n').slice(1))
    .map((line) => csvFields(line));
}

const NORMALIZER = readFileSync(join(ROOT, 'examples', 'normalize_words.py'), 'utf8');
const resources = { cores: 2, memory_mb: 512, time_limit_s: 120 };
const py = (name: string, output: string, source: string, extra: Partial<JobSpec> = {}): JobSpec => ({ name, input: 'lines', output, runtime: 'python', source, resources, ...extra });

/** Live processes running as `uid` (the engine gives each job its own); zombies are dead and do not count. */
function processesOf(uid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,stat=', '-u', String(uid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter(([, stat]) => stat !== undefined && !stat.startsWith('Z'))
      .map(([pid]) => Number(pid));
  } catch {
    return []; // ps exits 1 when there are none
  }
}

function jobUid(box: Sandbox, jobId: string): number | null {
  // work/ is root's, the job's through its group (gid = the job's uid): the job cannot chmod it.
  const dir = join(box.dir, 'data', '.staging', jobId, 'work');
  return existsSync(dir) ? statSync(dir).gid : null;
}

async function makeInputs(data: string): Promise<void> {
  await writeDataset(data, 'lines', {
    format: 'csv',
    columns: ['id', 'word'],
    owner: 'platform',
    labels: ['internal'],
    produced_by: 'test',
    partitions: Array.from({ length: PARTS }, (_, p) => ({ text: csv(wordRows(p)), rows: ROWS })),
  });
  await writeDataset(data, 'secrets', {
    format: 'csv',
    columns: ['k'],
    owner: 'platform',
    labels: ['pii'],
    produced_by: 'test',
    partitions: [{ text: 'k\nthe-secret-value\n', rows: 1 }],
  });
}

describe('the bundled engine', () => {
  let box: Sandbox;
  let engine: EngineProcess;
  let client: EngineClient;
  let data: string;

  beforeAll(async () => {
    box = sandbox({ engine: { slots: 2 } });
    data = join(box.dir, 'data');
    await makeInputs(data);
    engine = await startEngineProcess(box);
    client = new EngineClient(engine.url, join(box.dir, 'certs'));
  });

  afterAll(async () => {
    await engine?.stop();
    box?.remove();
  });

  describe('running a job', () => {
    let status: JobStatus;
    let id: string;

    beforeAll(async () => {
      id = await client.submit(py('normalize', 'lines_norm', NORMALIZER));
      status = await client.waitFor(id);
    });

    it('runs the word normaliser over every partition and commits output that matches an independent reference', async () => {
      expect(status).toMatchObject({ state: 'succeeded', error: null, user: 'alice', partitions: { total: PARTS, done: PARTS, failed: 0, running: 0 } });
      const expected = Array.from({ length: PARTS }, (_, p) => wordRows(p)).flat().map((r) => [String(r.id), normalised(r.word)]);
      expect(readCsvRows(join(data, 'lines_norm'))).toEqual(expected);
    });

    it('reports rows, bytes, timings and core-seconds', () => {
      expect(status.rows_in).toBe(PARTS * ROWS);
      expect(status.rows_out).toBe(PARTS * ROWS);
      expect(status.bytes_out).toBeGreaterThan(0);
      expect(status.core_seconds).toBeGreaterThan(0);
      expect(status.attempts).toBe(PARTS);
      expect(Date.parse(status.finished_at!)).toBeGreaterThanOrEqual(Date.parse(status.started_at!));
    });

    it('writes a manifest naming the owner, the producing job and the input labels', () => {
      const manifest = JSON.parse(readFileSync(join(data, 'lines_norm', '_dataset.json'), 'utf8')) as Record<string, unknown>;
      expect(manifest).toMatchObject({ format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: ['internal'], produced_by: id });
      expect((manifest.partitions as { rows: number }[]).map((p) => p.rows)).toEqual(Array(PARTS).fill(ROWS));
    });

    it('leaves no staging behind and lists the new dataset', async () => {
      // Succeeded is told once the dataset is committed; the area's removal follows it.
      await until(() => readdirSync(join(data, '.staging')).filter((e) => !e.startsWith('.')).length === 0, 10_000, 'the staging removed after the commit');
      const res = await client.request('GET', '/datasets');
      expect(res.json<{ datasets: { name: string }[] }>().datasets.map((d) => d.name)).toContain('lines_norm');
    });

    it('answers the listing for one name alone (?name=), and refuses a name that could not be a dataset', async () => {
      const listed = async (query: string) => {
        const res = await client.request('GET', `/datasets?${query}`);
        return { status: res.status, names: res.status === 200 ? res.json<{ datasets: { name: string }[] }>().datasets.map((d) => d.name) : [] };
      };
      expect(await listed('name=lines_norm')).toEqual({ status: 200, names: ['lines_norm'] });
      expect(await listed('name=no_such_dataset')).toEqual({ status: 200, names: [] });
      for (const junk of ['name=../etc', 'name=Upper', 'name=a/b/c', 'name=lines_norm&extra=1', 'other=1']) expect((await listed(junk)).status, junk).toBe(400);
    });

    it('refuses to overwrite an existing output unless the spec says mode: overwrite', async () => {
      const spec = py('again', 'lines_norm', NORMALIZER);
      const { token } = await client.ticket(spec);
      const refused = await client.post(spec, token);
      expect(refused.status).toBe(409);
      expect(refused.json().message).toMatch(/lines_norm exists.*overwrite/);
      const replaced = await client.waitFor(await client.submit({ ...spec, mode: 'overwrite', partitions: [0] }));
      expect(replaced.state).toBe('succeeded');
      expect(readCsvRows(join(data, 'lines_norm'))).toHaveLength(ROWS);
    });
  });

  it('admits a job that reads an output the moment its job is shown succeeded (the area is removed after that)', async () => {
    const first = await client.waitFor(await client.submit(py('chain-1', 'lines_chain_1', NORMALIZER, { partitions: [0, 1] })));
    expect(first.state).toBe('succeeded');
    // No wait for the clean-up: the ended job no longer holds its output against readers.
    const second = await client.waitFor(await client.submit(py('chain-2', 'lines_chain_2', NORMALIZER, { input: 'lines_chain_1' })));
    expect(second).toMatchObject({ state: 'succeeded', rows_out: 2 * ROWS });
    expect(readCsvRows(join(data, 'lines_chain_2'))).toEqual(readCsvRows(join(data, 'lines_chain_1')));
    await until(() => !existsSync(join(data, '.staging', first.id)), 10_000, "the first job's area removed");
  });

  it('runs a node module on warm workers', async () => {
    const source = `
      import { readFileSync, writeFileSync } from 'node:fs';
      let imports = 0; imports++;
      export async function process(input, output, ctx) {
        const lines = readFileSync(input, 'utf8').trimEnd().split('\\n');
        writeFileSync(output, lines.map((l, i) => (i === 0 ? l + ',imports' : l + ',' + imports)).join('\\n') + '\\n');
      }`;
    const id = await client.submit({ name: 'node', input: 'lines', output: 'lines_node', runtime: 'node', source, resources });
    const status = await client.waitFor(id);
    expect(status).toMatchObject({ state: 'succeeded', rows_out: PARTS * ROWS });
    const rows = readCsvRows(join(data, 'lines_node'));
    expect(rows.every((r) => r[2] === '1')).toBe(true);
  });

  it('runs Python workers from the runner it compiled at its start (python_runner.pyc)', async () => {
    await until(() => engine.output().includes('compiled the Python runner'), 10_000, 'the runner compiled');
    // The runner is the script python was started with: sys.argv[0] names the file that runs.
    const source = `import sys\ndef process(input_path, output_path, ctx):\n    open(output_path, 'w').write('runner\\n' + sys.argv[0] + '\\n')\n`;
    const status = await client.waitFor(await client.submit(py('compiled', 'lines_runner', source, { partitions: [0] })));
    expect(status.state).toBe('succeeded');
    // Under bubblewrap the runners are at /job/runtime; otherwise tasks see the data root's own folder.
    const runtimeShown = ['/job/runtime', join(realpathSync(data), '.staging', '.runtime')];
    expect(runtimeShown.map((dir) => [[join(dir, 'python_runner.pyc')]])).toContainEqual(readCsvRows(join(data, 'lines_runner')));
  });

  it('runs a command once per partition with {input} and {output} filled in', async () => {
    const id = await client.submit({ name: 'cmd', input: 'lines', output: 'lines_upper', runtime: 'command', argv: ['/bin/sh', '-c', 'tr a-z A-Z < "$0" > "$1"', '{input}', '{output}'], resources });
    const status = await client.waitFor(id);
    expect(status).toMatchObject({ state: 'succeeded', rows_out: PARTS * ROWS });
    const manifest = JSON.parse(readFileSync(join(data, 'lines_upper', '_dataset.json'), 'utf8')) as { columns: string[] };
    expect(manifest.columns).toEqual(['ID', 'WORD']);
  });

  it('retries a failed partition on a fresh worker and succeeds', async () => {
    const source = `
import os
WORKER = os.urandom(6).hex()  # once per worker process: pids repeat inside bubblewrap's pid namespaces
def process(inp, out, ctx):
    if ctx.partition == 1 and ctx.attempt == 1:
        raise RuntimeError('flaky storage, worker %s' % WORKER)
    print('done by worker %s' % WORKER)
    open(out, 'w').write(open(inp).read())
`;
    const id = await client.submit(py('flaky', 'lines_flaky', source, { resources: { ...resources, cores: 1 } }));
    const status = await client.waitFor(id);
    expect(status).toMatchObject({ state: 'succeeded', attempts: PARTS + 1 });
    const log = await client.logs(id);
    expect(log).toMatch(/partition 1 attempt 1 failed; retrying \(its worker is replaced by a fresh one\)/);
    const failed = /RuntimeError: flaky storage, worker (\w+)/.exec(log)?.[1];
    const retried = /\[p1\] done by worker (\w+)/.exec(log)?.[1];
    expect(failed).toBeDefined();
    expect(retried).toBeDefined();
    expect(retried).not.toBe(failed); // one core: only a new worker can have taken it
  });

  it('fails a job whose partition keeps failing, naming the partition and its error, and keeps the other partitions’ logs', async () => {
    const source = `
def process(inp, out, ctx):
    print('partition %d starting' % ctx.partition)
    if ctx.partition == 2:
        raise ValueError('bad row 17: amount "x" is not a number')
    open(out, 'w').write(open(inp).read())
`;
    const id = await client.submit(py('broken', 'lines_broken', source, { resources: { ...resources, cores: 1 } }));
    const status = await client.waitFor(id);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/^partition 2 failed after 2 attempts: .*ValueError: bad row 17: amount "x" is not a number/s);
    expect(status.partitions.failed).toBe(1);
    expect(existsSync(join(data, 'lines_broken'))).toBe(false);
    expect(existsSync(join(data, '.staging', id))).toBe(false);
    const log = await client.logs(id);
    expect(log).toContain('[p0] partition 0 starting');
    expect(log).toContain('[p1] partition 1 starting');
    expect(log).toContain('[p2] partition 2 starting');
  });

  it('reports a worker that ran out of memory as such', async () => {
    const source = `
def process(inp, out, ctx):
    hog = bytearray(2 * 1024 * 1024 * 1024)
    open(out, 'w').write(str(len(hog)))
`;
    const id = await client.submit(py('hog', 'lines_hog', source, { partitions: [3], resources: { cores: 1, memory_mb: 256, time_limit_s: 60 }, max_attempts: 1 }));
    const status = await client.waitFor(id);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/^partition 3 failed after 1 attempt: partition 3: out of memory at 256 MB/); // the input's partition number
  });

  it('kills every process of a job that runs past its time limit', async () => {
    const source = `
import subprocess, time
def process(inp, out, ctx):
    subprocess.Popen(['sleep', '300'])
    time.sleep(300)
`;
    const id = await client.submit(py('slow', 'lines_slow', source, { resources: { cores: 2, memory_mb: 512, time_limit_s: 2 } }));
    let uid: number | null = null;
    await until(() => (uid = jobUid(box, id)) !== null && processesOf(uid).length >= 2, 10_000, 'the worker and its sleep');
    const status = await client.waitFor(id);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/time limit of 2 s reached/);
    await until(() => processesOf(uid!).length === 0, 10_000, 'every process of the timed-out job gone'); // they would sleep 300 s
  });

  it('cancels a job: every process stopped, no output, no staging', async () => {
    const source = `
import subprocess, time
def process(inp, out, ctx):
    subprocess.Popen(['sleep', '300'])
    time.sleep(300)
`;
    const id = await client.submit(py('cancelme', 'lines_cancelled', source));
    let uid: number | null = null;
    await until(() => (uid = jobUid(box, id)) !== null && processesOf(uid).length >= 4, 10_000, 'two workers and two sleeps'); // 2 workers + 2 sleeps
    const res = await client.request('DELETE', `/jobs/${id}`);
    expect(res.status).toBe(200);
    expect(res.json().state).toBe('cancelled');
    // The answer comes once the job's area is removed; the processes were killed before it. Left
    // alone they would sleep 300 s, so their end within the wait below is the kill's doing.
    expect(existsSync(join(data, '.staging', id))).toBe(false);
    expect(existsSync(join(data, 'lines_cancelled'))).toBe(false);
    await until(() => processesOf(uid!).length === 0, 10_000, 'every process of the cancelled job gone');
  });

  describe('admission tickets', () => {
    const spec = (): JobSpec => py('t', `lines_t${Math.random().toString(36).slice(2, 8)}`, NORMALIZER, { partitions: [0] });

    it('refuses a job without a ticket', async () => {
      const res = await client.post(spec());
      expect(res.status).toBe(401);
      expect(res.json()).toMatchObject({ error: 'unauthenticated', ticket: 'missing' });
    });

    it('refuses a ticket signed by another key', async () => {
      const foreign = generateKeyPairSync('ed25519').privateKey;
      const s = spec();
      const { token } = await client.ticket(s, { key: foreign });
      const res = await client.post(s, token);
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ error: 'forbidden', ticket: 'foreign' });
    });

    it('refuses an RS256 ticket (as gateways signed them before Ed25519), whatever its claims', async () => {
      const s = spec();
      const { token: good } = await client.ticket(s);
      const claims = JSON.parse(Buffer.from(good.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const old = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'gatehouse-admission+jwt' }).sign(rsa);
      const res = await client.post(s, old);
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ error: 'forbidden', ticket: 'foreign', message: "the admission ticket must be signed EdDSA (Ed25519) with the key of the gateway's client certificate" });
      // The same claims signed as the gateway signs them now are taken: the algorithm alone was refused.
      expect((await client.post(s, good)).status).toBe(201);
    });

    it('refuses a ticket whose signature was altered, or that claims no algorithm', async () => {
      const s = spec();
      const { token } = await client.ticket(s);
      const [head, body, sig] = token.split('.') as [string, string, string];
      const flipped = Buffer.from(sig, 'base64url');
      flipped[0] = flipped[0]! ^ 1;
      const forged = await client.post(s, `${head}.${body}.${flipped.toString('base64url')}`);
      expect(forged.json()).toMatchObject({ error: 'forbidden', ticket: 'foreign' });
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'gatehouse-admission+jwt' })).toString('base64url')}.${body}.`;
      expect((await client.post(s, none)).status).toBe(403);
    });

    it('refuses an expired ticket', async () => {
      const s = spec();
      // Issued by a clock 70 s behind: its 60 s ended 10 s ago, past the engine's 5 s tolerance.
      const { token } = await client.ticket(s, { issuedAt: Date.now() - 70_000 });
      const res = await client.post(s, token);
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ error: 'forbidden', ticket: 'expired' });
    });

    it('takes a ticket that ended within the 5 s clock tolerance', async () => {
      const s = spec();
      // Ended 2 s ago: a gateway clock a little ahead of the engine's must not refuse its jobs.
      const { token } = await client.ticket(s, { issuedAt: Date.now() - 62_000 });
      expect((await client.post(s, token)).status).toBe(201);
    });

    it('refuses a replayed ticket', async () => {
      const s = spec();
      const { token } = await client.ticket(s);
      expect((await client.post(s, token)).status).toBe(201);
      const again = await client.post({ ...s, output: `${s.output}_b` }, token);
      expect(again.status).toBe(403); // the spec hash differs too; the same spec is the replay case below
      const same = await client.post(s, token);
      expect(same.status).toBe(403);
      expect(same.json()).toMatchObject({ ticket: 'replayed' });
    });

    it('refuses a ticket for another spec, or granting more than the spec asks', async () => {
      const s = spec();
      const { token } = await client.ticket(s, { specFor: { ...s, source: 'def process(i, o, c): import os; os.system("id")' } });
      const res = await client.post(s, token);
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ ticket: 'mismatch', message: 'the admission ticket was issued for a different job spec' });
      const greedy = await client.ticket(s, { granted: { ...s.resources, cores: 64 } });
      const more = await client.post(s, greedy.token);
      expect(more.json()).toMatchObject({ ticket: 'mismatch', message: 'the admission ticket grants more than the spec asks for' });
    });
  });

  describe('dataset names', () => {
    it('refuses inputs and outputs that climb, are absolute or are malformed', async () => {
      for (const [field, value] of [['input', '../etc'], ['output', '/etc/passwd'], ['output', 'a/b/c'], ['input', 'Lines']] as const) {
        const s = { ...py('bad', 'ok_out', NORMALIZER), [field]: value };
        const res = await client.post(s, (await client.ticket(s)).token);
        expect(res.status, `${field}=${value}`).toBe(400);
        expect(res.json().field).toBe(`body.${field}`);
      }
    });

    it('refuses an input that is a link out of the data root', async () => {
      symlinkSync('/etc', join(data, 'etc'));
      const s = { ...py('link', 'from_etc', NORMALIZER), input: 'etc' };
      const res = await client.post(s, (await client.ticket(s)).token);
      expect(res.status).toBe(400);
      expect(res.json().message).toMatch(/input etc: .*symbolic link/);
    });

    it('refuses an input that does not exist', async () => {
      const s = { ...py('missing', 'nothing', NORMALIZER), input: 'no_such' };
      const res = await client.post(s, (await client.ticket(s)).token);
      expect(res.status).toBe(404);
    });
  });

  describe('isolation between jobs', () => {
    it("gives each job its own uid: one job cannot read another job's staging nor a dataset it was not given", async () => {
      if (process.getuid?.() !== 0) return expect.fail('these checks need the engine to run as root, as CI does');
      const holder = `
import time
def process(inp, out, ctx):
    open(out, 'w').write('id,word\\n1,private-result\\n')
    time.sleep(30)
`;
      const a = await client.submit(py('holder', 'lines_holder', holder, { partitions: [0], resources: { ...resources, cores: 1 } }), { user: 'alice' });
      await until(() => existsSync(join(data, '.staging', a, 'out')) && readdirSync(join(data, '.staging', a, 'out')).length > 0, 10_000, 'the holder writing its output');
      const prober = `
import glob, os
def process(inp, out, ctx):
    report = []
    for path in ['${join(data, '.staging', a, 'out')}', '${join(data, 'secrets', 'part-00000.csv')}', '/job/../../${join(data, 'secrets', 'part-00000.csv')}']:
        try:
            if os.path.isdir(path):
                report.append('LISTED %s %r' % (path, os.listdir(path)))
            else:
                report.append('READ %s %r' % (path, open(path).read()))
        except OSError as e:
            report.append('DENIED %s %s' % (path, type(e).__name__))
    print('\\n'.join(report))
    open(out, 'w').write(open(inp).read())
`;
      const b = await client.submit(py('prober', 'lines_prober', prober, { partitions: [1], resources: { ...resources, cores: 1 } }), { user: 'mallory' });
      const status = await client.waitFor(b);
      expect(status.state).toBe('succeeded');
      const log = await client.logs(b);
      expect(log).not.toMatch(/LISTED|READ|private-result|the-secret-value/);
      expect(log.match(/DENIED/g)).toHaveLength(3);
      await client.request('DELETE', `/jobs/${a}`);
    }, 30_000);
  });

  it('streams a running job’s log with ?follow=1 until the job ends', async () => {
    const source = `
import time
def process(inp, out, ctx):
    for i in range(3):
        print('tick %d' % i, flush=True)
        time.sleep(0.2)
    open(out, 'w').write(open(inp).read())
`;
    const id = await client.submit(py('follow', 'lines_follow', source, { partitions: [0, 1], resources: { ...resources, cores: 1 } }));
    const res = await client.request('GET', `/jobs/${id}/logs?follow=1`);
    expect(res.status).toBe(200);
    expect(res.body).toContain('[p0] tick 0');
    expect(res.body).toContain('[p1] tick 2');
    expect(res.body).toMatch(/\[engine\] .* succeeded/);
  });

  it('serves /metrics with slots, queue depth, jobs by state and partition durations', async () => {
    const res = await client.request('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^gatehouse_engine_slots 2$/m);
    expect(res.body).toMatch(/^gatehouse_engine_slots_busy \d+$/m);
    expect(res.body).toMatch(/^gatehouse_engine_queue_depth \d+$/m);
    expect(res.body).toMatch(/^gatehouse_engine_jobs\{state="succeeded"\} [1-9]\d*$/m);
    expect(res.body).toMatch(/^gatehouse_engine_partition_duration_seconds_count [1-9]\d*$/m);
  });

  it('answers only the gateway certificate', async () => {
    const ca = readFileSync(join(box.dir, 'certs', 'ca.crt'), 'utf8');
    const none = await fetchTls(`${engine.url}/jobs`, { ca }).catch((err: Error) => err);
    expect(none).toBeInstanceOf(Error); // no client certificate: the handshake fails
    const user = clientCertificate(join(box.dir, 'certs'), { CN: 'alice', OU: 'users' });
    const spec = py('as-user', 'lines_user', NORMALIZER);
    const res = await fetchTls(`${engine.url}/jobs`, { ca, ...user, method: 'POST', headers: { 'content-type': 'application/json', 'gatehouse-admission': (await client.ticket(spec)).token }, body: JSON.stringify(spec) });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({ error: 'forbidden', message: 'the engine serves only the gateway' });
  });

  describe('what a job writes', () => {
    it('refuses to replace a namespace, whose datasets belong to others', async () => {
      await writeDataset(data, 'team/alice', { format: 'csv', columns: ['k'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'k\n1\n', rows: 1 }] });
      const spec = py('ns', 'team', NORMALIZER, { mode: 'overwrite', partitions: [0] });
      const res = await client.post(spec, (await client.ticket(spec)).token);
      expect(res.status).toBe(409);
      expect(res.json().message).toMatch(/team is a namespace/);
      expect(existsSync(join(data, 'team', 'alice', '_dataset.json'))).toBe(true);
      const inside = py('inside', 'lines/sub', NORMALIZER, { partitions: [0] });
      const res2 = await client.post(inside, (await client.ticket(inside)).token);
      expect(res2.status).toBe(400);
      expect(res2.json().message).toMatch(/lines is a dataset, not a namespace/);
    });

    it('fails a partition whose output is a link or a FIFO, and keeps serving', async () => {
      for (const [name, argv] of [['link', ['/bin/ln', '-s', '/etc/shadow', '{output}']], ['fifo', ['/usr/bin/mkfifo', '{output}']]] as const) {
        const id = await client.submit({ name, input: 'lines', output: `lines_${name}`, runtime: 'command', argv: [...argv], resources: { cores: 1, memory_mb: 256, time_limit_s: 30 }, partitions: [0], max_attempts: 1 });
        const status = await client.waitFor(id, undefined, 10_000);
        expect(status.state, name).toBe('failed');
        expect(status.error).toBe("partition 0: the task's output is not a plain file");
      }
      expect((await client.request('GET', '/healthz')).status).toBe(200);
    });

    it('fails a job that forges its worker’s reply instead of taking the engine down', async () => {
      const source = `
import os
def process(inp, out, ctx):
    open(out, 'w').write('id\\n1\\n')
    os.write(3, b'{"partition": %d, "ok": true, "rows_out": "x", "bytes_out": -5, "seconds": 0}\\n' % ctx.partition)
`;
      const id = await client.submit(py('forger', 'lines_forged', source, { partitions: [0], max_attempts: 1 }));
      const status = await client.waitFor(id);
      expect(status.state).toBe('failed');
      expect(status.error).toMatch(/the worker's reply was malformed/);
      expect((await client.request('GET', '/healthz')).status).toBe(200);
    });

    it('cancels a job while its area is still being made: nothing left behind', async () => {
      const many = 1500;
      await writeDataset(data, 'many', { format: 'csv', columns: ['k'], owner: 'platform', labels: [], produced_by: 'test', partitions: Array.from({ length: many }, (_, i) => ({ text: `k\n${i}\n`, rows: 1 })) });
      const id = await client.submit({ ...py('many', 'many_out', NORMALIZER), input: 'many' });
      const res = await client.request('DELETE', `/jobs/${id}`);
      expect(res.status).toBe(200);
      expect(res.json().state).toBe('cancelled');
      expect(existsSync(join(data, '.staging', id))).toBe(false);
      expect(existsSync(join(data, 'many_out'))).toBe(false);
    });
  });
});

describe('the engine after kill -9', () => {
  it('resumes running jobs on restart, redoing only uncommitted partitions: none lost, none twice', async () => {
    const box = sandbox({ engine: { slots: 1 } });
    const data = join(box.dir, 'data');
    await makeInputs(data);
    let engine = await startEngineProcess(box);
    try {
      let client = new EngineClient(engine.url, join(box.dir, 'certs'));
      // Each partition runs until we drop go-<partition> in the job's work folder.
      const source = `
import os, time
def process(inp, out, ctx):
    while not os.path.exists(os.path.join(os.getcwd(), 'go-%d' % ctx.partition)):
        time.sleep(0.05)
    open(out, 'w').write(open(inp).read())
`;
      const work = (id: string) => join(data, '.staging', id, 'work');
      const id = await client.submit(py('resumable', 'lines_resumed', source, { resources: { cores: 1, memory_mb: 512, time_limit_s: 120 } }));
      await until(() => existsSync(work(id)), 10_000, 'the job area');
      for (const p of [0, 1]) writeFileSync(join(work(id), `go-${p}`), '');
      // Two partitions committed, the third running (held) when the engine dies.
      await client.waitFor(id, (s) => s.partitions.done === 2 && s.workers === 1);
      const pid = engine.child.pid!;
      engine.child.kill('SIGKILL');
      await engine.exited;
      expect(alive(pid)).toBe(false);
      engine = await startEngineProcess(box);
      client = new EngineClient(engine.url, join(box.dir, 'certs'));
      await client.waitFor(id, (s) => s.state === 'running' && s.workers === 1);
      for (const p of [2, 3, 4, 5]) writeFileSync(join(work(id), `go-${p}`), '');
      const status = await client.waitFor(id);
      // The interrupted partition's attempt is not counted: each partition ran to completion once.
      expect(status).toMatchObject({ state: 'succeeded', partitions: { total: PARTS, done: PARTS, failed: 0 }, rows_out: PARTS * ROWS, attempts: PARTS });
      const ids = readCsvRows(join(data, 'lines_resumed')).map((r) => Number(r[0]));
      expect(ids).toEqual(Array.from({ length: PARTS * ROWS }, (_, i) => i));
      const log = await client.logs(id);
      expect(log).toMatch(/engine restarted: 2 of 6 partitions were committed; the rest run again/);
    } finally {
      await engine.stop();
      box.remove();
    }
  }, 60_000);
});

describe('fair share', () => {
  it('splits the slots between two users instead of letting the first take all', async () => {
    const box = sandbox({ engine: { slots: 2 } });
    const data = join(box.dir, 'data');
    await makeInputs(data);
    const engine = await startEngineProcess(box);
    try {
      const client = new EngineClient(engine.url, join(box.dir, 'certs'));
      // Each partition runs until we drop go-<partition> in the job's work folder: the jobs are
      // running exactly as long as the test says, however fast or slow the machine.
      const gated = `
import os, time
def process(inp, out, ctx):
    while not os.path.exists(os.path.join(os.getcwd(), 'go-%d' % ctx.partition)):
        time.sleep(0.05)
    open(out, 'w').write(open(inp).read())
`;
      const release = (id: string, partitions: number[]) => {
        for (const p of partitions) writeFileSync(join(data, '.staging', id, 'work', `go-${p}`), '');
      };
      const first = await client.submit(py('first', 'lines_first', gated, { resources: { cores: 2, memory_mb: 256, time_limit_s: 60 } }), { user: 'alice' });
      // Both workers have their partitions (each takes two queued at once: attempts count what is
      // handed), so neither can find nothing to take and leave its slot once Bob's job changes the shares.
      await client.waitFor(first, (s) => s.workers === 2 && s.attempts >= 4);
      const second = await client.submit(py('second', 'lines_second', gated, { resources: { cores: 2, memory_mb: 256, time_limit_s: 60 } }), { user: 'bob' });
      // Bob's area is built and his run waits for a slot: from now on fair share counts him. (Released
      // before that, Alice's workers would go on to her next, gated, partitions and keep both slots.)
      await client.waitFor(second, (s) => s.reason === 'waiting for a free slot', 10_000);
      // Each of Alice's workers holds a partition queued behind the gated one it runs: a person is
      // shown what runs (counted queued too, it read 4).
      expect((await client.status(first)).partitions).toMatchObject({ running: 2, done: 0 });
      // Alice's first two partitions end; her workers give a slot back: one each, while both still run.
      release(first, [0, 1]);
      await client.waitFor(second, (s) => s.workers === 1, 10_000);
      const [a, b] = [await client.status(first), await client.status(second)];
      expect(a).toMatchObject({ state: 'running', workers: 1 });
      expect(b).toMatchObject({ state: 'running', workers: 1 });
      expect(a.partitions.done).toBeLessThan(PARTS);
      const metrics = (await client.request('GET', '/metrics')).body;
      expect(Number(/^gatehouse_engine_slots_busy (\d+)$/m.exec(metrics)?.[1])).toBeLessThanOrEqual(2);
      release(first, [2, 3, 4, 5]);
      release(second, [0, 1, 2, 3, 4, 5]);
      expect((await client.waitFor(first)).state).toBe('succeeded');
      expect((await client.waitFor(second)).state).toBe('succeeded');
    } finally {
      await engine.stop();
      box.remove();
    }
  }, 60_000);
});
