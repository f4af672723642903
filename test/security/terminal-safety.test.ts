// Issue 15, point 14: whatever a job or a person writes is data, never control. A job's log lines
// and error, names, reasons and audit fields reach other people's terminals (an admin's `jobs
// --all`, `status`, `logs`, an auditor's `audit query`) with every character a terminal would act
// on shown escaped: ESC sequences (CSI, OSC 8 links, OSC 52 clipboard, titles), CR overwrites, BEL,
// backspace, C1 controls (U+0080–U+009F) and bidi overrides/isolates. --json stays JSON that parses
// back to the same text. The first part checks the renderers; the second runs the real CLI against
// a real stack where a job writes such sequences to its log and fails with them in its error.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { rotateKey } from '../../src/cli/audit-local.js';
import { eventLines, headerLine, layoutFor } from '../../src/cli/audit-view.js';
import { browsable } from '../../src/cli/identity-commands.js';
import { renderJobList, renderStatus } from '../../src/cli/job-report.js';
import type { Job } from '../../src/cli/job-view.js';
import { describeProgress, summarize } from '../../src/cli/progress.js';
import { safeJson, visible, visibleLines, VisibleStream } from '../../src/cli/safe-text.js';
import { table } from '../../src/cli/table.js';
import type { AuditEvent } from '../../src/audit/index.js';
import type { Config } from '../../src/config/index.js';
import { startCli } from '../support/cli-process.js';
import { runCli } from '../support/gatehouse.js';
import { approveDevice } from '../support/oidc-browser.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

/** What an attacker would write: each one something a terminal acts on. */
const ATTACKS = {
  csi: '\u001b[2J\u001b[31m', // clear the screen, recolour
  osc8: '\u001b]8;;https://evil.example\u001b\\click\u001b]8;;\u001b\\', // a hidden link
  osc52: '\u001b]52;c;cm0gLXJmIH4K\u0007', // write the viewer's clipboard
  title: '\u001b]0;pwned\u0007',
  cr: 'harmless\rEVIL', // overwrite the start of the line
  bs: 'ok\b\b\bno',
  bel: '\u0007',
  c1: '\u009b31m\u009d0;t\u009c', // CSI, OSC, ST as C1 code points
  bidi: 'txt\u202egnp.exe\u202c \u2066iso\u2069 \u200f',
  del: 'a\u007fb',
};
const ALL = Object.values(ATTACKS).join(' ');
const HOSTILE_OWNER = `eve${ATTACKS.title}\u202e`;
// Group names with any of these are dropped at login (cleanGroups; test/security/identity-text.test.ts),
// so the trail's hostile text below comes from a dataset's manifest instead.

