import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../src/audit/event.js';
import { AuditTrail, loadAuditKey } from '../src/audit/index.js';
import { installAuditRoutes } from '../src/audit/routes.js';
import { auditCommand, type AuditOptions } from '../src/cli/audit-commands.js';
import { eventLines, headerLine, layoutFor, localTime, RecordCounter, renderVerify, type VerifyReport } from '../src/cli/audit-view.js';
import type { Target } from '../src/cli/client/api.js';
import { saveLogin } from '../src/cli/client/credentials.js';
import { installPlumbing, serverOptions } from '../src/http/index.js';
import { installAuthorization, loadPolicy, policyAuthorizer } from '../src/policy/index.js';
import { TEST_POLICIES } from './support/gatehouse.js';
import { append, freshTrail, MIN, removeTrails, T0 } from './support/audit-trail.js';
import { testCa } from './support/test-ca.js';

function event(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: 1,
    time: '2024-05-01T09:30:05.123Z',
    actor: { user: 'alice', groups: ['scientists'], auth_method: 'oidc', ip: '10.0.0.1' },
    action: 'dataset.read',
    object: 'dataset:customers',
    decision: 'allow',
    reason: 'rule 3 grants read',
    policy_version: 'v1',
    request_id: 'r1',
    details: {},
    prev_hash: '0'.repeat(64),
    hash: 'a'.repeat(64),
    ...over,
  };
}

const REPORT: VerifyReport = {
  ok: true,
  events: 1200,
  first_id: 1,
  last_id: 1200,
  checkpoints: 12,
  last_checkpoint: { event_id: 1100, time: '2024-05-01T10:00:00.000Z' },
  unsigned_tail: 100,
  anchor: null,
  problems: [],
  more_problems: 0,
  elapsed_ms: 42,
};

describe('audit output for people', () => {
  it('shows times in the local zone to the second', () => {
    const d = new Date('2024-05-01T09:30:05.123Z');
    const p = (n: number) => String(n).padStart(2, '0');
    expect(localTime(d.toISOString())).toBe(`${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`);
  });

  it('lines columns up, truncates long cells and the reason to the terminal, and shows control characters escaped', () => {
    const events = [
      event({ id: 2, actor: { user: null, groups: [], auth_method: null, ip: null }, action: 'auth.login_failed', object: 'user:bob', decision: 'deny', reason: 'denied\n\u001b[31mx' }),
      event({ object: `dataset:${'x'.repeat(60)}`, reason: 'r'.repeat(200) }),
    ];
    const layout = layoutFor(events, 120);
    expect(layout).toEqual({ user: 5, action: 17, object: 40, reason: 120 - (19 + 5 + 17 + 40 + 8 + 10) });
    const [header, first, second] = [headerLine(layout), ...eventLines(events, layout)];
    expect(header).toBe('time (local)         user   action             object                                    decision  reason');
    expect(first).toBe(`${localTime(events[0]!.time)}  -      auth.login_failed  user:bob                                  deny      denied\\n\\u001b[31mx`);
    expect(second).toContain(`dataset:${'x'.repeat(31)}…  allow     ${'r'.repeat(20)}…`);
    expect(second!.length).toBe(120);
    // Not on a terminal the reason is whole.
    expect(eventLines(events, layoutFor(events, undefined))[1]!.endsWith('r'.repeat(200))).toBe(true);
  });

  it('says in one line that the trail is intact, and lists each problem when it is not', () => {
    expect(renderVerify(REPORT)).toBe(`trail intact: 1200 events #1..#1200, last checkpoint #1100 at ${localTime('2024-05-01T10:00:00.000Z')}, 100 events after it not yet signed (checked in 42 ms)`);
    expect(renderVerify({ ...REPORT, events: 0, first_id: null, last_id: null, checkpoints: 0, last_checkpoint: null, unsigned_tail: 0 })).toBe('trail intact: no events yet, no checkpoint yet (checked in 42 ms)');
    const broken: VerifyReport = {
      ...REPORT,
      ok: false,
      anchor: { event_id: 500, file: 'audit-0000000001-0000000500.jsonl.gz' },
      problems: [
        { event_id: 17, kind: 'edited', message: 'its hash does not match its content' },
        { event_id: null, kind: 'truncated', message: 'events after #1100 are missing' },
      ],
      more_problems: 3,
    };
    expect(renderVerify(broken).split('\n')).toEqual([
      `trail NOT intact: 5 problems in 1200 events #1..#1200, last checkpoint #1100 at ${localTime('2024-05-01T10:00:00.000Z')}, 100 events after it not yet signed, starts after #500, archived in audit-0000000001-0000000500.jsonl.gz (checked in 42 ms)`,
      '  #17  edited: its hash does not match its content',
      '  -  truncated: events after #1100 are missing',
      '  ... and 3 more',
    ]);
  });

  it('counts exported records as they stream, also CSV records that hold line breaks', () => {
    const csv = new RecordCounter('csv');
    const body = 'id,reason\r\n1,"two\r\nlines, ""quoted"""\r\n2,plain\r\n';
    for (let i = 0; i < body.length; i += 3) csv.add(Buffer.from(body.slice(i, i + 3)));
    expect(csv.count).toBe(2);
    const jsonl = new RecordCounter('jsonl');
    jsonl.add(Buffer.from('{"a":"x\\ny"}\n{"a'));
    jsonl.add(Buffer.from('":1}\n'));
    expect(jsonl.count).toBe(2);
  });
});

