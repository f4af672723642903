// Review of retiring a gone gateway's audit chain (GET /v1/audit/chains, POST .../retire), as an
// attacker and as an auditor who must trust the answer: can a chain leave merged answers without a
// recorded, readable reason, or stay retired while its gateway runs? Two real gateways over a
// private PostgreSQL; a test connection to that database holds a chain's row lock to line a
// retirement up with a gateway coming up, and ages a frozen gateway's registry row.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineProcess } from '../support/engine.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

let db: Postgres;
let stack: Stack;
let sql: pg.Client;
let b: EngineProcess;
let bPort = '';
const tokens: Record<string, string> = {};

interface Chain {
  name: string;
  state: string;
}
interface Page {
  events: { action: string; gateway: string; details: Record<string, unknown>; actor: { user: string | null } }[];
  gateways: { name: string; ok: boolean; error?: string }[];
}

const bName = () => `127.0.0.1:${bPort}`;
const chainOf = async (name: string) => (await stack.api('/v1/audit/chains', tokens.carol)).json<{ chains: Chain[] }>().chains.find((c) => c.name === name);
const retire = (name: string, reason: unknown, who = 'bob') => stack.api(`/v1/audit/chains/${encodeURIComponent(name)}/retire`, tokens[who], { method: 'POST', body: { reason } });
const startB = async () => {
  b = await stack.startReplica('b', bPort === '' ? {} : { GATEHOUSE_SERVER_PORT: bPort });
  bPort = new URL(b.url).port;
};
beforeAll(async () => {
  db = await startPostgres();
  const url = await db.database('chains_review');
  stack = await Stack.start({ config: { store: { url, password_file: db.passwordFile } } });
  await startB();
  for (const who of ['alice', 'bob', 'carol']) tokens[who] = await stack.login(who);
  const u = new URL(url);
  sql = new pg.Client({ host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), user: u.username, password: readFileSync(db.passwordFile, 'utf8') });
  sql.on('error', () => undefined);
  await sql.connect();
}, 180_000);

afterAll(async () => {
  await sql?.end();
  await b?.stop();
  await stack?.stop();
  await db?.stop();
});

