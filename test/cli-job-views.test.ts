// Job views that tell the truth, through the CLI against a real stack (engine, IdP, gateway; on
// SQLite and on PostgreSQL): a pending job says why it waits and where it is in its owner's queue,
// a cancelled job says who cancelled it (its owner or an admin, kept in the store), and a failed
// job's multi-line error stays on its row of the `jobs` table.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import type { Job } from '../src/cli/job-view.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { runCli } from './support/gatehouse.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

/** Runs until cancelled: the tests cancel it, so no clock decides anything. */
const FOREVER = 'import time\ndef process(i, o, ctx):\n    while True:\n        time.sleep(0.2)\n';
const FAIL = "def process(i, o, ctx):\n    raise ValueError('first line of the problem\\nsecond line of it\\nthird')\n";

let stack: Stack;
let sources: string;
const homes: Record<string, string> = {};

/** A person's CLI: their own config folder holding their login to the stack's gateway. */
async function loginAs(user: string): Promise<void> {
  const token = await stack.login(user);
  const home = mkdtempSync(join(tmpdir(), `gatehouse-views-${user}-`));
  mkdirSync(join(home, 'gatehouse'), { mode: 0o700 });
  const login = { url: stack.url, user, auth_method: 'oidc', access_token: token, refresh_token: 'not-needed', expires_at: new Date(Date.now() + 3_600_000).toISOString() };
  writeFileSync(join(home, 'gatehouse', 'credentials.json'), JSON.stringify({ [stack.url]: login }), { mode: 0o600 });
  homes[user] = home;
}

const gh = (user: string, args: string[]) => runCli(args, { env: { XDG_CONFIG_HOME: homes[user]!, GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.certsDir, 'ca.crt') }, cwd: homes[user]!, timeoutMs: 90_000 });

async function view(user: string, id: string): Promise<Job> {
  const r = await gh(user, ['status', id, '-o', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Job;
}

async function submit(user: string, output: string, source: string): Promise<string> {
  const r = await gh(user, ['submit', '--input', 'scratch/views-in', '--output', output, '--python', join(sources, source), '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }).id;
}


// Each step runs the real `gatehouse` several times (a second or more each on a loaded 2-core machine).
vi.setConfig({ testTimeout: 300_000 });
beforeAll(async () => {
  stack = await Stack.start({ users: { erin: ['analysts'] }, policyLines: ['p2, user:erin, max_concurrent_jobs, 1'], config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
  await writeDataset(stack.dataRoot, 'scratch/views-in', { format: 'csv', columns: ['id', 'word'], owner: 'erin', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
  sources = mkdtempSync(join(tmpdir(), 'gatehouse-views-src-'));
  writeFileSync(join(sources, 'forever.py'), FOREVER);
  writeFileSync(join(sources, 'fail.py'), FAIL);
  await loginAs('erin');
  await loginAs('bob'); // platform-admins: admin on job:*
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  stack?.box.remove();
});

describe('job views', () => {
  let first = '';
  let second = '';
  let third = '';

  it("a pending job shows why it waits and its place in its owner's queue", async () => {
    first = await submit('erin', 'scratch/views-a', 'forever.py');
    second = await submit('erin', 'scratch/views-b', 'forever.py');
    third = await submit('erin', 'scratch/views-c', 'forever.py');
    expect(await view('erin', first)).toMatchObject({ queue_position: null, cancelled_by: null });
    const [b, c] = [await view('erin', second), await view('erin', third)];
    expect(b).toMatchObject({ state: 'pending', queue_position: 1 });
    expect(b.reason).toBe('quota: jobs 1/1 in use');
    expect(c).toMatchObject({ state: 'pending', queue_position: 2 });
    const text = await gh('erin', ['status', third]);
    expect(text.stdout).toMatch(/^reason +queued behind 1 earlier pending job of yours$/m);
    expect(text.stdout).toMatch(/^queue +2nd in erin's queue$/m);
    // The listing says it too, in the note column.
    const list = (await gh('erin', ['jobs'])).stdout;
    expect(list).toMatch(new RegExp(`^${second} .* pending .* #1 in queue: quota: jobs 1/1 in use$`, 'm'));
    expect(list).toMatch(new RegExp(`^${third} .* pending .* #2 in queue: `, 'm'));
  });

  it('a cancelled job says who cancelled it: its owner, or an admin; the queue moves up', async () => {
    expect((await gh('erin', ['cancel', second])).stdout).toBe(`cancelled job ${second}\n`);
    expect(await view('erin', second)).toMatchObject({ state: 'cancelled', cancelled_by: 'erin', queue_position: null });
    expect((await view('erin', third)).queue_position).toBe(1);
    expect((await gh('erin', ['status', second])).stdout).toMatch(/^cancelled +by erin \(its owner\)$/m);

    // An admin cancels erin's running job; she sees who did.
    await until(async () => (await view('erin', first)).state === 'running', 60_000, `job ${first} running`);
    expect((await gh('bob', ['cancel', first])).code).toBe(0);
    expect(await view('erin', first)).toMatchObject({ state: 'cancelled', cancelled_by: 'bob' });
    expect((await gh('erin', ['status', first])).stdout).toMatch(/^cancelled +by bob \(not its owner: an admin\)$/m);
    expect((await gh('erin', ['jobs', '--state', 'cancelled'])).stdout).toMatch(new RegExp(`^${first} .* cancelled .* by bob$`, 'm'));

    // Someone who is neither sees nothing of it (and so nothing of who cancelled it).
    await loginAs('alice');
    const other = await gh('alice', ['status', first]);
    expect([other.code, other.stderr]).toEqual([EXIT.failure, `gatehouse status: no job ${first}\n`]);

    // The third left the queue once the quota freed; it ends cancelled by its owner too.
    await until(async () => (await view('erin', third)).state !== 'pending', 60_000, `job ${third} admitted`);
    expect((await gh('erin', ['cancel', third])).code).toBe(0);
    expect((await view('erin', third)).cancelled_by).toBe('erin');
  });

  it("a failed job's multi-line error is folded onto its row of the table; status shows it whole", async () => {
    const failed = await submit('erin', 'scratch/views-fail', 'fail.py');
    await until(async () => (await view('erin', failed)).state === 'failed', 60_000, `job ${failed} failed`);
    const list = (await gh('erin', ['jobs'])).stdout.trimEnd().split('\n');
    // Every row is one job: a header, then lines that each start with a job id.
    expect(list.slice(1).every((line) => /^j[0-9a-f]{12} /.test(line)), list.join('\n')).toBe(true);
    const row = list.find((line) => line.startsWith(failed))!;
    // Cut to the column (status shows it all), but one row: the lines joined with ⏎.
    expect(row).toMatch(/ValueError: first line of the problem ⏎ se/);
    const whole = (await gh('erin', ['status', failed])).stdout;
    expect(whole).toContain('second line of it');
    expect((await view('erin', failed)).error).toMatch(/first line of the problem\nsecond line of it/);
  });
});
