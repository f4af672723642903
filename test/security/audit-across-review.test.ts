// Review of the audit trail across gateways (issue 18, point 5), as an attacker and as an auditor
// who must trust the answer: one real gateway process over a private PostgreSQL, and a second,
// real HTTPS server holding a gateway certificate of our CA that plays a hostile or broken peer.
// The peer is registered the way a gateway registers itself (a row in the store's `gateways`).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { Stack } from '../support/stack.js';
import { forgeCertificate } from '../support/test-ca.js';

let db: Postgres;
let stack: Stack;
let admin: pg.Client;
let peer: Server;
let peerUrl = '';
let carol = '';
/** What the hostile peer does with the next request; what it was asked. */
let behave: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
const asked: { url: string; headers: IncomingMessage['headers'] }[] = [];

const EVENT = (id: number) => ({
  id,
  time: new Date(Date.now() - 1000 * id).toISOString(),
  actor: { user: 'mallory', groups: [], auth_method: 'token', ip: '127.0.0.1' },
  action: 'job.submit',
  object: 'job:x',
  decision: 'allow',
  reason: 'r',
  policy_version: null,
  request_id: null,
  details: {},
  prev_hash: 'a'.repeat(64),
  hash: 'b'.repeat(64),
});

/** A GET through the gateway that tells whether the answer ended as HTTP says a complete one does. */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: string; complete: boolean }> {
  return new Promise((resolve) => {
    const req = request(`${stack.url}${path}`, { ca: stack.ca, agent: false, headers: { authorization: `Bearer ${carol}`, ...headers } }, (res) => {
      let body = '';
      let settled = false;
      const done = (complete: boolean) => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete });
      };
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done(res.complete));
      res.on('error', () => done(false));
      res.on('aborted', () => done(false));
      res.on('close', () => done(res.complete));
    });
    req.on('error', () => resolve({ status: 0, headers: {}, body: '', complete: false }));
    req.end();
  });
}

/** Registers (or refreshes) a gateway row the way registerGateway does. */
async function register(name: string, url: string, id = randomUUID()): Promise<string> {
  await admin.query('insert into gateways (id, name, url, started_at, seen_at) values ($1, $2, $3, $4, $5) on conflict (id) do update set seen_at = excluded.seen_at', [
    id,
    name,
    url,
    new Date().toISOString(),
    Date.now(),
  ]);
  return id;
}

beforeAll(async () => {
  db = await startPostgres();
  const url = await db.database('across');
  stack = await Stack.start({ config: { store: { url, password_file: db.passwordFile } } });
  carol = await stack.login('carol');
  const u = new URL(url);
  admin = new pg.Client({ host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), user: u.username, password: readFileSync(db.passwordFile, 'utf8') });
  admin.on('error', () => undefined);
  await admin.connect();
  // A gateway certificate of our CA, as a stolen or misbehaving gateway would hold.
  const ca = { cert: forge.pki.certificateFromPem(readFileSync(join(stack.certsDir, 'ca.crt'), 'utf8')), key: forge.pki.privateKeyFromPem(readFileSync(join(stack.certsDir, 'ca.key'), 'utf8')) as forge.pki.rsa.PrivateKey };
  const leaf = forgeCertificate([{ name: 'commonName', value: 'gatehouse-gateway' }], ca, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
  ]);
  peer = createServer({ cert: leaf.pem, key: leaf.keyPem }, (req, res) => {
    asked.push({ url: req.url ?? '', headers: req.headers });
    behave(req, res);
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  peerUrl = `https://127.0.0.1:${(peer.address() as AddressInfo).port}`;
}, 180_000);

afterAll(async () => {
  peer?.closeAllConnections();
  peer?.close();
  await admin?.end();
  await stack?.stop();
  await db?.stop();
});

beforeEach(async () => {
  asked.length = 0;
  await admin.query('delete from gateways where url <> $1', [stack.url]);
});

const json = (res: ServerResponse, body: unknown) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

