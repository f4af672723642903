// The audit trail on a real stack (engine, development IdP and gateway, each its own process): the
// auditor's query, export and verify over HTTP and through `gatehouse audit`, who may read the trail
// (and that asking is itself audited), tampering found at its event, no secret in any event nor in
// the trail's bytes after a whole login-to-logout cycle, every answered request still in the trail
// after the gateway is killed with SIGKILL under load, and the gateway failing closed (503
// audit_unavailable, not ready) while the trail's volume refuses writes, then recovering by itself.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditEvent, loadAuditKey, openAuditDb, verifyTrail, type VerifyReport } from '../src/audit/index.js';
import { hashEvent } from '../src/audit/chain.js';
import { CHECKPOINT_TYP } from '../src/audit/checkpoint.js';
import { CSV_COLUMNS } from '../src/audit/csv.js';
import { writeDataset } from '../src/compute/catalog/index.js';
import type { JobSpec } from '../src/wire/index.js';
import { trailBytes } from './support/audit-trail.js';
import { startCli } from './support/cli-process.js';
import { runCli } from './support/gatehouse.js';
import { fetchTls, type Response } from './support/https.js';
import { approveDevice, completeCodeFlow } from './support/oidc-browser.js';
import { passwordOf, PEOPLE, requireSlapd, type Slapd, startSlapd } from './support/slapd.js';
import { Stack } from './support/stack.js';
import { until } from './support/until.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
let outputs = 0;
const spec = (o: Partial<JobSpec> = {}): JobSpec => ({
  name: 'audited',
  input: 'scratch/tiny',
  output: `scratch/audited-${++outputs}`,
  runtime: 'python',
  source: COPY,
  resources: { cores: 1, memory_mb: 256, time_limit_s: 120 },
  max_attempts: 1,
  ...o,
});

interface Call {
  token?: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Sent as X-Request-Id, so the test knows each request's id before the answer. */
  rid?: string;
}

function call(stack: Stack, path: string, o: Call = {}): Promise<Response> {
  return fetchTls(`${stack.url}${path}`, {
    ca: stack.ca,
    method: o.method ?? 'GET',
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(o.rid ? { 'x-request-id': o.rid } : {}),
      ...o.headers,
    },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
}

const ridOf = (res: Response) => String(res.headers['x-request-id']);

interface Tokens {
  access_token: string;
  refresh_token: string;
  device_code: string;
}

/** SSO through the gateway's device grant, approved in the development provider; everything a client holds. */
async function deviceLogin(stack: Stack, user: string): Promise<Tokens> {
  const start = await call(stack, '/v1/auth/device', { method: 'POST', body: {} });
  expect(start.status, start.body).toBe(200);
  const { device_code, verification_uri_complete } = start.json<{ device_code: string; verification_uri_complete: string }>();
  expect((await approveDevice(verification_uri_complete, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
  const answer = await call(stack, '/v1/auth/device/token', { method: 'POST', body: { device_code } });
  expect(answer.status, answer.body).toBe(200);
  return { ...answer.json<{ access_token: string; refresh_token: string }>(), device_code };
}

async function writeTiny(stack: Stack): Promise<void> {
  const rows = (p: number) => ({ text: `id,word\n${[1, 2, 3].map((r) => `${p * 3 + r},w${r}`).join('\n')}\n`, rows: 3 });
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows(0), rows(1)] });
}

/** Submits as `token`'s user and waits for the job and for its job.finish event in the trail. */
async function finishedJob(stack: Stack, token: string, s: JobSpec = spec()): Promise<string> {
  const created = await call(stack, '/v1/jobs', { token, method: 'POST', body: s });
  expect(created.status, created.body).toBe(201);
  const { id } = created.json<{ id: string }>();
  const state = await until(async () => {
    const v = (await call(stack, `/v1/jobs/${id}`, { token })).json<{ state: string }>();
    return ['succeeded', 'failed', 'cancelled'].includes(v.state) ? v.state : undefined;
  }, 60_000, `job ${id} finished`);
  expect(state).toBe('succeeded');
  await until(async () => (stack.auditEvents().some((e) => e.action === 'job.finish' && e.object === `job:${id}`) ? true : undefined), 10_000, `job.finish of ${id} in the trail`);
  return id;
}

/** The trail verified offline, as an auditor with a copy of the database and the public key would. */
function verifyOffline(stack: Stack): VerifyReport {
  const key = loadAuditKey(stack.certsDir);
  const db = openAuditDb(stack.auditDir, { readonly: true });
  try {
    return verifyTrail(db, new Map([[key.kid, key.publicKey]]));
  } finally {
    db.close();
  }
}

/** The last event a stored checkpoint signs (0 before the first). */
function signedTo(stack: Stack): number {
  const db = openAuditDb(stack.auditDir, { readonly: true });
  try {
    return (db.prepare('select max(event_id) as id from audit_checkpoints').get() as { id: number | null }).id ?? 0;
  } finally {
    db.close();
  }
}

/** RFC 4180, as the export writes it: CRLF records, quoted fields with doubled quotes. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') {
        cell += '"';
        i++;
      } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      record.push(cell);
      records.push(record);
      record = [];
      cell = '';
      i++;
    } else cell += c;
  }
  if (quoted || cell !== '' || record.length > 0) throw new Error('the CSV does not end with a whole record');
  return records;
}

/** A cell as the event had it: the export puts ' before what a spreadsheet would run as a formula. */
const unguard = (cell: string) => (/^'[=+\-@\t\r]/.test(cell) ? cell.slice(1) : cell);

/** JWT-shaped strings other than the trail's checkpoints (public, signed statements of its head). */
function tokensIn(text: string): string[] {
  return [...text.matchAll(/ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]*/g)]
    .map((m) => m[0])
    .filter((jws) => {
      // In the raw file a signed checkpoint can sit right after another base64url value (its `prev`
      // digest), so the match may start early: it is a checkpoint if a header starting at some "ey" is one.
      const head = jws.split('.')[0]!;
      for (let i = head.indexOf('ey'); i >= 0; i = head.indexOf('ey', i + 1)) {
        try {
          if ((JSON.parse(Buffer.from(head.slice(i), 'base64url').toString('utf8')) as { typ?: string }).typ === CHECKPOINT_TYP) return false;
        } catch {
          // not a header from here
        }
      }
      return true;
    });
}

// ---------------------------------------------------------------------------------------------

let slapd: Slapd | undefined;
/** Why LDAP is left out of the secrets cycle, when it is. */
let ldapSkipped: string | null = null;
let stack: Stack;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  try {
    requireSlapd();
    slapd = await startSlapd();
  } catch (err) {
    ldapSkipped = (err as Error).message;
  }
  stack = await Stack.start({
    config: {
      audit: { checkpoint_interval: '1s' },
      jobs: { poll_ms: 100, status_cache_ms: 100 },
      ...(slapd ? { ldap: { url: slapd.url, start_tls: true, ca_file: slapd.caFile, bind_dn: slapd.bindDn, bind_password: slapd.bindPassword, user_base: PEOPLE } } : {}),
    },
  });
  await writeTiny(stack);
  for (const user of ['alice', 'carol']) tokens[user] = await stack.login(user);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await slapd?.stop();
});