describe('gatehouse audit against the routes', () => {
  let app: FastifyInstance;
  let target: Target;
  let dir: string;
  const savedXdg = process.env.XDG_CONFIG_HOME;
  let stdout = '';
  let stderr = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-cli-'));
    const ca = testCa(dir);
    const db = freshTrail();
    append(db, Array.from({ length: 30 }, (_, i) => ({ user: i % 2 ? 'alice' : 'bob', action: i % 3 ? 'dataset.read' : 'job.submit', reason: i === 0 ? '=1+1, "quoted"' : 'rule 3 grants read' })));
    app = Fastify({ ...serverOptions(), logger: false, https: { cert: readFileSync(ca.certFile), key: readFileSync(ca.keyFile) } });
    installPlumbing(app);
    // The gateway's authorization stage on the demo policy: the auditor token is carol (auditors),
    // any other is dave (contractors), who may not read the trail. Its records are not this test's.
    const policy = await loadPolicy(TEST_POLICIES);
    app.decorateRequest('identity', undefined);
    app.addHook('onRequest', async (request) => {
      const auditor = request.headers.authorization === 'Bearer auditor-token';
      request.identity = { user: auditor ? 'carol' : 'dave', groups: [auditor ? 'auditors' : 'contractors'], auth_method: 'ldap', credential: 'bearer', expires_at: new Date(Date.now() + 3_600_000) };
    });
    installAuthorization(app, { authorizer: policyAuthorizer(() => policy), audit: { record: async (e) => ({ ...e, id: 1, time: new Date().toISOString() }) as AuditEvent } });
    installAuditRoutes(app, {
      reader: () => db,
      verify: async () => ({ ...REPORT, ok: false, problems: [{ event_id: 3, kind: 'edited', message: 'hash mismatch' }] }),
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    target = { url: `https://127.0.0.1:${port}`, ca: readFileSync(ca.caFile, 'utf8'), caFile: ca.caFile };
    process.env.XDG_CONFIG_HOME = join(dir, 'config');
    login('auditor-token');
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr += chunk.toString();
      return true;
    });
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    process.env.XDG_CONFIG_HOME = savedXdg;
    await app.close();
    rmSync(dir, { recursive: true, force: true });
    removeTrails();
  });

  const login = (token: string) => saveLogin(target, { user: 'ann', auth_method: 'ldap', access_token: token, refresh_token: 'r', expires_at: new Date(Date.now() + 3600_000).toISOString() });
  const run = async (sub: string, options: Partial<AuditOptions>) => {
    stdout = '';
    stderr = '';
    const code = await auditCommand(sub, [], () => target, { all: false, json: false, ...options });
    return { code, stdout, stderr };
  };

  it('query prints a table newest first and how to get more', async () => {
    const r = await run('query', { user: 'alice', limit: '10' });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^time \(local\)\s+user\s+action\s+object\s+decision\s+reason$/);
    expect(lines.slice(1, 11).map((l) => l.split(/\s{2,}/)[1])).toEqual(Array(10).fill('alice'));
    expect(lines[1]).toContain(localTime(new Date(T0 + 30 * MIN).toISOString()));
    expect(lines[11]).toMatch(/^more: run with --all or --cursor [A-Za-z0-9_-]+$/);
  });

  it('query --all --json prints every page as one JSON array', async () => {
    const r = await run('query', { action: 'job.', limit: '3', all: true, json: true });
    const events = JSON.parse(r.stdout) as AuditEvent[];
    expect(events.map((e) => e.id)).toEqual([28, 25, 22, 19, 16, 13, 10, 7, 4, 1]);
    expect(r.stderr).toBe('');
  });

  it('export writes the whole body to a file, CSV when it is named .csv', async () => {
    const file = join(dir, 'out.csv');
    const r = await run('export', { user: 'bob', output: file });
    expect(r.code).toBe(0);
    const records = readFileSync(file, 'utf8').split('\r\n');
    expect(records[0]).toBe('id,time,user,groups,auth_method,ip,action,object,decision,reason,policy_version,request_id,details,prev_hash,hash');
    expect(records.slice(1, -1).map((l) => Number(l.split(',')[0]))).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29]);
    expect(records[1]).toContain(`"'=1+1, ""quoted"""`);
    expect(existsSync(`${file}.partial`)).toBe(false);
  });

  it('export streams JSON lines to stdout by default', async () => {
    const r = await run('export', { since: '2024-05-01T00:28:00Z' });
    expect(r.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as AuditEvent).id)).toEqual([28, 29, 30]);
  });

  it('verify prints the problems and exits 1 when the trail is not intact', async () => {
    const r = await run('verify', {});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('trail NOT intact: 1 problem in 1200 events #1..#1200');
    expect(r.stdout).toContain('  #3  edited: hash mismatch');
    expect(JSON.parse((await run('verify', { json: true })).stdout)).toMatchObject({ ok: false, problems: [{ event_id: 3 }] });
  });

  it('verify --file checks a retention archive here, and says whose key it trusted', async () => {
    const trailDir = join(dir, 'archived-trail');
    const trail = await AuditTrail.open({ dir: trailDir, key: loadAuditKey(join(dir, 'certs')), checkpointMs: 60_000 });
    for (let i = 0; i < 20; i++) await trail.record({ actor: { user: 'alice', groups: [], auth_method: 'ldap', ip: null }, action: 'dataset.list', object: 'dataset:*', decision: 'allow', reason: 'listed', details: { returned: i } });
    const archive = await trail.archive(new Date(Date.now() + 1000), join(trailDir, 'archive'));
    await trail.close();
    // This gateway publishes no JWKS: the archive's own key is used, and the output says so.
    const r = await run('verify', { file: archive!.file });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('trail intact: 20 events #1..#20');
    expect(r.stdout).toMatch(/signatures checked with the key the archive carries \(audit-/);
    const lines = readFileSync(archive!.file, 'utf8').split('\n');
    lines.splice(5, 1); // one event removed
    writeFileSync(archive!.file, lines.join('\n'));
    const cut = await run('verify', { file: archive!.file, json: true });
    expect(cut.code).toBe(1);
    expect(JSON.parse(cut.stdout)).toMatchObject({ ok: false, problems: [expect.objectContaining({ kind: 'missing', event_id: 5 })] });
    await expect(run('verify', { file: join(dir, 'nope.jsonl') })).rejects.toMatchObject({ name: 'UsageError' });
  });

  it('turns a bad filter into a usage error naming the flag, checked here when it can be', async () => {
    await expect(run('query', { since: 'yesterday' })).rejects.toMatchObject({ name: 'UsageError', message: '--since: "yesterday" is neither an ISO 8601 time (2024-05-01, 2024-05-01T09:30:00Z) nor an age (30s, 15m, 24h, 7d)' });
    await expect(run('query', { requestId: 'x'.repeat(600) })).rejects.toMatchObject({ name: 'UsageError', message: '--request-id: longer than 512 characters' });
    await expect(run('query', { decision: 'maybe' })).rejects.toMatchObject({ name: 'UsageError', message: '--decision maybe: choose allow, deny or error' });
    await expect(run('query', { limit: '0' })).rejects.toMatchObject({ name: 'UsageError', message: '--limit 0: a whole number from 1 to 1000' });
    await expect(run('export', { limit: '5', all: true })).rejects.toMatchObject({ name: 'UsageError', message: 'audit export does not take --limit, --all: an export takes every match' });
    await expect(run('verify', { user: 'bob' })).rejects.toMatchObject({ name: 'UsageError', message: 'audit verify does not take --user: it checks the whole trail' });
    await expect(run('export', { format: 'xml' })).rejects.toMatchObject({ name: 'UsageError', message: '--format xml: choose jsonl or csv' });
    await expect(run('frob', {})).rejects.toMatchObject({ name: 'UsageError', message: 'audit frob: choose query, export, verify, chains, retire or rotate-key' });
  });

  it('says when the caller may not read the trail, and leaves no file behind', async () => {
    login('scientist-token');
    try {
      await expect(run('query', {})).rejects.toMatchObject({ name: 'ApiError', message: 'not allowed to read the audit trail: no rule grants read on audit:events to user:dave' });
      const file = join(dir, 'refused.jsonl');
      await expect(run('export', { output: file })).rejects.toMatchObject({ status: 403 });
      expect(existsSync(file) || existsSync(`${file}.partial`)).toBe(false);
    } finally {
      login('auditor-token');
    }
  });
});
