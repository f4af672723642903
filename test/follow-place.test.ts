// `gatehouse logs -f` when the person already holds all 16 of their held reads (other `--wait`s,
// followed logs, console tabs): the gateway refuses the 17th 429 with Retry-After, and the CLI asks
// again until a place frees, then follows the whole log (CI10's flake was a follow that stopped at the
// first 429). As the attacker: waiting never holds a 17th place, it gives up after its cap naming the
// cause, and a 429 for any other reason is not waited out. A real stack (engine, IdP, gateway as
// processes); the CLI as a person runs it; alice's one running job (max_concurrent_jobs 1), running
// until cancelled, keeps the followed job pending, so its follows hold their places for as long as the test says.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, stream, type Target } from '../src/cli/client/api.js';
import { withPlace } from '../src/cli/place-wait.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import { RETRY_AFTER_S } from '../src/proxy/job-wait.js';
import { startCli } from './support/cli-process.js';
import { followLog } from './support/followed-log.js';
import { approveDevice } from './support/oidc-browser.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

/** Runs until cancelled: the tests cancel it, so no clock decides anything. */
const FOREVER = 'import time\ndef process(i, o, ctx):\n    while True:\n        time.sleep(0.2)\n';
const LOUD = "def process(i, o, ctx):\n    print('followed line of partition %d' % ctx.partition)\n    ctx.log.info('logged at the end of %d', ctx.partition)\n    open(o, 'w').write(open(i).read())\n";

let stack: Stack;
let scratch: string;
let token = '';
let cliEnv: Record<string, string> = {};

const spec = (name: string, output: string, source: string) => ({ name, input: 'scratch/place-in', output, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 120 } });

async function submit(name: string, output: string, source: string): Promise<{ id: string; state: string }> {
  const r = await stack.api('/v1/jobs', token, { method: 'POST', body: spec(name, output, source) });
  expect(r.status, r.body).toBe(201);
  return r.json<{ id: string; state: string }>();
}

/** GET a followed log: resolves at the answer's head (a held follow's head comes once its place is taken). */
const follow = (id: string) => followLog(stack.url, stack.ca, token, id);

/** A job that runs until cancelled (alice may run one at once), and one behind it that waits in her queue. */
async function blockedPair(tag: string): Promise<{ blocker: string; parked: string }> {
  const blocker = await submit(`hold-${tag}`, `scratch-alice/place-hold-${tag}`, FOREVER);
  const parked = await submit(`loud-${tag}`, `scratch-alice/place-loud-${tag}`, LOUD);
  expect(parked.state).toBe('pending');
  return { blocker: blocker.id, parked: parked.id };
}

async function sixteenHeld(id: string) {
  const held = [];
  for (let i = 0; i < 16; i++) held.push(await follow(id));
  expect(held.map((f) => f.status)).toEqual(Array(16).fill(200));
  return held;
}

async function cancel(id: string): Promise<void> {
  expect((await stack.api(`/v1/jobs/${id}`, token, { method: 'DELETE' })).status).toBe(200);
}

async function ended(id: string): Promise<void> {
  await until(async () => ['succeeded', 'failed', 'cancelled'].includes((await stack.api(`/v1/jobs/${id}`, token)).json<{ state: string }>().state), 60_000, `${id} to end`);
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'gatehouse-follow-place-'));
  stack = await Stack.start({ policyLines: ['p2, user:alice, max_concurrent_jobs, 1'] });
  await writeDataset(stack.dataRoot, 'scratch/place-in', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }, { text: 'id,word\n2,b\n', rows: 1 }] });
  token = await stack.login('alice');
  const home = mkdtempSync(join(scratch, 'home-'));
  cliEnv = { XDG_CONFIG_HOME: home, GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.certsDir, 'ca.crt') };
  const cli = startCli(['login', '--sso', '--no-browser', '--json'], cliEnv);
  const [, url] = await cli.waitFor(/or open (\S+)/);
  expect((await approveDevice(url!, { username: 'alice', password: 'alice-demo' })).outcome).toBe('approved');
  expect((await cli.done).code).toBe(0);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('a followed log asked while the person holds all 16 of their held reads', () => {
  it('is refused 429 with Retry-After and the bound it hit; `logs -f` says once that it waits, takes the place freed and prints the whole log', async () => {
    const { blocker, parked } = await blockedPair('cli');
    const held = await sixteenHeld(parked);
    const refused = await follow(parked);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe(String(RETRY_AFTER_S.user));
    expect(JSON.parse(await refused.body)).toMatchObject({ error: 'too_many_requests', waits: 'user', retry_after: RETRY_AFTER_S.user, message: expect.stringMatching(/16 waits on jobs/) });

    const cli = startCli(['logs', '-f', parked], cliEnv);
    await cli.waitFor(/waiting for a place/);
    // The attacker's view: the CLI asking again holds nothing, a 17th is still refused.
    expect((await follow(parked)).status).toBe(429);
    // One place frees: the test takes it back until the CLI has it (a 429 then means 15 here + the CLI's one).
    held.pop()!.hangUp();
    await until(async () => {
      const f = await follow(parked);
      if (f.status === 429) return true;
      f.hangUp();
      return undefined;
    }, 30_000, 'the CLI to take the place freed');

    await cancel(blocker);
    const done = await cli.done;
    expect(done.code, done.stderr).toBe(0);
    await ended(parked);
    const whole = (await stack.api(`/v1/jobs/${parked}/logs`, token)).body;
    expect(whole).toMatch(/followed line of partition 0/);
    expect(done.stdout).toBe(whole);
    expect(done.stderr.match(/waiting for a place/g)).toHaveLength(1);
    expect(done.stderr).toMatch(/you already hold 16 waits on jobs/);
    for (const f of held) expect(await f.body).toBe(whole);
  }, 120_000);

  it('as the attacker: waiting holds no 17th place, ends after its cap with the cause, and any other 429 is not waited out', async () => {
    const { blocker, parked } = await blockedPair('cap');
    const held = await sixteenHeld(parked);
    const target: Target = { url: stack.url, ca: stack.ca, caFile: undefined };
    let asks = 0;
    const notes: string[] = [];
    const ask = () => {
      asks += 1;
      return stream(target, `/v1/jobs/${parked}/logs?follow=1`, { token, sink: () => undefined });
    };
    const gaveUp = await withPlace(ask, { what: `following job ${parked}'s log`, note: (l) => notes.push(l), capMs: 2_500 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(gaveUp).toBeInstanceOf(ApiError);
    expect((gaveUp as ApiError).status).toBe(429);
    expect((gaveUp as ApiError).message).toMatch(/gave up after waiting .* for a place: you already hold 16 waits on jobs \(at most 16 at once\)/);
    expect(asks).toBeGreaterThanOrEqual(2);
    expect(notes).toHaveLength(1);
    expect((await follow(parked)).status).toBe(429);

    // A 429 that does not name the held-read bounds (the login throttle's, say) fails at once, whatever its Retry-After.
    let otherAsks = 0;
    const throttled = new ApiError(429, 'too_many_requests', 'too many failed logins; try again in 60 s', { retry_after: 60 }, 60);
    await expect(withPlace(() => Promise.reject(throttled).finally(() => (otherAsks += 1)), { what: 'x', note: (l) => notes.push(l) })).rejects.toBe(throttled);
    expect(otherAsks).toBe(1);
    expect(notes).toHaveLength(1);

    for (const f of held) f.hangUp();
    await cancel(parked);
    await cancel(blocker);
  }, 120_000);
});