/** What alice did before the auditor looks: a listing, a refused job, a job run to its end, a refused policy view. */
const alice = { listRid: '', deniedRid: '', job: '', policyRid: '' };

/** GET /v1/audit as carol: one page, and the id of the audit.query event the ask itself left. */
async function auditorPage(params: Record<string, string>, token = tokens.carol!): Promise<{ events: AuditEvent[]; next_cursor: string | null; rid: string; ownId: number }> {
  const res = await call(stack, `/v1/audit?${new URLSearchParams(params)}`, { token });
  expect(res.status, res.body).toBe(200);
  const rid = ridOf(res);
  const own = stack.auditEvents().find((e) => e.request_id === rid);
  expect(own, `the audit.query event of ${rid}`).toMatchObject({ action: 'audit.query', decision: 'allow', actor: { user: 'carol' } });
  return { ...res.json<{ events: AuditEvent[]; next_cursor: string | null }>(), rid, ownId: own!.id };
}

/** What the trail holds for a filter up to a point, in the API's order (newest first). */
function expectedIds(pred: (e: AuditEvent) => boolean, upTo: number): number[] {
  return stack
    .auditEvents()
    .filter((e) => e.id <= upTo && pred(e))
    .sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || b.id - a.id)
    .map((e) => e.id);
}

const ids = (events: AuditEvent[]) => events.map((e) => e.id);