/** Every character a terminal would act on (newline and tab excepted), found in `text`. */
function unsafe(text: string): string[] {
  return [...text.matchAll(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g)].map((m) => `U+${m[0].charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const T0 = Date.parse('2025-03-01T10:00:00Z');
function job(over: Partial<Job> = {}): Job {
  return {
    id: 'j-7f3a',
    name: 'clean',
    user: 'alice',
    state: 'failed',
    input: 'transactions',
    output: 'transactions_norm',
    runtime: 'python',
    backend: 'bundled',
    resources: { cores: 1, memory_mb: 256, time_limit_s: 60 },
    partitions: { total: 2, done: 1, failed: 1, running: 0 },
    workers: 0,
    rows_in: 3,
    rows_out: 3,
    bytes_in: 10,
    bytes_out: 10,
    created_at: new Date(T0 - 10_000).toISOString(),
    started_at: new Date(T0).toISOString(),
    finished_at: new Date(T0 + 1000).toISOString(),
    core_seconds: 1,
    attempts: 2,
    error: `partition 1 failed: ValueError: ${ALL}`,
    reason: null,
    ...over,
  };
}

describe('escaping for a terminal', () => {
  it('shows every control character escaped, and leaves ordinary text (accents, arrows, CJK, emoji) alone', () => {
    for (const [kind, attack] of Object.entries(ATTACKS)) {
      expect(unsafe(visible(attack)), kind).toEqual([]);
      expect(unsafe(visibleLines(attack)), kind).toEqual([]);
    }
    expect(visible(ATTACKS.osc52)).toBe('\\u001b]52;c;cm0gLXJmIH4K\\u0007');
    expect(visible(ATTACKS.cr)).toBe('harmless\\rEVIL');
    expect(visible(ATTACKS.c1)).toBe('\\u009b31m\\u009d0;t\\u009c');
    expect(visible(ATTACKS.bidi)).toBe('txt\\u202egnp.exe\\u202c \\u2066iso\\u2069 \\u200f');
    // One value stays on its line; several lines keep their newlines and tabs.
    expect(visible('a\nb\tc')).toBe('a\\nb\\tc');
    expect(visibleLines('a\nb\tc\u001b')).toBe('a\nb\tc\\u001b');
    const plain = 'café → 数据 🚀 naïve ½ "quoted" \\ back';
    expect(visible(plain)).toBe(plain);
  });

  it('keeps --json valid JSON that parses back to the same text, with nothing raw that JSON.stringify leaves', () => {
    const value = { error: ALL, nested: [{ name: ATTACKS.c1 + ATTACKS.bidi }] };
    // The proof that plain JSON is not enough: it leaves DEL, C1 and bidi controls raw.
    expect(unsafe(JSON.stringify(value))).not.toEqual([]);
    const text = safeJson(value);
    expect(unsafe(text)).toEqual([]);
    expect(JSON.parse(text)).toEqual(value);
  });

  it('escapes a log stream across chunk boundaries, keeps newlines and tabs, and turns raw non-UTF-8 bytes into U+FFFD', () => {
    const bytes = Buffer.concat([Buffer.from(`line 1\t${ATTACKS.csi}\nline 2 → ${ATTACKS.c1}\n`), Buffer.from([0x9b, 0x33, 0x31, 0x6d, 0x0a])]);
    const stream = new VisibleStream();
    let out = '';
    // One byte at a time: every multi-byte character is split.
    for (const b of bytes) out += stream.push(Uint8Array.of(b));
    out += stream.end();
    expect(unsafe(out)).toEqual([]);
    expect(out).toBe('line 1\t\\u001b[2J\\u001b[31m\nline 2 → \\u009b31m\\u009d0;t\\u009c\n\ufffd31m\n');
  });

  it("renders the job listing, status, progress and summary with the job's text escaped", () => {
    const failed = job();
    const pending = job({ state: 'pending', reason: `quota ${ATTACKS.title}`, error: null, name: `n${ATTACKS.bel}`, user: `bob${ATTACKS.bidi}` });
    for (const text of [renderJobList([failed, pending], T0 + 5000, true), renderStatus(failed, T0 + 5000), renderStatus(pending, T0 + 5000), summarize(failed, T0 + 5000), describeProgress(pending, T0 + 5000)]) {
      expect(unsafe(text)).toEqual([]);
    }
    expect(renderStatus(failed, T0 + 5000)).toContain('error       partition 1 failed: ValueError: \\u001b[2J\\u001b[31m');
    // The listing is still one line a job: the error's escapes cannot break a row.
    expect(renderJobList([failed, pending], T0 + 5000, true).split('\n')).toHaveLength(3);
    expect(table(['a', 'b'], [[`x${ATTACKS.cr}`, 'y\nz']]).split('\n')).toEqual([`a${' '.repeat(16)}b`, 'xharmless\\rEVIL  y\\nz']);
  });

  it("opens only a web address the gateway names for the SSO sign-in in a browser, never a file, a scheme handler or an option", () => {
    expect(browsable('https://idp.example/device?user_code=ABCD-EFGH')).toBe(true);
    expect(browsable('http://127.0.0.1:5556/device')).toBe(true);
    for (const url of ['file:///etc/passwd', 'javascript:alert(1)', 'ssh://evil.example', '--new-window=x', '-aCalculator', 'not a url', '']) expect(browsable(url), url).toBe(false);
  });

  it('renders audit events with what people typed escaped (not blanked), columns still aligned', () => {
    const event = {
      id: 1,
      time: new Date(T0).toISOString(),
      request_id: 'r',
      actor: { user: `eve${ATTACKS.bidi}`, groups: [], auth_method: null, ip: null },
      action: 'auth.login_failed',
      object: `user:${ATTACKS.title}`,
      decision: 'deny',
      reason: `provider error ${ALL}`,
      policy_version: null,
      details: {},
      prev_hash: '',
      hash: '',
    } as unknown as AuditEvent;
    const layout = layoutFor([event], 200);
    const [line] = eventLines([event], layout);
    expect(unsafe(headerLine(layout) + line!)).toEqual([]);
    expect(line).toContain('user:\\u001b]0;pwned\\u0007');
  });

  it("audit rotate-key (on this host's files) prints each path and key id on its own line, escaped", () => {
    // certs.dir comes from the config: a folder name may hold a newline (a forged second line) and escapes.
    const base = mkdtempSync(join(tmpdir(), 'gatehouse-rotate-'));
    const certs = join(base, `certs\ntrail intact ${ATTACKS.title}`);
    mkdirSync(certs);
    const written: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      expect(rotateKey(() => ({ certs: { dir: certs } }) as unknown as Config, false)).toBe(0);
      expect(rotateKey(() => ({ certs: { dir: certs } }) as unknown as Config, true)).toBe(0);
    } finally {
      write.mockRestore();
      rmSync(base, { recursive: true, force: true });
    }
    const text = written.join('');
    expect(unsafe(text)).toEqual([]);
    // Two lines for people, one line of JSON: the folder's newline is shown, not obeyed.
    expect(text.split('\n').filter(Boolean)).toHaveLength(3);
    expect(text).toContain('certs\\ntrail intact \\u001b]0;pwned\\u0007');
    expect(JSON.parse(text.split('\n')[2]!)).toEqual({ retired: expect.stringMatching(/^audit-/), current: expect.stringMatching(/^audit-/) });
  });
});

describe('the CLI against a real stack: a hostile job seen by an admin and an auditor', () => {
  let stack: Stack;
  const homes: string[] = [];
  let jobId = '';
  let dir = '';

  /** A CLI config folder holding the user's saved login, as `gatehouse login --sso` leaves it. */
  async function cliEnv(user: string): Promise<Record<string, string>> {
    const home = mkdtempSync(join(tmpdir(), `gatehouse-home-${user}-`));
    homes.push(home);
    const env = { XDG_CONFIG_HOME: home, GATEHOUSE_URL: stack.url, GATEHOUSE_CA: join(stack.certsDir, 'ca.crt') };
    const cli = startCli(['login', '--sso', '--no-browser', '--json'], env);
    const [, url] = await cli.waitFor(/or open (\S+)/);
    expect((await approveDevice(url!, { username: user, password: `${user}-demo` })).outcome).toBe('approved');
    expect((await cli.done).code).toBe(0);
    return env;
  }
  const env: Record<string, Record<string, string>> = {};
  const run = (user: string, args: string[]) => runCli(args, { env: env[user]!, timeoutMs: 90_000 });

  beforeAll(async () => {
    stack = await Stack.start({ config: { jobs: { poll_ms: 100, status_cache_ms: 100 } } });
    await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
    await writeDataset(stack.dataRoot, 'scratch/owned', { format: 'csv', columns: ['id', 'word'], owner: HOSTILE_OWNER, labels: [], produced_by: 'test', partitions: [{ text: 'id,word\n1,a\n', rows: 1 }] });
    for (const user of ['alice', 'bob', 'carol']) env[user] = await cliEnv(user);
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-hostile-'));
    // Every attack on stdout and stderr, then an exception that carries them all.
    const attacks = JSON.stringify(ALL);
    writeFileSync(join(dir, 'hostile.py'), `import sys\ndef process(i, o, ctx):\n    print(${attacks}, flush=True)\n    sys.stderr.write(${attacks} + "\\n")\n    raise ValueError(${attacks})\n`);
    const submitted = await run('alice', ['submit', '--input', 'scratch/tiny', '--output', 'scratch/hostile-out', '--python', join(dir, 'hostile.py'), '--name', 'hostile', '--json']);
    expect(submitted.code, submitted.stderr).toBe(0);
    jobId = (JSON.parse(submitted.stdout) as { id: string }).id;
    const token = await stack.login('alice');
    await until(async () => ((await stack.api(`/v1/jobs/${jobId}`, token)).json<{ state: string }>().state === 'failed' ? true : undefined), 60_000, 'the hostile job to fail');
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    for (const h of homes) rmSync(h, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the gateway really hands the attacks on: the raw job error holds them (what the CLI must escape)', async () => {
    const raw = await stack.api(`/v1/jobs/${jobId}`, await stack.login('bob'));
    const error = raw.json<{ error: string }>().error;
    expect(error).toContain(ATTACKS.osc52);
    expect(error).toContain('\u202e');
  });

  it("an admin's jobs --all, status and logs show the job's text escaped, with no raw control character", async () => {
    const listed = await run('bob', ['jobs', '--all']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(jobId);
    expect(unsafe(listed.stdout + listed.stderr)).toEqual([]);
    expect(listed.stdout).toMatch(/\\u001b\[2J/);

    const status = await run('bob', ['status', jobId]);
    expect(status.code, status.stderr).toBe(0);
    expect(unsafe(status.stdout + status.stderr)).toEqual([]);
    expect(status.stdout).toContain('\\u001b]52;c;cm0gLXJmIH4K\\u0007');
    expect(status.stdout).toContain('\\u202egnp.exe\\u202c');
    expect(status.stdout).toContain('\\u009b31m');

    const logs = await run('bob', ['logs', jobId]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(unsafe(logs.stdout + logs.stderr)).toEqual([]);
    expect(logs.stdout).toContain('\\u001b]8;;https://evil.example\\u001b\\click');
    expect(logs.stdout).toContain('harmless\\rEVIL');
    // Newlines stay: the log still reads line by line.
    expect(logs.stdout.split('\n').length).toBeGreaterThan(3);
  });

  it('--json stays JSON: no raw control character, and it parses back to exactly what the job wrote', async () => {
    const listed = await run('bob', ['jobs', '--all', '--json']);
    expect(unsafe(listed.stdout)).toEqual([]);
    const found = (JSON.parse(listed.stdout) as { jobs: { id: string; error: string }[] }).jobs.find((j) => j.id === jobId)!;
    expect(found.error).toContain(ALL);
    const status = await run('bob', ['status', jobId, '--json']);
    expect(unsafe(status.stdout)).toEqual([]);
    expect((JSON.parse(status.stdout) as { error: string }).error).toContain(ALL);
  });

  it("the services' own logs are JSON lines with no raw control character, even where they quote a job's error", async () => {
    for (const [name, output] of [['engine', stack.engine.output()], ['gateway', stack.gateway.output()]] as const) {
      const lines = output.split('\n').filter((l) => l.startsWith('{'));
      expect(lines.length, name).toBeGreaterThan(0);
      expect(unsafe(output), name).toEqual([]);
      for (const line of lines) JSON.parse(line);
    }
    // The engine logs how the job ended, with its error: escaped, and still the same text once parsed.
    const finished = stack.engine.output().split('\n').filter((l) => l.includes(jobId) && l.includes('job finished'));
    expect(finished.length).toBeGreaterThan(0);
    expect((JSON.parse(finished[0]!) as { error: string }).error).toContain(ALL);
  });

  it("the owner's own submit --wait summary escapes the error too", async () => {
    const waited = await run('alice', ['submit', '--input', 'scratch/tiny', '--output', 'scratch/hostile-out2', '--python', join(dir, 'hostile.py'), '--wait']);
    expect(waited.code).toBe(1);
    expect(unsafe(waited.stdout + waited.stderr)).toEqual([]);
    expect(waited.stdout).toContain('error: ');
    expect(waited.stdout).toContain('\\u0007');
  });

  it("an error message quoting what was typed is escaped: a name with escapes is refused, visibly", async () => {
    const refused = await run('alice', ['submit', '--input', 'scratch/tiny', '--output', 'scratch/x', '--python', join(dir, 'hostile.py'), '--name', `n${ATTACKS.title}${ATTACKS.c1}`]);
    expect(refused.code).toBe(2);
    expect(unsafe(refused.stdout + refused.stderr)).toEqual([]);
    expect(refused.stderr).toContain('\\u009b31m');
  });

  it("a dataset's manifest (written by a job or a person) is shown escaped by datasets", async () => {
    const listed = await run('alice', ['datasets']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('scratch/owned');
    expect(unsafe(listed.stdout + listed.stderr)).toEqual([]);
    expect(listed.stdout).toContain('eve\\u001b]0;pwned\\u0007\\u202e');
    const json = await run('alice', ['datasets', '--json']);
    expect(unsafe(json.stdout)).toEqual([]);
    expect((JSON.parse(json.stdout) as { datasets: { name: string; owner: string }[] }).datasets.find((d) => d.name === 'scratch/owned')?.owner).toBe(HOSTILE_OWNER);
  });

  it("an auditor's audit query, as a table and as JSON, has no raw control character from what reached the trail", async () => {
    // What people write that may reach the trail: a dataset's owner as its manifest names it (a
    // refused overwrite records the owner in its reason and details), and an SSO callback's ?error=.
    // (A group name from the IdP used to be one; cleanGroups now drops such names at login.)
    const alice = await stack.login('alice');
    const overwrite = { name: 'o', input: 'scratch/tiny', output: 'scratch/owned', mode: 'overwrite', runtime: 'python', source: "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n", resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } };
    const refused = await stack.api('/v1/jobs', alice, { method: 'POST', body: overwrite });
    expect(refused.status, refused.body).toBe(403);
    await stack.api(`/v1/auth/oidc/callback?error=${encodeURIComponent(`x${ATTACKS.title}${ATTACKS.c1}${ATTACKS.bidi}`)}`);
    const hostile = await until(async () => stack.auditEvents().find((e) => unsafe(JSON.stringify(e)).length > 0 && (e.object === 'dataset:scratch/owned' || e.action === 'auth.login_failed')), 10_000, 'hostile text on the trail');
    // Without hostile text on the trail this test would prove nothing: if the gateway stops recording
    // both vectors, find another one rather than drop the check.
    expect(unsafe(JSON.stringify(hostile)).length).toBeGreaterThan(0);
    const query = await run('carol', ['audit', 'query', '--limit', '1000']);
    expect(query.code, query.stderr).toBe(0);
    expect(query.stdout).toMatch(/auth\.login/);
    expect(unsafe(query.stdout + query.stderr)).toEqual([]);
    const json = await run('carol', ['audit', 'query', '--limit', '1000', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(unsafe(json.stdout)).toEqual([]);
    const parsed = JSON.parse(json.stdout) as AuditEvent[];
    const found = parsed.find((e) => e.id === hostile.id)!;
    // Escaped for the terminal, the same text once parsed.
    expect({ actor: found.actor, reason: found.reason, details: found.details }).toEqual({ actor: hostile.actor, reason: hostile.reason, details: hostile.details });
  });
});
