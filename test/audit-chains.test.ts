// A gateway that is gone, as auditors see the trail: its chain is named as missing in every merged
// answer (query, verify, export) until an admin retires it with a reason, which is itself recorded;
// a retired gateway started again counts again. And /readyz says when the gateways serve different
// policy versions. Two real gateways over a private PostgreSQL.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineProcess } from './support/engine.js';
import { runCli } from './support/gatehouse.js';
import { type Postgres, startPostgres } from './support/postgres.js';
import { Stack } from './support/stack.js';

let db: Postgres;
let stack: Stack;
let b: EngineProcess;
let bPort = '';
const tokens: Record<string, string> = {};
let homes = '';

/** `gatehouse ...` as a user whose login is saved where the CLI keeps it (the token from stack.login). */
function cliAs(who: string, args: string[]) {
  const home = join(homes, who);
  mkdirSync(join(home, 'gatehouse'), { recursive: true, mode: 0o700 });
  const login = { user: who, auth_method: 'oidc', access_token: tokens[who], refresh_token: 'unused', expires_at: new Date(Date.now() + 5 * 60_000).toISOString() };
  writeFileSync(join(home, 'gatehouse', 'credentials.json'), JSON.stringify({ [stack.url]: login }), { mode: 0o600 });
  return runCli(args, { env: { XDG_CONFIG_HOME: home, GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.certsDir, 'ca.crt') } });
}

interface Chain {
  chain_id: string;
  name: string;
  state: string;
  retired?: { by: string; reason: string };
}
interface Page {
  events: { action: string; gateway: string; details: Record<string, unknown>; decision: string; actor: { user: string } }[];
  gateways: { name: string; ok: boolean; error?: string }[];
}

const chains = async (who = 'carol') => (await stack.api('/v1/audit/chains', tokens[who])).json<{ chains: Chain[] }>().chains;
const retire = (name: string, who: string, body: unknown = { reason: 'host decommissioned; trail exported to the archive' }) =>
  stack.api(`/v1/audit/chains/${encodeURIComponent(name)}/retire`, tokens[who], { method: 'POST', body });

beforeAll(async () => {
  db = await startPostgres();
  const url = await db.database('chains');
  stack = await Stack.start({ config: { store: { url, password_file: db.passwordFile } } });
  b = await stack.startReplica('b');
  bPort = new URL(b.url).port;
  for (const who of ['alice', 'bob', 'carol']) tokens[who] = await stack.login(who);
  homes = mkdtempSync(join(tmpdir(), 'gatehouse-chains-cli-'));
}, 180_000);

afterAll(async () => {
  rmSync(homes, { recursive: true, force: true });
  await b?.stop();
  await stack?.stop();
  await db?.stop();
});

const self = () => new URL(stack.url).host;
const bName = () => new URL(b.url).host;