describe('the auditor’s API on a live gateway', () => {
  beforeAll(async () => {
    const listed = await call(stack, '/v1/datasets', { token: tokens.alice });
    expect(listed.status).toBe(200);
    alice.listRid = ridOf(listed);
    const denied = await call(stack, '/v1/jobs', { token: tokens.alice, method: 'POST', body: spec({ input: 'hr' }) });
    expect(denied.status).toBe(403);
    alice.deniedRid = ridOf(denied);
    alice.job = await finishedJob(stack, tokens.alice!);
    const policy = await call(stack, '/v1/policy', { token: tokens.alice });
    expect(policy.status).toBe(403);
    alice.policyRid = ridOf(policy);
  }, 90_000);

  it('answers carol (group auditors) with exactly what matches each filter, newest first', async () => {
    const byUser = await auditorPage({ user: 'alice', limit: '1000' });
    expect(ids(byUser.events)).toEqual(expectedIds((e) => e.actor.user === 'alice', byUser.ownId));
    expect(byUser.events.map((e) => e.request_id)).toEqual(expect.arrayContaining([alice.listRid, alice.deniedRid, alice.policyRid]));

    const jobs = await auditorPage({ action: 'job.', limit: '1000' });
    expect(ids(jobs.events)).toEqual(expectedIds((e) => e.action.startsWith('job.'), jobs.ownId));
    expect(jobs.events.filter((e) => e.object === `job:${alice.job}`).map((e) => e.action)).toEqual(expect.arrayContaining(['job.submit', 'job.finish']));

    const byObject = await auditorPage({ object: `job:${alice.job}`, limit: '1000' });
    expect(ids(byObject.events)).toEqual(expectedIds((e) => e.object === `job:${alice.job}`, byObject.ownId));
    expect(byObject.events.find((e) => e.action === 'job.finish')).toMatchObject({ decision: 'allow', actor: { user: 'alice' }, details: { state: 'succeeded', input: 'scratch/tiny' } });

    const denials = await auditorPage({ decision: 'deny', limit: '1000' });
    expect(ids(denials.events)).toEqual(expectedIds((e) => e.decision === 'deny', denials.ownId));
    expect(denials.events).toContainEqual(expect.objectContaining({ action: 'dataset.authorize', object: 'dataset:hr', request_id: alice.deniedRid, actor: expect.objectContaining({ user: 'alice' }) }));
    expect(denials.events).toContainEqual(expect.objectContaining({ action: 'policy.view', request_id: alice.policyRid }));

    const listing = stack.auditEvents().find((e) => e.request_id === alice.listRid)!;
    expect(listing).toMatchObject({ action: 'dataset.list', actor: { user: 'alice' } });
    const since = await auditorPage({ since: listing.time, limit: '1000' });
    expect(ids(since.events)).toEqual(expectedIds((e) => Date.parse(e.time) >= Date.parse(listing.time), since.ownId));
    expect(ids(since.events)).toContain(listing.id);

    const byRequest = await auditorPage({ request_id: alice.listRid });
    expect(byRequest.events).toEqual([listing]);
    expect(byRequest.next_cursor).toBeNull();
  });

  it('pages with the cursor: every event once, in the order of one big page', async () => {
    const whole = await auditorPage({ user: 'alice', limit: '1000' });
    expect(whole.events.length).toBeGreaterThan(4);
    const paged: AuditEvent[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await auditorPage({ user: 'alice', limit: '2', ...(cursor ? { cursor } : {}) });
      expect(page.events.length).toBeLessThanOrEqual(2);
      paged.push(...page.events);
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(ids(paged)).toEqual(ids(whole.events));
    expect(pages).toBe(Math.ceil(whole.events.length / 2));
  });

  it('refuses alice (a data scientist) with 403, and her ask is in the trail as a denied audit.query', async () => {
    const refused = await call(stack, '/v1/audit?user=carol', { token: tokens.alice });
    expect(refused.status).toBe(403);
    expect(refused.json()).toMatchObject({ error: 'forbidden', message: 'no rule grants read on audit:events to user:alice' });
    const event = stack.auditEvents().find((e) => e.request_id === ridOf(refused));
    expect(event).toMatchObject({ action: 'audit.query', object: 'audit:events', decision: 'deny', actor: { user: 'alice', groups: ['analysts'] }, details: { kind: 'query', filter: { user: 'carol' } } });
    for (const path of ['/v1/audit/export?format=csv', '/v1/audit/verify']) {
      const other = await call(stack, path, { token: tokens.alice });
      expect(other.status, path).toBe(403);
      expect(stack.auditEvents().find((e) => e.request_id === ridOf(other))).toMatchObject({ action: 'audit.query', decision: 'deny', actor: { user: 'alice' } });
    }
  });

  it('records each of carol’s asks as an allowed audit.query with the filter as given', async () => {
    const asks: Record<string, string>[] = [{ user: 'alice', action: 'job.' }, { decision: 'deny', since: '1h', limit: '5' }, { object: 'dataset:', request_id: alice.listRid }];
    for (const filter of asks) {
      const page = await auditorPage(filter);
      expect(stack.auditEvents().find((e) => e.id === page.ownId)).toMatchObject({
        action: 'audit.query',
        object: 'audit:events',
        decision: 'allow',
        actor: { user: 'carol', groups: ['auditors'] },
        reason: expect.stringContaining('role:auditors'),
        request_id: page.rid,
        details: { kind: 'query', filter },
      });
    }
    const exported = await call(stack, '/v1/audit/export?format=jsonl&user=bob', { token: tokens.carol });
    expect(exported.status).toBe(200);
    expect(stack.auditEvents().find((e) => e.request_id === ridOf(exported))).toMatchObject({ action: 'audit.query', decision: 'allow', details: { kind: 'export', filter: { user: 'bob' } } });
  });

  it('exports every matching event as JSON lines and as CSV, oldest first, as many as the query finds', async () => {
    const query = await auditorPage({ user: 'alice', limit: '1000' });
    const expected = [...query.events].reverse(); // the chain's order

    const jsonl = await call(stack, '/v1/audit/export?format=jsonl&user=alice', { token: tokens.carol });
    expect(jsonl.status).toBe(200);
    expect(jsonl.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = jsonl.body.split('\n');
    expect(lines.pop()).toBe('');
    const events = lines.map((l) => JSON.parse(l) as AuditEvent);
    expect(events).toHaveLength(query.events.length);
    expect(events).toEqual(expected);
    for (const e of events) expect(hashEvent(e), `event #${e.id}`).toBe(e.hash); // each line verifies on its own

    const csv = await call(stack, '/v1/audit/export?format=csv&user=alice', { token: tokens.carol });
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="audit-\d{4}-\d{2}-\d{2}\.csv"$/);
    const [header, ...records] = parseCsv(csv.body);
    expect(header).toEqual([...CSV_COLUMNS]);
    expect(records).toHaveLength(query.events.length);
    records.forEach((r, i) => {
      const e = expected[i]!;
      const cell = Object.fromEntries(CSV_COLUMNS.map((c, k) => [c, unguard(r[k]!)]));
      expect(r).toHaveLength(CSV_COLUMNS.length);
      expect(cell).toMatchObject({ id: String(e.id), time: e.time, user: 'alice', action: e.action, object: e.object, decision: e.decision, reason: e.reason, request_id: e.request_id ?? '', hash: e.hash, prev_hash: e.prev_hash });
      expect(JSON.parse(cell.details!)).toEqual(e.details);
    });

    // Unfiltered: the whole chain up to the export's own event, without a gap.
    const before = stack.auditEvents().length;
    const all = await call(stack, '/v1/audit/export', { token: tokens.carol });
    const allIds = all.body.trimEnd().split('\n').map((l) => (JSON.parse(l) as AuditEvent).id);
    expect(allIds.length).toBeGreaterThan(before);
    expect(allIds).toEqual(Array.from({ length: allIds.length }, (_, i) => i + 1));
    expect(allIds).toContain(stack.auditEvents().find((e) => e.request_id === ridOf(all))!.id);
  });

  it('verifies a live trail as intact, finds an event edited in the database at its id, and is intact again once restored', async () => {
    // The head is signed every second (audit.checkpoint_interval): verify checks against a checkpoint too.
    await until(async () => (signedTo(stack) > 0 ? true : undefined), 10_000, 'a first checkpoint');
    const ok = await call(stack, '/v1/audit/verify', { token: tokens.carol });
    expect(ok.status).toBe(200);
    const report = ok.json<VerifyReport>();
    expect(report).toMatchObject({ ok: true, problems: [], first_id: 1 });
    expect(report.events).toBe(stack.auditEvents().length);
    expect(report.checkpoints).toBeGreaterThan(0);

    const target = stack.auditEvents().find((e) => e.request_id === alice.deniedRid)!;
    await tampered(target.id, async () => {
      const broken = (await call(stack, '/v1/audit/verify', { token: tokens.carol })).json<VerifyReport>();
      expect(broken.ok).toBe(false);
      expect(broken.problems).toContainEqual(expect.objectContaining({ event_id: target.id, kind: 'edited' }));
      expect(broken.problems.every((p) => p.event_id === target.id)).toBe(true);
    });
    const again = (await call(stack, '/v1/audit/verify', { token: tokens.carol })).json<VerifyReport>();
    expect(again).toMatchObject({ ok: true, problems: [] });
  });
});

/**
 * Rewrites one event's reason in the live trail, as someone with write access to audit.db would
 * (while the gateway runs), runs `check`, and puts the reason back.
 */
async function tampered(id: number, check: () => Promise<void>): Promise<void> {
  const db = new Database(join(stack.auditDir, 'audit.db'));
  db.pragma('busy_timeout = 5000');
  const original = db.prepare('select reason from audit_events where id = ?').pluck().get(id) as string;
  try {
    expect(db.prepare('update audit_events set reason = ? where id = ?').run('allowed by the on-call admin', id).changes).toBe(1);
    await check();
  } finally {
    db.prepare('update audit_events set reason = ? where id = ?').run(original, id);
    db.close();
  }
}

describe('gatehouse audit (the CLI) against the live gateway', () => {
  let env: Record<string, string>;

  beforeAll(async () => {
    // carol logs in as an auditor would: `gatehouse login --sso`, approved in the browser.
    env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'gatehouse-home-carol-')), GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.certsDir, 'ca.crt') };
    const login = startCli(['login', '--sso', '--no-browser', '--json'], env);
    const [, url] = await login.waitFor(/or open (\S+)/);
    expect((await approveDevice(url!, { username: 'carol', password: 'carol-demo' })).outcome).toBe('approved');
    expect((await login.done).code).toBe(0);
  }, 60_000);

  afterAll(() => {
    if (env) rmSync(env.XDG_CONFIG_HOME!, { recursive: true, force: true });
  });

  const run = (args: string[]) => runCli(args, { env, timeoutMs: 60_000 });
  const aliceIds = () => expectedIds((e) => e.actor.user === 'alice', Number.MAX_SAFE_INTEGER);

  it('audit query --user alice --since 1h --json prints alice’s events as one JSON array', async () => {
    const r = await run(['audit', 'query', '--user', 'alice', '--since', '1h', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const events = JSON.parse(r.stdout) as AuditEvent[];
    expect(ids(events)).toEqual(aliceIds());
    expect(events.every((e) => e.actor.user === 'alice')).toBe(true);
    expect(events.find((e) => e.request_id === alice.listRid)).toMatchObject({ action: 'dataset.list' });
  });

  it('audit query prints a table, one line an event under a header', async () => {
    const r = await run(['audit', 'query', '--user', 'alice', '--action', 'dataset.']);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...lines] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^time \(local\)\s+user\s+action\s+object\s+decision\s+reason$/);
    const expected = expectedIds((e) => e.actor.user === 'alice' && e.action.startsWith('dataset.'), Number.MAX_SAFE_INTEGER);
    expect(lines).toHaveLength(expected.length);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\s+alice\s+dataset\.(list|authorize|read|write)\s+dataset:\S+\s+(allow|deny)\s+\S/);
    expect(lines.some((l) => /dataset\.authorize\s+dataset:hr\s+deny\s+no rule grants read on dataset:hr to user:alice/.test(l))).toBe(true);
  });

  it('audit export --format csv writes every match as CSV', async () => {
    const r = await run(['audit', 'export', '--format', 'csv', '--user', 'alice']);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...records] = parseCsv(r.stdout);
    expect(header).toEqual([...CSV_COLUMNS]);
    expect(records.map((rec) => Number(rec[0]))).toEqual([...aliceIds()].sort((a, b) => a - b));
  });

  it('audit verify exits 0 on an intact trail and 1, naming the event, after one is edited', async () => {
    const intact = await run(['audit', 'verify']);
    expect(intact.code, intact.stderr).toBe(0);
    expect(intact.stdout).toMatch(/^trail intact: \d+ events #1\.\.#\d+/);
    const target = stack.auditEvents().find((e) => e.request_id === alice.policyRid)!;
    await tampered(target.id, async () => {
      const broken = await run(['audit', 'verify']);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(/^trail NOT intact/);
      expect(broken.stdout).toContain(`#${target.id}  edited:`);
      const json = await run(['audit', 'verify', '--json']);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, problems: expect.arrayContaining([expect.objectContaining({ event_id: target.id, kind: 'edited' })]) });
    });
    expect((await run(['audit', 'verify'])).code).toBe(0);
  });
});

