// The policy room on real files: the shipped example and its tests.yaml, every kind of broken file
// (refused with file, line and hint), quota resolution through roles, explain, diff, the hot reload
// of a running reloader (a bad edit keeps the old version serving), and decisions that never see a
// half-loaded version while reloads run.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decide,
  diffPolicies,
  explain,
  lintPolicy,
  loadPolicy,
  PolicyError,
  type PolicyProblem,
  PolicyReloader,
  readPolicyTests,
  resolveQuota,
  runPolicyTests,
} from '../src/policy/index.js';
import { runCli, TEST_POLICIES } from './support/gatehouse.js';
import { until } from './support/until.js';

const SHIPPED = TEST_POLICIES;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the shipped policy folder, with policy.csv (and optionally model.conf) edited. */
function policyDir(edit: (csv: string) => string = (s) => s, model?: (m: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-policy-'));
  dirs.push(dir);
  cpSync(SHIPPED, dir, { recursive: true });
  writeFileSync(join(dir, 'policy.csv'), edit(readFileSync(join(SHIPPED, 'policy.csv'), 'utf8')));
  if (model) writeFileSync(join(dir, 'model.conf'), model(readFileSync(join(SHIPPED, 'model.conf'), 'utf8')));
  return dir;
}

const lineOf = (dir: string, text: string) => readFileSync(join(dir, 'policy.csv'), 'utf8').split('\n').indexOf(text) + 1;
const errorsOf = async (dir: string): Promise<PolicyProblem[]> => (await lintPolicy(dir)).problems.filter((p) => p.severity === 'error');

describe('the shipped example', () => {
  it('is lint-clean and its tests.yaml passes, including the issue’s contractor case', async () => {
    const { problems, snapshot } = await lintPolicy(SHIPPED);
    expect(problems).toEqual([]);
    const { cases, problems: caseProblems } = await readPolicyTests(SHIPPED);
    expect(caseProblems).toEqual([]);
    expect(cases.some((c) => c.user === 'dave' && c.object === 'dataset:customers' && c.expect === 'deny')).toBe(true);
    const results = runPolicyTests(snapshot!, cases);
    expect(results.length).toBeGreaterThanOrEqual(20);
    expect(results.filter((r) => !r.passed)).toEqual([]);
  });

  it('denies pii to contractors whatever grants it, by the label rule, and every decision carries the version', async () => {
    const p = await loadPolicy(SHIPPED);
    const d = decide(p, { user: 'dave', groups: ['contractors', 'data-science'] }, 'dataset:customers', 'read');
    expect(d).toMatchObject({ allowed: false, rule: 'p, role:contractors, label:pii, read, deny', line: `policy.csv:${lineOf(SHIPPED, 'p, role:contractors, label:pii, read, deny')}`, policyVersion: p.version });
    // The same person without the contractor group reads it through role:analysts.
    expect(decide(p, { user: 'dave', groups: ['data-science'] }, 'dataset:customers', 'read').allowed).toBe(true);
    // A label that only the dataset's manifest carries counts the same.
    expect(decide(p, { user: 'dave', groups: ['contractors'] }, 'dataset:scratch-dave/x', 'write', { labels: ['pii'] }).allowed).toBe(false);
    expect(decide(p, { user: 'dave', groups: ['contractors'] }, 'dataset:scratch-dave/x', 'write').allowed).toBe(true);
  });

  it('takes directory groups with spaces, and never caches a name with control characters', async () => {
    const dir = policyDir((s) => `${s}g, group:Domain Admins, role:admins\n`);
    const p = await loadPolicy(dir);
    expect(decide(p, { user: 'erin', groups: ['Domain Admins'] }, 'policy:files', 'admin').allowed).toBe(true);
    // "auditors\0platform-admins" must not stand in for the two groups (it once shared their cache key).
    expect(explain(p, { user: 'bob', groups: ['auditors\u0000platform-admins'] }, 'policy:files', 'admin').decision).toMatchObject({ allowed: false, reason: expect.stringMatching(/^invalid subject/) });
    expect(decide(p, { user: 'bob', groups: ['auditors', 'platform-admins'] }, 'policy:files', 'admin').allowed).toBe(true);
  });

  it('refuses object names a pattern would wrongly match, before deciding', async () => {
    const p = await loadPolicy(SHIPPED);
    for (const object of ['dataset:scratch/../customers', 'dataset:scratch/a/b', 'dataset:Transactions', 'transactions', 'dataset:scratch/*']) {
      const d = decide(p, { user: 'alice', groups: ['analysts'] }, object, 'read');
      expect(d.allowed, object).toBe(false);
      expect(d.reason, object).toMatch(/^invalid object/);
    }
  });
});

describe('a broken policy is refused with file, line and a hint', () => {
  const cases: { kind: string; edit: (s: string) => string; line: string | null; file?: string; message: RegExp; hint?: RegExp; model?: (m: string) => string }[] = [
    { kind: 'a syntax error (unclosed quote)', edit: (s) => `${s}p, role:analysts, "dataset:words, read, allow\n`, line: 'p, role:analysts, "dataset:words, read, allow', message: /cannot parse the line: Quote Not Closed/ },
    { kind: 'an unknown action', edit: (s) => `${s}p, role:analysts, dataset:words, raed, allow\n`, line: 'p, role:analysts, dataset:words, raed, allow', message: /unknown action "raed"/, hint: /did you mean read\?/ },
    { kind: 'a line of the wrong arity', edit: (s) => `${s}p, role:analysts, dataset:words, read\n`, line: 'p, role:analysts, dataset:words, read', message: /4 fields .* this one has 3/ },
    { kind: 'a quota that is not a number', edit: (s) => `${s}p2, role:analysts, max_memory_mb, 16GB\n`, line: 'p2, role:analysts, max_memory_mb, 16GB', message: /"16GB" is not a whole number/ },
    { kind: 'an unknown quota', edit: (s) => `${s}p2, role:analysts, max_core, 4\n`, line: 'p2, role:analysts, max_core, 4', message: /unknown quota "max_core"/, hint: /did you mean max_cores\?/ },
    { kind: 'a deny nobody can reach', edit: (s) => `${s}p, role:interns, dataset:customers, read, deny\n`, line: 'p, role:interns, dataset:customers, read, deny', message: /a deny nobody can reach: no user or group is linked to role:interns/, hint: /g, group:<name>, role:interns/ },
    { kind: 'an unknown line type', edit: (s) => `${s}q, role:analysts, dataset:words, read, allow\n`, line: 'q, role:analysts, dataset:words, read, allow', message: /unknown line type "q"/ },
    { kind: 'an unknown subject kind', edit: (s) => `${s}p, rol:analysts, dataset:words, read, allow\n`, line: 'p, rol:analysts, dataset:words, read, allow', message: /unknown subject kind "rol:"/, hint: /did you mean role:analysts\?/ },
    { kind: 'an effect Casbin would read as no decision', edit: (s) => `${s}p, role:analysts, dataset:words, read, permit\n`, line: 'p, role:analysts, dataset:words, read, permit', message: /the effect must be allow or deny/ },
    { kind: 'text after * that keyMatch ignores', edit: (s) => `${s}p, role:analysts, dataset:team-*/shared, read, allow\n`, line: 'p, role:analysts, dataset:team-*/shared, read, allow', message: /keyMatch ignores everything after "\*"/ },
    { kind: 'an upper-case dataset that could never match', edit: (s) => `${s}p, role:analysts, dataset:Payroll, read, allow\n`, line: 'p, role:analysts, dataset:Payroll, read, allow', message: /"Payroll" is not a valid dataset name/ },
    { kind: 'a user used as a role', edit: (s) => `${s}g, group:analysts, user:alice\n`, line: 'g, group:analysts, user:alice', message: /a user cannot be a role/ },
    { kind: 'conflicting quota lines', edit: (s) => `${s}p2, role:analysts, max_cores, 12\n`, line: 'p2, role:analysts, max_cores, 12', message: /two values for max_cores: 8 at policy\.csv:\d+ and 12 here/ },
    { kind: 'a keyMatch2 star that is a regular-expression repeat', edit: (s) => s, model: (m) => m.replace('userKeyMatch(r.obj, p.obj, r.sub)', 'keyMatch2(r.obj, p.obj)'), line: 'p, role:analysts, dataset:scratch-*, read, allow', message: /keyMatch2 reads "\*" as "any text" only after a slash/ },
    { kind: 'an unsupported effect in the model', edit: (s) => s, model: (m) => m.replace(/^e = .*$/m, 'e = priority(p.eft) || deny'), file: 'model.conf', line: null, message: /policy effect .* is not one Gatehouse supports/ },
    { kind: 'an unknown function in the matcher', edit: (s) => s, model: (m) => m.replace('userKeyMatch(r.obj, p.obj, r.sub)', 'keyMatch9(r.obj, p.obj)'), file: 'model.conf', line: null, message: /unknown function keyMatch9\(\)/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.kind}`, async () => {
      const dir = policyDir(c.edit, c.model);
      const errors = await errorsOf(dir);
      expect(errors.length).toBeGreaterThanOrEqual(1);
      const e = errors[0]!;
      expect(e.file).toBe(c.file ?? 'policy.csv');
      if (c.file === 'model.conf') expect(e.line).toBe(lineOfModel(dir, /^e = |^m = /, e.line));
      else expect(e.line).toBe(lineOf(dir, c.line!));
      expect(e.message).toMatch(c.message);
      if (c.hint) expect(e.hint).toMatch(c.hint);
      await expect(loadPolicy(dir)).rejects.toBeInstanceOf(PolicyError);
    });
  }

  it('reports a missing folder with what it needs', async () => {
    const errors = await errorsOf(join(tmpdir(), 'gatehouse-no-such-policy-dir'));
    expect(errors[0]).toMatchObject({ file: 'model.conf', line: null, hint: expect.stringMatching(/needs model\.conf and policy\.csv/) });
  });

  it('warns, without refusing, about an allow nobody can reach and a duplicate line', async () => {
    const dir = policyDir((s) => `${s}p, role:interns, dataset:words, read, allow\np, role:analysts, dataset:words, read, allow\n`);
    const { problems, snapshot } = await lintPolicy(dir);
    expect(snapshot).toBeDefined();
    expect(problems.map((p) => [p.severity, p.line, p.message])).toEqual([
      ['warning', lineOf(dir, 'p, role:interns, dataset:words, read, allow'), expect.stringMatching(/nobody can reach role:interns/)],
      ['warning', lineOf(dir, 'p, role:interns, dataset:words, read, allow') + 1, expect.stringMatching(/the same line as policy\.csv:\d+/)],
    ]);
  });
});

/** The model line a problem points at must be the line that holds the effect or matcher. */
function lineOfModel(dir: string, re: RegExp, got: number | null): number {
  const lines = readFileSync(join(dir, 'model.conf'), 'utf8').split('\n');
  const candidates = lines.map((l, i) => (re.test(l) ? i + 1 : -1)).filter((n) => n > 0);
  return candidates.includes(got ?? -1) ? got! : candidates[0]!;
}

describe('quotas resolve through roles', () => {
  it('takes the most generous role, a user line over any role (even lower), the default otherwise, and explains it', async () => {
    const dir = policyDir((s) => `${s}g, group:interns, role:interns\np2, role:interns, max_cores, 1\np2, user:alice, max_cores, 3\n`);
    const p = await loadPolicy(dir);
    const erin = resolveQuota(p, { user: 'erin', groups: ['interns', 'analysts'] });
    expect(erin.limits.max_cores).toBe(8);
    expect(erin.detail.max_cores).toMatchObject({ source: 'role', via: ['user:erin', 'group:analysts', 'role:analysts'] });
    expect(erin.detail.max_cores.overridden.map((o) => o.value)).toEqual([1, 2]);
    const alice = resolveQuota(p, { user: 'alice', groups: ['analysts'] });
    expect(alice.limits.max_cores).toBe(3);
    expect(alice.detail.max_cores).toMatchObject({ source: 'user', line: `policy.csv:${lineOf(dir, 'p2, user:alice, max_cores, 3')}: p2, user:alice, max_cores, 3` });
    expect(resolveQuota(p, { user: 'zed', groups: [] }).detail.max_concurrent_jobs).toMatchObject({ value: 2, source: 'default', via: [] });
  });

  it('falls back to the built-in value, with a lint warning, when a default is missing', async () => {
    const dir = policyDir((s) => s.replace('p2, default, max_memory_mb, 4096\n', ''));
    const { problems, snapshot } = await lintPolicy(dir);
    expect(problems).toEqual([expect.objectContaining({ severity: 'warning', message: expect.stringMatching(/no default for max_memory_mb/) })]);
    expect(resolveQuota(snapshot!, { user: 'zed', groups: [] }).detail.max_memory_mb).toMatchObject({ source: 'built-in', value: 4096 });
  });
});

describe('explain', () => {
  it('names the deciding deny, shows the allow it overrides, the role chains and the quota', async () => {
    const p = await loadPolicy(SHIPPED);
    const e = explain(p, { user: 'dave', groups: ['contractors', 'data-science'] }, 'dataset:customers', 'read');
    expect(e.decision.allowed).toBe(false);
    expect(e.deciding).toMatchObject({ effect: 'deny', rule: 'p, role:contractors, label:pii, read, deny', subject_chain: ['user:dave', 'group:contractors', 'role:contractors'], object_chain: ['dataset:customers', 'label:pii'] });
    expect(e.matched.map((m) => [m.effect, m.rule])).toEqual([
      ['allow', 'p, role:analysts, dataset:customers, read, allow'],
      ['deny', 'p, role:contractors, label:pii, read, deny'],
    ]);
    expect(e.summary).toMatch(/denies it, overriding 1 allow/);
    expect(e.quota.detail.max_cores).toMatchObject({ value: 8, via: ['user:dave', 'group:data-science', 'role:analysts'] });
  });

  it('says plainly when no rule grants an action', async () => {
    const e = explain(await loadPolicy(SHIPPED), { user: 'alice', groups: ['analysts'] }, 'audit:events', 'read');
    expect(e).toMatchObject({ deciding: null, matched: [], summary: 'denied: no rule grants read on audit:events to user:alice' });
  });
});

describe('diff', () => {
  it('shows the triples that flip, grouped for a reviewer with labels, and the quota changes', async () => {
    const dir = policyDir((s) => `${s.replace('p2, role:contractors, max_cores, 4', 'p2, role:contractors, max_cores, 6')}g2, dataset:patients, label:pii\ng2, dataset:payroll, label:pii\ng, group:contractors, role:analysts\n`);
    const d = diffPolicies(await loadPolicy(SHIPPED), await loadPolicy(dir));
    expect(d.changes).toContainEqual({ subject: 'group:contractors', object: 'dataset:transactions', action: 'read', change: 'granted', rule: 'p, role:analysts, dataset:transactions, read, allow' });
    // The pii deny still holds for contractors: no pii dataset flips.
    expect(d.changes.filter((c) => ['dataset:customers', 'dataset:patients', 'dataset:payroll'].includes(c.object))).toEqual([]);
    expect(d.quotas).toEqual([{ subject: 'role:contractors', limit: 'max_cores', before: 4, after: 6 }]);
    expect(d.summary).toContain('~ role:contractors max_cores: 4 → 6');
    expect(d.summary.some((l) => /^\+ group:contractors gains read on \d+ objects/.test(l))).toBe(true);
  });

  it('summarises a grant on labelled datasets as such', async () => {
    const dir = policyDir((s) => `${s.replace('p, role:contractors, label:pii, read, deny\n', '')}g2, dataset:patients, label:pii\ng2, dataset:payroll, label:pii\np, role:contractors, label:pii, read, allow\n`);
    const d = diffPolicies(await loadPolicy(SHIPPED), await loadPolicy(dir));
    expect(d.summary).toContain('+ role:contractors gains read on 3 objects (dataset:customers, dataset:patients, dataset:payroll); 3 labelled pii');
  });

  it('finds nothing between identical versions', async () => {
    const d = diffPolicies(await loadPolicy(SHIPPED), await loadPolicy(policyDir()));
    expect(d).toMatchObject({ changes: [], quotas: [], summary: [] });
  });
});

describe('hot reload', () => {
  it('picks up a good edit by itself, refuses a bad one while the old version serves, and recovers', async () => {
    const dir = policyDir();
    const reloader = await PolicyReloader.start(dir, { debounceMs: 50, pollMs: 200 });
    const outcomes: string[] = [];
    reloader.onOutcome((o) => outcomes.push(o.outcome));
    try {
      const first = reloader.current().version;
      const alice = { user: 'alice', groups: ['analysts'] };
      expect(decide(reloader.current(), alice, 'policy:files', 'read').allowed).toBe(false);

      writeFileSync(join(dir, 'policy.csv'), `${readFileSync(join(dir, 'policy.csv'), 'utf8')}p, role:analysts, policy:*, read, allow\n`);
      await until(() => reloader.current().version !== first);
      const second = reloader.current().version;
      expect(decide(reloader.current(), alice, 'policy:files', 'read')).toMatchObject({ allowed: true, policyVersion: second });

      const good = readFileSync(join(dir, 'policy.csv'), 'utf8');
      writeFileSync(join(dir, 'policy.csv'), `${good}p, role:analysts, dataset:words, wirte, allow\n`);
      await until(() => reloader.lastOutcome().outcome === 'failed');
      expect(reloader.current().version).toBe(second);
      expect(reloader.lastOutcome()).toMatchObject({ version: second, problems: [expect.objectContaining({ file: 'policy.csv', line: lineOf(dir, 'p, role:analysts, dataset:words, wirte, allow'), message: 'unknown action "wirte"' })] });
      expect(decide(reloader.current(), alice, 'policy:files', 'read').allowed).toBe(true);

      // Reverting the bad edit clears the refusal without a new version.
      writeFileSync(join(dir, 'policy.csv'), good);
      await until(() => reloader.lastOutcome().outcome !== 'failed');
      expect(reloader.lastOutcome()).toMatchObject({ outcome: 'unchanged', version: second });

      writeFileSync(join(dir, 'policy.csv'), `${good}p, role:analysts, dataset:words, write, allow\n`);
      await until(() => reloader.lastOutcome().outcome === 'loaded' && reloader.current().version !== second);
      expect(outcomes).toEqual(['loaded', 'failed', 'unchanged', 'loaded']);
    } finally {
      reloader.close();
    }
  });

  it('never shows a decision a half-loaded version: each answer matches the version it names', async () => {
    // Two versions of a large policy that disagree about one decision; reloads flip between them
    // while decisions run between the load's slices.
    const many = Array.from({ length: 30_000 }, (_, i) => `p, role:analysts, dataset:bulk-${i}, read, allow`).join('\n');
    const dir = policyDir((s) => `${s}${many}\n`);
    const reloader = await PolicyReloader.start(dir, { watch: false, yieldEvery: 2_000 });
    const base = readFileSync(join(dir, 'policy.csv'), 'utf8');
    const expected = new Map<string, boolean>([[reloader.current().version, false]]);
    const alice = { user: 'alice', groups: ['analysts'] };
    let decided = 0;
    let stop = false;
    const decider = (async () => {
      while (!stop) {
        const p = reloader.current();
        const d = decide(p, alice, 'policy:files', 'read');
        const bulk = decide(p, alice, `dataset:bulk-${decided % 30_000}`, 'read');
        expect(bulk.allowed).toBe(true);
        if (expected.has(d.policyVersion)) expect(d.allowed).toBe(expected.get(d.policyVersion));
        decided++;
        await tick();
      }
    })();
    try {
      for (let i = 0; i < 6; i++) {
        const grant = i % 2 === 0;
        writeFileSync(join(dir, 'policy.csv'), grant ? `${base}p, role:analysts, policy:*, read, allow\n` : base);
        const o = await reloader.reload({ by: 'file-change' });
        expect(o.outcome).toBe('loaded');
        expected.set(o.version, grant);
      }
    } finally {
      stop = true;
      await decider;
      reloader.close();
    }
    expect(decided).toBeGreaterThan(6 * 10); // decisions really ran during the loads
  }, 60_000);
});

describe('gatehouse policy (the CLI, on files)', () => {
  it('lint: a clean folder exits 0 with its version; a broken one exits 1 with file:line and the hint', async () => {
    const ok = await runCli(['policy', 'lint', '--dir', SHIPPED]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/valid, version [0-9a-f]{16}: 21 rules/);
    const dir = policyDir((s) => `${s}p, role:analysts, dataset:words, raed, allow\n`);
    const bad = await runCli(['policy', 'lint', '--dir', dir]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`policy.csv:${lineOf(dir, 'p, role:analysts, dataset:words, raed, allow')}: error: unknown action "raed" (hint: did you mean read? actions are read, write, admin)`);
  });

  it('test: a pass/fail table, non-zero when a case fails', async () => {
    const ok = await runCli(['policy', 'test', '--dir', SHIPPED]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^PASS {2}dave \[contractors\] read dataset:customers +deny +deny +policy\.csv:\d+$/m);
    expect(ok.stdout).toMatch(/31 passed, 0 failed/);
    const dir = policyDir((s) => s.replace('p, role:contractors, label:pii, read, deny\n', ''));
    const bad = await runCli(['policy', 'test', '--dir', dir]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^FAIL {2}a contractor who is also in data-science is still denied pii +deny by p, role:contractors, label:pii, read, deny +allow by policy\.csv:\d+/m);
    expect(bad.stdout).toMatch(/30 passed, 1 failed/);
  });

  it('explain and diff print for people and as JSON', async () => {
    const ex = await runCli(['policy', 'explain', 'dave', 'read', 'dataset:customers', '--groups', 'contractors,data-science', '--dir', SHIPPED]);
    expect(ex.code).toBe(0);
    expect(ex.stdout).toContain('DENIED: dave read dataset:customers');
    expect(ex.stdout).toContain('via user:dave → group:contractors → role:contractors; dataset:customers → label:pii');
    expect(ex.stdout).toMatch(/max_cores +8 +most generous role: policy\.csv:\d+: p2, role:analysts, max_cores, 8/);
    const dir = policyDir((s) => `${s}p, role:contractors, dataset:transactions, read, allow\n`);
    const diff = await runCli(['policy', 'diff', SHIPPED, dir, '--json']);
    expect(diff.code).toBe(0);
    const body = JSON.parse(diff.stdout) as { changes: unknown[]; summary: string[] };
    expect(body.summary).toEqual(['+ group:contractors gains read on dataset:transactions', '+ role:contractors gains read on dataset:transactions']);
  });
});