describe('the audit trail across gateways, against a hostile or broken peer', () => {
  it('an export whose peer breaks off mid-stream does not end as a complete 200', async () => {
    await register('peer-a', peerUrl);
    behave = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify(EVENT(1))}\n`);
      res.socket?.destroy(); // the peer dies with its chain half sent
    };
    const answer = await raw('/v1/audit/export');
    expect(asked).toHaveLength(1);
    expect(answer.complete && answer.status === 200).toBe(false);
  });

  it('an export whose peer answers a line that is not an event does not end as a complete 200', async () => {
    await register('peer-a', peerUrl);
    behave = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end(`${JSON.stringify(EVENT(1))}\n{"not":"an event"}\n`);
    };
    for (const format of ['jsonl', 'csv']) {
      const answer = await raw(`/v1/audit/export?format=${format}`);
      expect(answer.complete && answer.status === 200, format).toBe(false);
    }
  });

  it('a peer answering 200 with junk is named as not answering, never a 500', async () => {
    await register('peer-a', peerUrl);
    behave = (_req, res) => json(res, { junk: true });
    const page = await raw('/v1/audit');
    expect(page.status, page.body).toBe(200);
    expect(JSON.parse(page.body).gateways).toContainEqual(expect.objectContaining({ name: 'peer-a', ok: false }));
    behave = (_req, res) => json(res, null);
    const verify = await raw('/v1/audit/verify');
    expect(verify.status, verify.body).toBe(200);
    const report = JSON.parse(verify.body) as { ok: boolean; gateways: { name: string; ok: boolean }[] };
    expect(report.ok).toBe(false);
    expect(report.gateways).toContainEqual(expect.objectContaining({ name: 'peer-a', ok: false }));
  });

  it('a peer’s verify report cannot rename itself or another gateway', async () => {
    await register('peer-a', peerUrl);
    const self = new URL(stack.url).host;
    behave = (_req, res) => json(res, { ok: true, name: self });
    const report = JSON.parse((await raw('/v1/audit/verify')).body) as { gateways: { name: string }[] };
    expect(report.gateways.map((g) => g.name).sort()).toEqual(['peer-a', self].sort());
  });

  it('a peer that sends its headers then stalls is left out in bounded time, not waited on forever', async () => {
    await register('peer-a', peerUrl);
    behave = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"events":['); // and nothing more
    };
    const page = await raw('/v1/audit');
    expect(page.status, page.body).toBe(200);
    expect(JSON.parse(page.body).gateways).toContainEqual(expect.objectContaining({ name: 'peer-a', ok: false }));
  }, 30_000);

  it('a row that claims this gateway’s own address is named as a chain not asked, never asked as this gateway again', async () => {
    const self = new URL(stack.url).host;
    // What a second gateway sharing this one's server.peer_url (a load balancer's, say) registers.
    const twin = await register(self, stack.url);
    onTestFinished(() => admin.query('delete from gateways where id = $1', [twin]).then(() => undefined));
    const merged = JSON.parse((await raw('/v1/audit?limit=1000')).body) as { events: { id: number; gateway: string }[]; gateways: { name: string; ok: boolean; error?: string }[] };
    const keys = merged.events.map((e) => `${e.gateway}#${e.id}`);
    expect(new Set(keys).size).toBe(keys.length); // its own chain once, not once more through itself
    expect(merged.gateways).toEqual([{ name: self, ok: true }, expect.objectContaining({ name: self, ok: false, error: expect.stringMatching(/server\.peer_url/) })]);
    expect(JSON.parse((await raw('/v1/audit/verify')).body).ok).toBe(false);
    const exported = await raw('/v1/audit/export');
    expect(exported.status).toBe(503);
  });

  it('two live rows for one peer URL: it is asked once and the second is named as not asked', async () => {
    await register('peer-a', peerUrl);
    await register('peer-a', peerUrl);
    behave = (_req, res) => json(res, { events: [EVENT(1)], next_cursor: null });
    const merged = JSON.parse((await raw('/v1/audit')).body) as { events: { id: number; gateway: string }[]; gateways: { name: string; ok: boolean }[] };
    expect(asked).toHaveLength(1);
    expect(merged.events.filter((e) => e.gateway === 'peer-a')).toHaveLength(1);
    expect(merged.gateways.filter((g) => g.name === 'peer-a').map((g) => g.ok).sort()).toEqual([false, true]);
  });

  it('the peer is asked under the request id this gateway answers and records', async () => {
    await register('peer-a', peerUrl);
    behave = (_req, res) => json(res, { events: [], next_cursor: null });
    const page = await raw('/v1/audit');
    expect(page.status).toBe(200);
    expect(asked[0]?.headers['x-request-id']).toBe(page.headers['x-request-id']);
    expect(asked[0]?.url).toContain('scope=local');
  });

  it('a merged cursor still pages this gateway’s trail once the peer has left the registry', async () => {
    const id = await register('peer-a', peerUrl);
    behave = (_req, res) => json(res, { events: [EVENT(1)], next_cursor: null });
    const first = JSON.parse((await raw('/v1/audit?limit=1')).body) as { next_cursor: string | null };
    expect(first.next_cursor).toMatch(/^m\./);
    await admin.query('delete from gateways where id = $1', [id]);
    const next = await raw(`/v1/audit?limit=1&cursor=${first.next_cursor}`);
    expect(next.status, next.body).toBe(200);
  });

  it('a forged merged cursor is a 400, never a 500', async () => {
    await register('peer-a', peerUrl);
    behave = (_req, res) => json(res, { events: [], next_cursor: null });
    const forge = (o: unknown) => `m.${Buffer.from(JSON.stringify(o)).toString('base64url')}`;
    for (const c of [forge({ t: 1e300, g: 'x', i: 1 }), forge({ t: 1, g: 'x', i: -1 }), forge({ t: 1, g: 5, i: 1 }), 'm.', 'm.!!', forge(null)]) {
      const answer = await raw(`/v1/audit?cursor=${encodeURIComponent(c)}`);
      expect(answer.status, `${c}: ${answer.body}`).toBe(400);
    }
  });

  it('a registered URL whose server is not a gateway of our CA never receives the caller’s token', async () => {
    // The engine: our CA, but not a gateway certificate.
    await register('engine', stack.engine.url);
    const page = await raw('/v1/audit');
    expect(page.status).toBe(200);
    const gw = (JSON.parse(page.body) as { gateways: { name: string; ok: boolean; error?: string }[] }).gateways.find((g) => g.name === 'engine');
    expect(gw).toMatchObject({ ok: false });
    expect(gw?.error).toMatch(/not a gateway/);
  });

  it('a gateway killed (-9) and started again at its address does not find its earlier run as a peer and count its chain twice', async () => {
    await stack.gateway.stop('SIGKILL');
    await stack.startGateway(); // the same port: its earlier row is still fresh in the registry
    const merged = JSON.parse((await raw('/v1/audit?limit=1000')).body) as { events: { id: number; gateway?: string }[]; gateways?: { name: string }[] };
    const ids = merged.events.map((e) => e.id);
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    expect(merged.gateways).toBeUndefined(); // this gateway alone
  });
});