describe('no secret in the trail', () => {
  it('after login (SSO device flow, browser, LDAP), refresh, a certificate, a job and logout, no event and no byte of the trail holds a credential', async () => {
    const secrets: Record<string, string> = { 'alice-demo': 'alice-demo', 'carol-demo': 'carol-demo' };
    // SSO from the command line: device code, access and refresh tokens.
    const first = await deviceLogin(stack, 'alice');
    Object.assign(secrets, { device_code: first.device_code, access_token: first.access_token, refresh_token: first.refresh_token });
    // Refresh rotation.
    const refreshed = await call(stack, '/v1/auth/token', { method: 'POST', body: { grant_type: 'refresh_token', refresh_token: first.refresh_token } });
    expect(refreshed.status, refreshed.body).toBe(200);
    const pair = refreshed.json<{ access_token: string; refresh_token: string }>();
    Object.assign(secrets, { refreshed_access_token: pair.access_token, refreshed_refresh_token: pair.refresh_token });

    // A client certificate for the refreshed login, used over mTLS.
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-csr-'));
    try {
      execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'r.csr'), '-subj', '/CN=alice'], { stdio: 'ignore' });
      const key = readFileSync(join(dir, 'k.pem'), 'utf8');
      secrets.private_key = key;
      const keyLines = key.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
      for (const [i, l] of keyLines.entries()) secrets[`private_key_line_${i}`] = l;
      const issued = await call(stack, '/v1/certs', { token: pair.access_token, method: 'POST', body: { csr: readFileSync(join(dir, 'r.csr'), 'utf8') } });
      expect(issued.status, issued.body).toBe(200);
      const { certificate } = issued.json<{ certificate: string }>();
      const mtls = await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, cert: certificate, key });
      expect(mtls.json()).toMatchObject({ user: 'alice', credential: 'certificate' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // A job, submitted and run to its end, with the refreshed token.
    const job = await finishedJob(stack, pair.access_token);

    // Browser sign-in: the authorization code, the session cookie and its CSRF token; then logout through the cookie.
    const start = await call(stack, '/v1/auth/oidc/login?return_to=/v1/whoami');
    expect(start.status).toBe(302);
    const callback = await completeCodeFlow(String(start.headers.location), { username: 'carol', password: 'carol-demo' });
    secrets.authorization_code = callback.searchParams.get('code')!;
    const binding = ([] as string[]).concat(start.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!).find((c) => c.startsWith('__Host-gatehouse_oidc='))!;
    secrets.sign_in_binding = binding.slice('__Host-gatehouse_oidc='.length);
    const landed = await call(stack, `${callback.pathname}${callback.search}`, { headers: { cookie: binding } });
    expect(landed.status, landed.body).toBe(302);
    const cookies = (landed.headers['set-cookie'] as string[]).map((c) => c.split(';')[0]!);
    const cookieValue = (name: string) => cookies.find((c) => c.startsWith(`${name}=`))!.slice(name.length + 1);
    Object.assign(secrets, { session_cookie: cookieValue('__Host-gatehouse_session'), csrf_token: cookieValue('__Host-gatehouse_csrf') });
    expect((await call(stack, '/v1/whoami', { headers: { cookie: cookies.join('; ') } })).json()).toMatchObject({ user: 'carol', credential: 'session' });
    const browserOut = await call(stack, '/v1/auth/logout', { method: 'POST', body: {}, headers: { cookie: cookies.join('; '), 'x-csrf-token': secrets.csrf_token! } });
    expect(browserOut.status, browserOut.body).toBe(200);

    // LDAP: the service account's bind password, a right and a wrong password.
    if (slapd) {
      secrets.bind_password = slapd.bindPassword;
      secrets.ldap_password = passwordOf('bob');
      secrets.wrong_password = 'Wr0ng-horse-battery';
      const ldap = await call(stack, '/v1/auth/ldap', { method: 'POST', body: { username: 'bob', password: passwordOf('bob') } });
      expect(ldap.status, ldap.body).toBe(200);
      const ldapPair = ldap.json<{ access_token: string; refresh_token: string }>();
      Object.assign(secrets, { ldap_access_token: ldapPair.access_token, ldap_refresh_token: ldapPair.refresh_token });
      const wrong = await call(stack, '/v1/auth/ldap', { method: 'POST', body: { username: 'bob', password: secrets.wrong_password } });
      expect(wrong.status).toBe(401);
      expect((await call(stack, '/v1/auth/logout', { token: ldapPair.access_token, method: 'POST', body: {} })).status).toBe(200);
    } else {
      console.warn(`LDAP left out of the secrets cycle: ${ldapSkipped}`);
    }

    // Logout of the SSO login: its tokens and certificate end.
    const out = await call(stack, '/v1/auth/logout', { token: pair.access_token, method: 'POST', body: {} });
    expect(out.status, out.body).toBe(200);

    const events = stack.auditEvents();
    const actions = new Set(events.map((e) => e.action));
    for (const a of ['auth.login', 'token.refresh', 'cert.issue', 'job.submit', 'job.finish', 'auth.logout', ...(slapd ? ['auth.login_failed'] : [])]) expect(actions, a).toContain(a);
    expect(events).toContainEqual(expect.objectContaining({ action: 'job.finish', object: `job:${job}` }));
    expect(events).toContainEqual(expect.objectContaining({ action: 'auth.login', actor: expect.objectContaining({ user: 'carol' }), details: expect.objectContaining({ flow: expect.any(String) }) }));
    if (slapd) {
      expect(events).toContainEqual(expect.objectContaining({ action: 'auth.login', actor: expect.objectContaining({ user: 'bob', auth_method: 'ldap' }) }));
      expect(events).toContainEqual(expect.objectContaining({ action: 'auth.login_failed', decision: 'deny', details: expect.objectContaining({ attempted_user: 'bob' }) }));
    }

    const asJson = JSON.stringify(events);
    const bytes = trailBytes(stack.auditDir);
    for (const [where, text] of [['the events', asJson], ['the trail file', bytes]] as const) {
      for (const [name, value] of Object.entries(secrets)) {
        expect(value.length, name).toBeGreaterThan(7);
        expect(text.includes(value), `${name} in ${where}`).toBe(false);
      }
      // Not even a part of a token: each JWT's payload and signature are unique to it.
      for (const name of ['access_token', 'refreshed_access_token', 'ldap_access_token']) {
        for (const part of (secrets[name] ?? '').split('.').slice(1)) expect(text.includes(part), `part of ${name} in ${where}`).toBe(false);
      }
      expect(tokensIn(text), where).toEqual([]);
      expect(text, where).not.toMatch(/ghr_|ghs_/); // refresh tokens and session cookies
      expect(text, where).not.toContain('PRIVATE KEY');
    }
  }, 120_000);
});