describe("a gone gateway's chain", () => {
  it('is listed live while its gateway runs, to auditors and admins only', async () => {
    expect((await chains()).map((c) => [c.name, c.state]).sort()).toEqual([[bName(), 'live'], [self(), 'live']].sort());
    expect((await chains('bob')).length).toBe(2);
    const refused = await stack.api('/v1/audit/chains', tokens.alice);
    expect(refused.status).toBe(403);
  });

  it('is named as missing by query, verify and export once its gateway stops, never left out silently', async () => {
    expect((await b.stop()).code).toBe(0);
    expect((await chains()).find((c) => c.name === bName())?.state).toBe('gone');

    const page = (await stack.api('/v1/audit', tokens.carol)).json<Page>();
    const missing = page.gateways.find((g) => g.name === bName());
    expect(missing).toMatchObject({ ok: false });
    expect(missing?.error).toMatch(/not running .*retire/);

    const verify = (await stack.api('/v1/audit/verify', tokens.carol)).json<{ ok: boolean; gateways: { name: string; ok: boolean }[] }>();
    expect(verify.ok).toBe(false);
    expect(verify.gateways.find((g) => g.name === bName())?.ok).toBe(false);

    const exported = await stack.api('/v1/audit/export', tokens.carol);
    expect(exported.status).not.toBe(200);
    expect(exported.body).toContain(bName());

    // What an auditor sees from the command line.
    const listed = await cliAs('carol', ['audit', 'chains']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${bName().replace(/\./g, '\\.')} +gone .*missing from merged answers`));
  });

  it('is retired only by an admin, with a reason, and only when its gateway is gone', async () => {
    const byAuditor = await retire(bName(), 'carol');
    expect(byAuditor.status).toBe(403);
    expect((await retire(bName(), 'alice')).status).toBe(403);
    expect((await retire(self(), 'bob')).status).toBe(409); // the gateway answering is running
    expect((await retire('127.0.0.1:1', 'bob')).status).toBe(404);
    expect((await retire(bName(), 'bob', {})).status).toBe(400);
    expect((await retire(bName(), 'bob', { reason: 'x' })).status).toBe(400);
    expect((await retire(bName(), 'bob', { reason: 'ok then', extra: 1 })).status).toBe(400);
    // Still gone after every refusal above.
    expect((await chains()).find((c) => c.name === bName())?.state).toBe('gone');

    expect((await cliAs('bob', ['audit', 'retire', bName()])).code).toBe(2); // no --reason: a usage error, nothing sent
    const done = await cliAs('bob', ['audit', 'retire', bName(), '--reason', 'host decommissioned; trail exported to the archive', '--json']);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ name: bName(), state: 'retired', retired: { by: 'bob', reason: 'host decommissioned; trail exported to the archive' } });
    expect((await retire(bName(), 'bob')).status).toBe(409); // already retired

    // Merged answers no longer wait for it: the trail that remains verifies and exports whole.
    const verifyAnswer = await stack.api('/v1/audit/verify', tokens.carol);
    expect(verifyAnswer.json<{ ok: boolean }>().ok).toBe(true);
    expect(verifyAnswer.body).not.toContain(bName()); // alone now: this gateway's own report
    expect((await stack.api('/v1/audit/export', tokens.carol)).status).toBe(200);
    // ... and the retirement, refused and allowed, is in the trail with who and why.
    const trail = (await stack.api('/v1/audit?action=audit.chain_retire&limit=50', tokens.carol)).json<Page>().events;
    expect(trail.filter((e) => e.decision === 'deny').map((e) => e.actor.user).sort()).toEqual(['alice', 'carol']);
    const allowed = trail.filter((e) => e.decision === 'allow' && e.actor.user === 'bob');
    expect(allowed.map((e) => e.details)).toContainEqual(expect.objectContaining({ gateway: bName(), reason: 'host decommissioned; trail exported to the archive' }));
    // The listing keeps it, retired, with who and why.
    expect((await chains()).find((c) => c.name === bName())).toMatchObject({ state: 'retired', retired: { by: 'bob' } });
  });

  it('counts again when its gateway starts again at its address', async () => {
    b = await stack.startReplica('b', { GATEHOUSE_SERVER_PORT: bPort });
    expect(bName()).toBe(`127.0.0.1:${bPort}`);
    expect((await chains()).find((c) => c.name === bName())?.state).toBe('live');
    const page = (await stack.api('/v1/audit', tokens.carol)).json<Page>();
    expect(page.gateways.map((g) => [g.name, g.ok]).sort()).toEqual([[bName(), true], [self(), true]].sort());
  });
});

describe('gateways over one store serving different policy versions', () => {
  it('are still ready, and each says which others serve another version', async () => {
    const ready = async (base: string) => (await stack.apiAt(base, '/readyz')).json<{ checks: { policy: string } }>().checks.policy;
    expect(await ready(stack.url)).not.toMatch(/another version/);
    // b restarted on an edited copy of the policy, as during a deploy that has reached it alone.
    const edited = join(homes, 'policies-edited');
    cpSync(stack.policies, edited, { recursive: true });
    writeFileSync(join(edited, 'policy.csv'), `${readFileSync(join(edited, 'policy.csv'), 'utf8')}\np2, user:alice, max_cores, 6\n`);
    await b.stop();
    b = await stack.startReplica('b', { GATEHOUSE_SERVER_PORT: bPort, GATEHOUSE_POLICIES_DIR: edited });
    const own = (await ready(stack.url)).match(/version ([0-9a-f]+)/)![1]!;
    const bVersion = (await ready(b.url)).match(/version ([0-9a-f]+)/)![1]!;
    expect(bVersion).not.toBe(own);
    expect(await ready(stack.url)).toContain(`other gateways serve another version: ${bName()} ${bVersion}`);
    expect(await ready(b.url)).toContain(`other gateways serve another version: ${self()} ${own}`);
  });
});

describe('a new trail at a gone gateway\'s address', () => {
  it('is refused until the chain that held the name is retired; then both are listed, told apart', async () => {
    await b.stop();
    const old = (await chains()).find((c) => c.name === bName() && c.state === 'gone')!;
    expect(old.chain_id).toMatch(/^[0-9a-f]{32}$/);
    // Another host (here: another audit.dir) at b's address would make b's events vanish from merged answers.
    const refused = await stack.startReplica('b-new', { GATEHOUSE_SERVER_PORT: bPort }).then(
      () => null,
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/belongs to another audit chain .* not retired/);
    expect((await stack.api('/v1/audit', tokens.carol)).json<Page>().gateways.find((g) => g.name === bName())).toMatchObject({ ok: false });

    expect((await retire(bName(), 'bob')).status).toBe(200);
    b = await stack.startReplica('b-new', { GATEHOUSE_SERVER_PORT: bPort });
    const named = (await chains()).filter((c) => c.name === bName());
    expect(named.map((c) => [c.chain_id === old.chain_id, c.state]).sort()).toEqual([
      [false, 'live'],
      [true, 'retired'],
    ]);
  });
});