describe("retiring a gone gateway's chain", () => {
  it('is refused with a blank reason or one a terminal would act on, and the chain stays named as missing', async () => {
    // Who may not see the chains learns nothing of them.
    const peek = await stack.api('/v1/audit/chains', tokens.alice);
    expect(peek.status).toBe(403);
    expect(peek.body).not.toContain(bPort);
    expect((await stack.api('/v1/audit/chains')).status).toBe(401);

    expect((await b.stop()).code).toBe(0);
    expect((await chainOf(bName()))?.state).toBe('gone');
    for (const reason of ['   ', ' \t x y ', 'done\u001b]52;c;ZXZpbA==\u0007', 'done\nGATEWAY 10.0.0.9:8443 retired', 'done\u202eevil', 'x'.repeat(501)]) {
      const answer = await retire(bName(), reason);
      expect(answer.status, JSON.stringify(reason)).toBe(400);
    }
    expect((await chainOf(bName()))?.state).toBe('gone');
    // Words of any script are reasons.
    expect((await stack.api('/v1/audit/chains/127.0.0.1:1/retire', tokens.bob, { method: 'POST', body: { reason: 'hôte retiré, journal exporté' } })).status).toBe(404);
  });

  it('is explained to the auditor with a command that exists', async () => {
    const page = (await stack.api('/v1/audit', tokens.carol)).json<Page>();
    expect(page.gateways.find((g) => g.name === bName())?.error).toContain(`gatehouse audit retire ${bName()} --reason`);
  });

  it('is refused when its gateway comes up while the retirement is being decided, never left retired on a running gateway', async () => {
    // Hold the chain's row, let the retirement reach it, then register a gateway under its name (as
    // a gateway starting does) and let go: the retirement must see it running.
    const holder = (await sql.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const id = randomUUID();
    await sql.query('BEGIN');
    let answer: ReturnType<typeof retire>;
    try {
      await sql.query('SELECT 1 FROM audit_chains WHERE name = $1 FOR UPDATE', [bName()]);
      answer = retire(bName(), 'host decommissioned; trail exported to the archive');
      answer.catch(() => undefined); // awaited below; a failed wait must not leave it unhandled
      // Waits for a backend blocked by this very session. Inside a transaction PostgreSQL answers
      // pg_stat_activity from a snapshot taken at its first read, so each poll clears it first: without
      // that, a retirement slower than the first poll (a loaded machine) was never seen.
      await until(
        async () => {
          await sql.query('SELECT pg_stat_clear_snapshot()');
          return (await sql.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [holder])).rows[0].n > 0;
        },
        30_000,
        'the retirement waiting on the chain',
      );
      await sql.query('INSERT INTO gateways (id, name, url, started_at, seen_at) VALUES ($1, $2, $3, $4, $5)', [id, bName(), `https://${bName()}`, new Date().toISOString(), Date.now()]);
      await sql.query('COMMIT');
    } catch (err) {
      // Never leave the chain's row locked for the tests after this one.
      await sql.query('ROLLBACK');
      throw err;
    }
    try {
      const done = await answer;
      expect(done.status, done.body).toBe(409);
      expect((await chainOf(bName()))?.state).toBe('live');
    } finally {
      await sql.query('DELETE FROM gateways WHERE id = $1', [id]);
    }
    expect((await chainOf(bName()))?.state).toBe('gone');
  });

  it("is never what keeps a peer's chain out of merged answers: a failed login in its trail is read, not taken for junk", async () => {
    await startB();
    expect((await chainOf(bName()))?.state).toBe('live');
    // Recorded on b with no one known (actor.user null): b's page must still be read, not taken for junk.
    expect((await stack.apiAt(b.url, '/v1/audit/chains', 'not-a-token')).status).toBe(401);
    const page = (await stack.api('/v1/audit?decision=deny', tokens.carol)).json<Page>();
    expect(page.gateways.filter((g) => !g.ok)).toEqual([]);
    expect(page.events.some((e) => e.gateway === bName() && e.actor.user === null)).toBe(true);
    const exported = await stack.api('/v1/audit/export?decision=deny', tokens.carol);
    expect(exported.status).toBe(200);
    expect(exported.body.split('\n').filter((l) => l.includes(`"gateway":"${bName()}"`) && l.includes('"user":null')).length).toBeGreaterThan(0);
  });

  it('is undone, in the trail, when its frozen gateway wakes up', async () => {
    // Frozen (a stopped process, a paused VM) long enough to be taken for gone, then retired.
    b.child.kill('SIGSTOP');
    try {
      await sql.query('UPDATE gateways SET seen_at = $1 WHERE name = $2', [Date.now() - 60_000, bName()]);
      expect((await chainOf(bName()))?.state).toBe('gone');
      const retired = await retire(bName(), 'looked dead; trail exported');
      expect(retired.status, retired.body).toBe(200);
    } finally {
      b.child.kill('SIGCONT');
    }
    // Its next heartbeat makes it count again, and its own trail says which retirement that undid.
    await until(async () => (await chainOf(bName()))?.state === 'live', 15_000, 'the woken gateway counting again');
    const page = (await stack.api('/v1/audit?action=audit.chain_resumed', tokens.carol)).json<Page>();
    expect(page.gateways.filter((g) => !g.ok)).toEqual([]);
    expect(page.events).toContainEqual(
      expect.objectContaining({ gateway: bName(), action: 'audit.chain_resumed', details: expect.objectContaining({ gateway: bName(), retired_by: 'bob', retired_reason: 'looked dead; trail exported' }) }),
    );
  });

  it("of a gateway killed outright is refused while its row is fresh, and merged answers name it as not answering, never drop it", async () => {
    expect((await b.stop('SIGKILL')).signal).toBe('SIGKILL');
    const page = (await stack.api('/v1/audit', tokens.carol)).json<Page>();
    const killed = page.gateways.find((g) => g.name === bName());
    expect(killed?.ok).toBe(false);
    expect(killed?.error).toBeTruthy();
    const exported = await stack.api('/v1/audit/export', tokens.carol);
    expect(exported.status).not.toBe(200);
    expect(exported.body).toContain(bName());
    const refused = await retire(bName(), 'killed; trail exported');
    expect(refused.status).toBe(409);
    expect(refused.body).toContain('killed outright');
  });
});

describe('on the embedded store', () => {
  let alone: Stack;
  let bob = '';
  beforeAll(async () => {
    alone = await Stack.start({ config: { store: { url: '' } } });
    bob = await alone.login('bob');
  }, 120_000);
  afterAll(async () => alone?.stop());

  it('lists its own chain and retires nothing', async () => {
    const self = new URL(alone.url).host;
    const listed = (await alone.api('/v1/audit/chains', bob)).json<{ chains: Chain[] }>().chains;
    expect(listed.map((c) => [c.name, c.state])).toEqual([[self, 'live']]);
    const body = { reason: 'trail exported to the archive' };
    expect((await alone.api(`/v1/audit/chains/${self}/retire`, bob, { method: 'POST', body })).status).toBe(409);
    expect((await alone.api('/v1/audit/chains/127.0.0.1:1/retire', bob, { method: 'POST', body })).status).toBe(404);
  });
});