describe('the gateway killed with SIGKILL under load', () => {
  it('keeps the event of every request that got an answer, the chain verifies, and the trail continues after a restart', async () => {
    const headBefore = stack.auditEvents().at(-1)!.id;
    const kinds = [
      { action: 'dataset.list', status: 200, send: (rid: string) => call(stack, '/v1/datasets', { token: tokens.alice, rid }) },
      { action: 'policy.explain', status: 403, send: (rid: string) => call(stack, '/v1/policy/explain', { token: tokens.alice, rid, method: 'POST', body: { user: 'bob', object: 'dataset:words', action: 'read' } }) },
      { action: 'auth.rejected', status: 401, send: (rid: string) => call(stack, '/v1/whoami', { token: 'not.a.token', rid }) },
    ];
    const answered: { rid: string; kind: number; status: number; echoed: string }[] = [];
    let failures = 0;
    // Once armed, the next answer kills the gateway the moment it arrives: that answer's event,
    // and those of the answers just before it, are the ones a reply-before-commit would lose.
    let armed = false;
    let killed = false;
    const client = async (c: number) => {
      for (let n = 0; ; n++) {
        const rid = `load-${c}-${n}-${randomUUID().slice(0, 8)}`;
        const kind = (c + n) % kinds.length;
        let res: Response;
        try {
          res = await kinds[kind]!.send(rid);
        } catch {
          failures++;
          return; // the gateway is gone: this request got no answer
        }
        answered.push({ rid, kind, status: res.status, echoed: ridOf(res) });
        if (armed && !killed) {
          killed = true;
          stack.gateway.child.kill('SIGKILL');
        }
      }
    };
    const clients = Array.from({ length: 12 }, (_, c) => client(c));
    // Enough answers, and a checkpoint signed during the load, so a lost tail would be a truncation.
    await until(async () => (answered.length >= 300 && signedTo(stack) > headBefore ? true : undefined), 60_000, '300 answers and a checkpoint under load');
    armed = true;
    expect(await stack.gateway.exited).toMatchObject({ signal: 'SIGKILL' });
    await Promise.all(clients);
    expect(killed).toBe(true);
    expect(failures).toBe(12); // every client ended on the killed gateway, none before

    for (const a of answered) {
      expect(a.echoed).toBe(a.rid);
      expect(a.status, `${kinds[a.kind]!.action} ${a.rid}`).toBe(kinds[a.kind]!.status);
    }
    const trail = stack.auditEvents();
    const byRid = new Map(trail.filter((e) => e.request_id !== null).map((e) => [e.request_id!, e]));
    const lost = answered.filter((a) => byRid.get(a.rid)?.action !== kinds[a.kind]!.action);
    expect(lost, 'answered requests without their event').toEqual([]);

    const report = verifyOffline(stack);
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, first_id: 1, last_id: trail.at(-1)!.id, events: trail.length });
    expect(report.last_checkpoint!.event_id).toBeGreaterThan(headBefore);
    expect(report.last_checkpoint!.event_id).toBeLessThanOrEqual(report.last_id!);

    // The gateway starts again on the same trail: ready, and the chain goes on from where it stopped.
    const last = trail.at(-1)!;
    await stack.startGateway();
    const ready = await call(stack, '/readyz');
    expect(ready.status, ready.body).toBe(200);
    expect(ready.json()).toMatchObject({ status: 'ready', checks: { audit: expect.stringMatching(/^ok \(#\d+/) } });
    const after = await call(stack, '/v1/datasets', { token: tokens.alice, rid: `after-restart-${randomUUID()}` });
    expect(after.status).toBe(200);
    const later = stack.auditEvents().filter((e) => e.id > last.id);
    expect(later[0]).toMatchObject({ id: last.id + 1, prev_hash: last.hash });
    expect(later.find((e) => e.request_id === ridOf(after))).toMatchObject({ action: 'dataset.list' });
    const verified = (await call(stack, '/v1/audit/verify', { token: tokens.carol })).json<VerifyReport>();
    expect(verified).toMatchObject({ ok: true, problems: [] });
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// Fail closed: the trail on a tmpfs of its own, made unwritable while the gateway runs.

/** Null when this process may mount a tmpfs; otherwise why not (the suite is skipped). */
function tmpfsProblem(): string | null {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const noTmpfs = tmpfsProblem();
if (noTmpfs) console.warn(`skipping the fail-closed suite: ${noTmpfs}`);

describe.skipIf(noTmpfs !== null)('the trail’s volume refusing writes (fail closed)', () => {
  let mnt = '';
  let mounted = false;
  let outage: Stack;
  const people: Record<string, string> = {};

  beforeAll(async () => {
    mnt = mkdtempSync(join(tmpdir(), 'gatehouse-audit-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt], { stdio: 'pipe' });
    mounted = true;
    outage = await Stack.start({ policyLines: ['p2, user:alice, max_concurrent_jobs, 1'], config: { audit: { dir: mnt, checkpoint_interval: '1s' }, jobs: { poll_ms: 100, status_cache_ms: 100 } } });
    await writeTiny(outage);
    for (const user of ['alice', 'carol']) people[user] = await outage.login(user);
  }, 120_000);

  afterAll(async () => {
    await outage?.stop();
    if (mounted) {
      try {
        execFileSync('umount', [mnt], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', mnt], { stdio: 'pipe' }); // something still holds it: detach it anyway
      }
    }
    if (mnt) rmSync(mnt, { recursive: true, force: true });
  });

  /** Makes the volume refuse writes: read-only when the kernel lets us remount it under the open database, else full. */
  function breakWrites(): { how: string; repair: () => void } {
    try {
      execFileSync('mount', ['-o', 'remount,ro', mnt], { stdio: 'pipe' });
      return { how: 'remounted read-only', repair: () => execFileSync('mount', ['-o', 'remount,rw', mnt], { stdio: 'pipe' }) };
    } catch {
      // EBUSY: files open for writing (the database, its WAL) pin the mount writable. Fill it instead.
      const filler = join(mnt, 'filler');
      const fd = openSync(filler, 'w');
      try {
        for (const size of [1 << 20, 4096, 512]) {
          const chunk = Buffer.alloc(size, 0x5a);
          for (;;) {
            try {
              writeSync(fd, chunk);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
              break;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
      return { how: 'filled', repair: () => unlinkSync(filler) };
    }
  }

  it('refuses audited decisions with 503 audit_unavailable, is not ready, decides nothing unrecorded, and recovers by itself', async () => {
    const { alice: aliceToken, carol: carolToken } = people as { alice: string; carol: string };
    expect((await call(outage, '/v1/datasets', { token: aliceToken })).status).toBe(200);
    const jobsBefore = (await call(outage, '/v1/jobs', { token: aliceToken })).json<{ jobs: { id: string }[] }>().jobs.map((j) => j.id);

    const broken = breakWrites();
    const refusedRids: string[] = [];
    // WAL space already on the volume may take a few more commits: ask until the trail refuses.
    const first = await until(
      async () => {
        const res = await call(outage, '/v1/datasets', { token: aliceToken });
        if (res.status === 503) return res;
        expect(res.status, res.body).toBe(200);
        return undefined;
      },
      30_000,
      `a refused request once the volume is ${broken.how}`,
    );
    expect(first.json()).toMatchObject({ error: 'audit_unavailable' });
    refusedRids.push(ridOf(first));

    const notReady = await call(outage, '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.json()).toMatchObject({ error: 'not_ready', checks: { audit: expect.stringMatching(/^failed: the trail cannot be written since /) } });
    expect((await call(outage, '/healthz')).status).toBe(200); // alive, just not deciding

    // Every decision that needs the trail is refused meanwhile, before anything happens.
    const outageSpec = spec({ output: `scratch/outage-${randomUUID().slice(0, 8)}` });
    const refusals = [
      await call(outage, '/v1/datasets', { token: aliceToken }),
      await call(outage, '/v1/jobs', { token: aliceToken, method: 'POST', body: outageSpec }),
      await call(outage, '/v1/policy/explain', { token: aliceToken, method: 'POST', body: { user: 'alice', object: 'dataset:words', action: 'read' } }),
      await call(outage, '/v1/audit?user=alice', { token: carolToken }),
      await call(outage, '/v1/whoami', { token: 'not.a.token' }), // even a refused credential must be recorded first
    ];
    for (const r of refusals) {
      expect(r.status, r.body).toBe(503);
      expect(r.json()).toMatchObject({ error: 'audit_unavailable' });
      refusedRids.push(ridOf(r));
    }

    broken.repair();
    await until(async () => ((await call(outage, '/readyz')).status === 200 ? true : undefined), 20_000, 'ready again after the volume was repaired');
    const ready = (await call(outage, '/readyz')).json<{ checks: { audit: string } }>();
    expect(ready.checks.audit).toMatch(/^ok \(#\d+/);
    const answered = await call(outage, '/v1/datasets', { token: aliceToken });
    expect(answered.status).toBe(200);

    const trail = outage.auditEvents();
    const recovered = trail.filter((e) => e.action === 'audit.recovered');
    expect(recovered).toHaveLength(1);
    expect(recovered[0]).toMatchObject({ decision: 'allow', object: 'audit:events', actor: { user: null, auth_method: 'system' }, details: { cause: expect.any(String), unavailable_since: expect.any(String) } });
    // The refusals after the failed commit are counted (those in the failed commit itself are not).
    expect(recovered[0]!.details.refused).toBeGreaterThanOrEqual(refusals.length);
    expect(recovered[0]!.reason).toMatch(/decision\(s\) were refused meanwhile/);
    // No refused request left an event, and the refused job does not exist.
    const rids = new Set(trail.map((e) => e.request_id));
    expect(refusedRids.filter((r) => rids.has(r))).toEqual([]);
    expect(JSON.stringify(trail)).not.toContain(outageSpec.output);
    const jobsAfter = (await call(outage, '/v1/jobs', { token: aliceToken })).json<{ jobs: { id: string; output: string }[] }>().jobs;
    expect(jobsAfter.map((j) => j.id)).toEqual(jobsBefore);
    expect(trail.find((e) => e.request_id === ridOf(answered))).toMatchObject({ action: 'dataset.list', decision: 'allow' });

    const verified = (await call(outage, '/v1/audit/verify', { token: carolToken })).json<VerifyReport>();
    expect(verified).toMatchObject({ ok: true, problems: [] });
    expect(verifyOffline(outage)).toMatchObject({ ok: true, problems: [] });
  }, 120_000);

  it('admits no pending job while the trail is down; afterwards it is admitted on record, re-checked, and runs', async () => {
    const token = people.alice!;
    const view = async (id: string) => (await call(outage, `/v1/jobs/${id}`, { token })).json<{ state: string }>();
    const submitted = async (s: JobSpec) => {
      const r = await call(outage, '/v1/jobs', { token, method: 'POST', body: s });
      expect(r.status, r.body).toBe(201);
      return r.json<{ id: string; state: string }>();
    };
    // It runs until we drop a `go` file in its work folder: it ends during the outage, however slow the machine.
    const gated = "import os, time\ndef process(i, o, ctx):\n    while not os.path.exists(os.path.join(os.getcwd(), 'go')):\n        time.sleep(0.05)\n    open(o, 'w').write(open(i).read())\n";
    const slow = await submitted(spec({ source: gated }));
    const waiting = await submitted(spec());
    expect(waiting.state).toBe('pending'); // alice may run one job at a time
    await until(async () => ((await view(slow.id)).state === 'running' ? true : undefined), 30_000, 'the slow job running');
    const work = join(outage.dataRoot, '.staging', slow.id, 'work');
    await until(() => existsSync(work), 30_000, "the slow job's work folder");

    const broken = breakWrites();
    await until(async () => ((await call(outage, '/v1/datasets', { token })).status === 503 ? true : undefined), 30_000, 'the trail refusing');
    // The slow job ends while the trail is down: its quota frees, yet the pending job is not admitted.
    writeFileSync(join(work, 'go'), '');
    await until(async () => ((await view(slow.id)).state === 'succeeded' ? true : undefined), 30_000, 'the slow job ending during the outage');
    // Two reconciler passes begun since (each asks the engine for its active jobs, and passes run one
    // after another): the first, with its drain of the queue, has ended before we look.
    const passes = () => outage.engine.output().split('"url":"/jobs?active=1"').length - 1;
    const before = passes();
    await until(() => passes() >= before + 2, 10_000, 'two reconciler passes during the outage');
    expect((await view(waiting.id)).state).toBe('pending');

    broken.repair();
    await until(async () => ((await view(waiting.id)).state === 'succeeded' ? true : undefined), 60_000, 'the pending job running after the outage');
    // The slow job's end, seen during the outage, is retried once a second until the trail takes it.
    for (const id of [slow.id, waiting.id]) await until(async () => (outage.auditEvents().some((e) => e.action === 'job.finish' && e.object === `job:${id}`) ? true : undefined), 10_000, `job.finish of ${id} recorded`);
    const trail = outage.auditEvents();
    const at = (action: string, id: string, extra: (e: AuditEvent) => boolean = () => true) => trail.findIndex((e) => e.action === action && (e.object === `job:${id}` || e.details.job === id) && extra(e));
    const recovered = trail.findIndex((e) => e.action === 'audit.recovered');
    // The slow job's end, seen during the outage, is recorded once the trail is back, with when it was seen.
    expect(trail.filter((e) => e.action === 'job.finish' && e.object === `job:${slow.id}`)).toEqual([expect.objectContaining({ details: expect.objectContaining({ observed_at: expect.any(String) }) })]);
    // The pending job: admitted after the recovery, on record before its datasets are decided again, before it starts.
    const admit = at('job.admit', waiting.id);
    const recheck = at('dataset.authorize', waiting.id, (e) => e.details.leaving_queue === true);
    const start = at('job.start', waiting.id);
    expect(recovered).toBeGreaterThanOrEqual(0);
    expect(admit).toBeGreaterThan(recovered);
    expect(recheck).toBeGreaterThan(admit);
    expect(start).toBeGreaterThan(recheck);
    expect(trail.filter((e) => e.action === 'job.admit' && e.object === `job:${waiting.id}`)).toHaveLength(1);
    expect(verifyOffline(outage)).toMatchObject({ ok: true, problems: [] });
  }, 180_000);
});
