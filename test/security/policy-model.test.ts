// The policy model as an attacker (or a careless save) would have it (issue 15, points 4, 1 and 8):
// a matcher that is true whatever the policy lines say, or a model that decides otherwise than stock
// Casbin, is refused by lint and by a reload while the old version serves; a version that fails its
// own tests.yaml never goes live (shown in GET /v1/policy and the reload's 422); `{user}` patterns
// give each person a namespace only they write, and no user name widens one; each reload is
// recorded with who made it and the SHA-256 of every file.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as CasbinModule from 'casbin';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { decide, diffPolicies, explain, lintFiles, lintPolicy, loadPolicy, PolicyError, type PolicyProblem, PolicyReloader } from '../../src/policy/index.js';
import { conformanceProblems } from '../../src/policy/conformance.js';
import { userKeyMatch } from '../../src/policy/user-pattern.js';
import { runCli, TEST_POLICIES } from '../support/gatehouse.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

const casbin = createRequire(import.meta.url)('casbin') as typeof CasbinModule;
const SHIPPED = TEST_POLICIES;
const MODEL = readFileSync(join(SHIPPED, 'model.conf'), 'utf8');
const POLICY = readFileSync(join(SHIPPED, 'policy.csv'), 'utf8');
const TESTS = readFileSync(join(SHIPPED, 'tests.yaml'), 'utf8');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function folder(files: { model?: string; policy?: string; tests?: string } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-policy-model-'));
  dirs.push(dir);
  cpSync(SHIPPED, dir, { recursive: true });
  if (files.model !== undefined) writeFileSync(join(dir, 'model.conf'), files.model);
  if (files.policy !== undefined) writeFileSync(join(dir, 'policy.csv'), files.policy);
  if (files.tests !== undefined) writeFileSync(join(dir, 'tests.yaml'), files.tests);
  return dir;
}

const withMatcher = (m: string) => MODEL.replace(/^m = .*$/m, `m = ${m}`);
const errors = (problems: readonly PolicyProblem[]) => problems.filter((p) => p.severity === 'error');
const stranger = { user: 'mallory', groups: [] as string[] };

// Each is true for some request whatever the policy lines say (or for every request).
const TAUTOLOGIES = [
  // The issue's own: `||` binds looser than `&&`, so `g(...) || (true && ...)`.
  'g(r.sub, p.sub) || true && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && r.act == p.act',
  'true',
  'g(r.sub, p.sub) && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && r.act == p.act || r.sub == r.sub',
  'g(r.sub, p.sub) && (userKeyMatch(r.obj, p.obj, r.sub) || true) && r.act == p.act',
  'g(r.sub, p.sub) && userKeyMatch(r.obj, p.obj, r.sub) && (r.act == p.act || r.act == r.act)',
  'g(r.sub, r.sub) && userKeyMatch(r.obj, p.obj, r.sub) && r.act == p.act',
  '(g(r.sub, p.sub) || r.sub != "") && userKeyMatch(r.obj, p.obj, r.sub) && r.act == p.act',
  'g(r.sub, p.sub) && userKeyMatch(r.obj, p.obj, r.sub) || r.act == p.act',
  'g(r.sub, p.sub) && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && r.act == p.act || r.sub == "user:breakglass"',
  'g(r.sub, p.sub) && (keyMatch(r.obj, p.obj) || keyMatch(p.obj, r.obj)) && r.act == p.act',
  '"a" == "a"',
];

describe('lint refuses a matcher that is true regardless of the policy lines', () => {
  for (const m of TAUTOLOGIES) {
    it(`refuses m = ${m}`, async () => {
      const result = await lintFiles('/generated', { model: withMatcher(m), policy: POLICY });
      expect(result.snapshot).toBeUndefined();
      const e = errors(result.problems);
      expect(e.length).toBeGreaterThan(0);
      expect(e[0]).toMatchObject({ file: 'model.conf', line: MODEL.split('\n').findIndex((l) => l.startsWith('m = ')) + 1 });
      expect(e.map((p) => p.message).join('\n')).toMatch(/regardless of the policy lines|whatever the policy lines say|without a policy line that matches|with itself|two constants/);
      await expect(loadPolicy(folder({ model: withMatcher(m) }))).rejects.toBeInstanceOf(PolicyError);
    });
  }

  it('accepts the shipped model and the equivalent shapes people write', async () => {
    for (const m of [
      'g(r.sub, p.sub) && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && r.act == p.act',
      'r.act == p.act && g(r.sub, p.sub) && (g2(r.obj, p.obj) || userKeyMatch(r.obj, p.obj, r.sub))',
      'p.act == r.act && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && g(r.sub, p.sub)',
    ]) {
      const result = await lintFiles('/generated', { model: withMatcher(m), policy: POLICY });
      expect(errors(result.problems), m).toEqual([]);
      expect(decide(result.snapshot!, stranger, 'dataset:words', 'read').allowed).toBe(false);
    }
  });

  it('refuses a model that decides otherwise than stock Casbin on the differential set, naming the request', async () => {
    // Passes the shape checks (only sanctioned terms, one more && only narrows, one would think) but
    // drops every line given to a group or role: their denies too.
    const result = await lintFiles('/generated', { model: withMatcher(`${SHIPPED_MATCHER} && r.sub == p.sub`), policy: POLICY });
    expect(result.snapshot).toBeUndefined();
    expect(errors(result.problems)[0]).toMatchObject({ file: 'model.conf', message: expect.stringMatching(/decides differently from stock Casbin .*: user:\S+ \(groups \S+\) read dataset:\S+: this model denies, stock Casbin allows/) });
  });

  it('the comparison alone (behind the shape check) catches a model that differs only on this policy’s own lines', async () => {
    // Built-in lines have no role:contractors, so only the policy's own sample can show the difference.
    // The shape check refuses this matcher first (a string literal); the comparison is the second wall.
    const found = await comparison(`${SHIPPED_MATCHER} && p.sub != "role:contractors"`);
    expect(found[0]).toMatch(/on this policy's lines: user:\S+ \(groups [^)]*contractors[^)]*\) .*: this model allows, stock Casbin denies/);
  });

  it('refuses an effect that allows without a matching allow rule', async () => {
    const result = await lintFiles('/generated', { model: MODEL.replace(/^e = .*$/m, 'e = !some(where (p.eft == deny))'), policy: POLICY });
    expect(result.snapshot).toBeUndefined();
    expect(errors(result.problems)[0]).toMatchObject({ file: 'model.conf', message: expect.stringMatching(/allows every request no deny matches/) });
  });

  it('gatehouse policy lint exits 1 on a tautological model, with the line', async () => {
    const dir = folder({ model: withMatcher(TAUTOLOGIES[0]!) });
    const r = await runCli(['policy', 'lint', '--dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model\.conf:\d+: error: .*can be true without a policy line/);
  });
});

const SHIPPED_MATCHER = /^m = (.*)$/m.exec(MODEL)![1]!;

/** The stock-Casbin comparison alone, for a matcher the shape check would refuse first. */
async function comparison(matcher: string, policy = POLICY): Promise<string[]> {
  const model = withMatcher(matcher);
  const built = await lintFiles('/generated', { model, policy }, { trustModel: true });
  expect(built.snapshot, matcher).toBeDefined();
  return conformanceProblems(model, built.snapshot!, policy, (p) => lintFiles('/generated', { model, policy: p }, { trustModel: true }));
}

// A security review found these passing lint, stock-Casbin comparison and tests.yaml: one more
// `&&` term that names a person, an object or the effect exempts them from the deny lines.
const EXEMPTIONS = [
  // Contractor quinn reads personal data: the denies no longer apply to quinn.
  `${SHIPPED_MATCHER} && !(r.sub == "user:quinn" && p.eft == "deny")`,
  // The contractors' pii deny is off for everyone.
  `${SHIPPED_MATCHER} && p.obj != "label:pii"`,
  `${SHIPPED_MATCHER} && p.eft == "allow"`,
  `${SHIPPED_MATCHER} && r.sub != "user:quinn"`,
  `(g(r.sub, p.sub) || r.sub == "user:quinn") && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && r.act == p.act`,
  `${SHIPPED_MATCHER} && !g(r.sub, "role:contractors")`,
  // No literal, but the effect in the matcher.
  `${SHIPPED_MATCHER} && p.eft != p.act`,
  // No literal and no p.eft, but a term outside the sanctioned ones.
  `${SHIPPED_MATCHER} && !(r.obj == p.obj)`,
  `${SHIPPED_MATCHER} && r.sub != p.obj`,
];

describe('lint refuses a matcher that exempts a person, an object or an effect from the lines', () => {
  for (const m of EXEMPTIONS) {
    it(`refuses m = ${m}`, async () => {
      const result = await lintFiles('/generated', { model: withMatcher(m), policy: POLICY, tests: TESTS });
      expect(result.snapshot).toBeUndefined();
      const e = errors(result.problems);
      expect(e[0]).toMatchObject({ file: 'model.conf', line: MODEL.split('\n').findIndex((l) => l.startsWith('m = ')) + 1, hint: expect.stringMatching(/shipped matcher is g\(r\.sub, p\.sub\)/) });
      expect(e.map((p) => p.message).join('\n')).toMatch(/string literal|p\.eft|only join/);
      await expect(loadPolicy(folder({ model: withMatcher(m) }))).rejects.toBeInstanceOf(PolicyError);
    });
  }

  it('says why: no names, no effect, nothing but the sanctioned terms', async () => {
    const msg = (m: string) => lintFiles('/generated', { model: withMatcher(m), policy: POLICY }).then((r) => errors(r.problems).map((p) => p.message).join('\n'));
    expect(await msg(EXEMPTIONS[0]!)).toMatch(/"user:quinn" is a string literal: a matcher names no person, object or label/);
    expect(await msg(EXEMPTIONS[0]!)).toMatch(/p\.eft is the effect.*the policy effect \(e = \.\.\.\) reads it/);
    expect(await msg(EXEMPTIONS[7]!)).toMatch(/the term !\(r\.obj == p\.obj\) is not one of the terms a matcher is made of: it must only join, with && and \|\|/);
  });

  it('a reload refuses the quinn exemption; quinn stays denied personal data', async () => {
    const dir = folder();
    const reloader = await PolicyReloader.start(dir, { watch: false });
    try {
      const quinn = { user: 'quinn', groups: ['contractors', 'data-science'] };
      expect(decide(reloader.current(), quinn, 'dataset:customers', 'read').allowed).toBe(false);
      writeFileSync(join(dir, 'model.conf'), withMatcher(EXEMPTIONS[0]!));
      const o = await reloader.reload({ by: 'file-change' });
      expect(o.outcome).toBe('failed');
      expect(o.problems[0]).toMatchObject({ file: 'model.conf', message: expect.stringMatching(/string literal/) });
      expect(decide(reloader.current(), quinn, 'dataset:customers', 'read').allowed).toBe(false);
    } finally {
      reloader.close();
    }
  });

  it('the comparison with stock Casbin also asks about every literal of the matcher, as a person, object and label', async () => {
    expect((await comparison(EXEMPTIONS[0]!)).join('\n')).toMatch(/user:quinn \(groups [^)]*contractors[^)]*\) read dataset:\S+.*: this model allows, stock Casbin denies/);
    expect((await comparison(EXEMPTIONS[1]!)).join('\n')).toMatch(/\(groups [^)]*contractors[^)]*\) read dataset:\S+.*: this model allows, stock Casbin denies/);
    expect((await comparison(`${SHIPPED_MATCHER} && r.obj != "dataset:words"`)).join('\n')).toMatch(/read dataset:words: this model denies, stock Casbin allows/);
    expect(await comparison(SHIPPED_MATCHER)).toEqual([]);
  });
});

describe('a reload keeps the old version serving', () => {
  let dir: string;
  let reloader: PolicyReloader;
  beforeAll(async () => {
    dir = folder();
    reloader = await PolicyReloader.start(dir, { watch: false });
  });
  afterAll(() => reloader.close());

  it('refuses each tautological matcher; a stranger stays denied', async () => {
    const serving = reloader.current().version;
    for (const m of TAUTOLOGIES.slice(0, 4)) {
      writeFileSync(join(dir, 'model.conf'), withMatcher(m));
      const o = await reloader.reload({ by: 'file-change' });
      expect(o.outcome, m).toBe('failed');
      expect(o.problems[0]).toMatchObject({ file: 'model.conf' });
      expect(reloader.current().version).toBe(serving);
      expect(decide(reloader.current(), stranger, 'dataset:customers', 'read').allowed).toBe(false);
    }
    writeFileSync(join(dir, 'model.conf'), MODEL);
    expect((await reloader.reload({ by: 'file-change' })).outcome).toBe('unchanged');
  });

  it('refuses a version that fails tests.yaml, naming the case; a fixed one loads', async () => {
    const serving = reloader.current().version;
    // Lint-clean, but contractors would read personal data: tests.yaml says they must not.
    writeFileSync(join(dir, 'policy.csv'), POLICY.replace('p, role:contractors, label:pii, read, deny\n', ''));
    const o = await reloader.reload({ by: 'file-change' });
    expect(o.outcome).toBe('failed');
    expect(o.problems).toContainEqual(expect.objectContaining({ severity: 'error', file: 'tests.yaml', line: expect.any(Number), message: expect.stringMatching(/^test "a contractor who is also in data-science is still denied pii" fails: expected deny by p, role:contractors, label:pii, read, deny, got allow by policy\.csv:\d+/) }));
    expect(reloader.current().version).toBe(serving);
    expect(decide(reloader.current(), { user: 'dave', groups: ['contractors'] }, 'dataset:customers', 'read').allowed).toBe(false);
    // The same edit with the case changed to match is a deliberate change, and loads.
    const changed = TESTS.replace(/- name: a contractor who is also[\s\S]*?rule: p, role:contractors, label:pii, read, deny\n/, '');
    expect(changed).not.toBe(TESTS);
    writeFileSync(join(dir, 'tests.yaml'), changed);
    const fixed = await reloader.reload({ by: 'file-change' });
    expect(fixed.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(fixed.outcome).toBe('loaded');
    writeFileSync(join(dir, 'policy.csv'), POLICY);
    writeFileSync(join(dir, 'tests.yaml'), TESTS);
    expect((await reloader.reload({ by: 'file-change' })).outcome).toBe('loaded');
  });

  it('policies.require_tests is on by default and must be a boolean', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'g.yaml'), 'policies:\n  dir: policies\n');
    expect(loadConfig({ path: join(dir, 'g.yaml'), env: {}, cwd: dir }).config.policies.require_tests).toBe(true);
    writeFileSync(join(dir, 'g.yaml'), 'policies:\n  require_tests: "no"\n');
    expect(() => loadConfig({ path: join(dir, 'g.yaml'), env: {}, cwd: dir })).toThrow(/policies\.require_tests/);
  });

  it('runs no tests when the reloader is told not to (policies.require_tests: false)', async () => {
    const d = folder({ policy: POLICY.replace('p, role:contractors, label:pii, read, deny\n', '') });
    await expect(PolicyReloader.start(d, { watch: false })).rejects.toThrow(/tests\.yaml:\d+: error: test .* fails/);
    const lax = await PolicyReloader.start(d, { watch: false, requireTests: false });
    lax.close();
    expect((await lintPolicy(d)).problems.some((p) => p.file === 'tests.yaml' && p.severity === 'error')).toBe(true);
  });
});

describe('policies.require_tests: deleting tests.yaml does not turn the tests off', () => {
  const weakened = POLICY.replace('p, role:contractors, label:pii, read, deny\n', '');
  const dave = { user: 'dave', groups: ['contractors', 'data-science'] };

  it('refuses start-up without tests.yaml, or with one that has no cases; starts with require_tests off', async () => {
    const d = folder();
    rmSync(join(d, 'tests.yaml'));
    await expect(PolicyReloader.start(d, { watch: false })).rejects.toThrow(/tests\.yaml: error: policies\.require_tests is on but tests\.yaml is missing/);
    writeFileSync(join(d, 'tests.yaml'), 'tests: []\n');
    await expect(PolicyReloader.start(d, { watch: false })).rejects.toThrow(/tests\.yaml: error: policies\.require_tests is on but tests\.yaml has no cases/);
    writeFileSync(join(d, 'tests.yaml'), '');
    await expect(PolicyReloader.start(d, { watch: false })).rejects.toThrow(/tests\.yaml: error: policies\.require_tests is on but tests\.yaml has no cases/);
    (await PolicyReloader.start(d, { watch: false, requireTests: false })).close();
    // gatehouse policy lint says what a reload would.
    const linted = await lintPolicy(d);
    expect(linted.snapshot).toBeUndefined();
    expect(errors(linted.problems)).toEqual([expect.objectContaining({ file: 'tests.yaml', message: expect.stringMatching(/has no cases/), hint: expect.stringMatching(/require_tests: false/) })]);
  });

  it('a save that weakens the policy and removes tests.yaml in one edit is refused; the old version serves', async () => {
    const dir = folder();
    const reloader = await PolicyReloader.start(dir, { watch: false });
    try {
      const serving = reloader.current().version;
      writeFileSync(join(dir, 'policy.csv'), weakened);
      rmSync(join(dir, 'tests.yaml'));
      const o = await reloader.reload({ by: 'file-change' });
      expect(o.outcome).toBe('failed');
      expect(o.problems).toEqual([expect.objectContaining({ severity: 'error', file: 'tests.yaml', message: 'policies.require_tests is on but tests.yaml is missing' })]);
      expect(o.files).toMatchObject({ 'tests.yaml': null });
      expect(reloader.current().version).toBe(serving);
      expect(decide(reloader.current(), dave, 'dataset:customers', 'read').allowed).toBe(false);
      // An emptied tests.yaml is no better.
      writeFileSync(join(dir, 'tests.yaml'), '# nothing to check\n');
      expect(await reloader.reload({ by: 'file-change' })).toMatchObject({ outcome: 'failed', problems: [expect.objectContaining({ file: 'tests.yaml', message: expect.stringMatching(/has no cases/) })] });
      expect(reloader.current().version).toBe(serving);
    } finally {
      reloader.close();
    }
  });

  it('an edit to tests.yaml alone is run: a failing case is shown as a refusal, the fix clears it', async () => {
    const dir = folder();
    const reloader = await PolicyReloader.start(dir, { watch: false });
    try {
      const serving = reloader.current().version;
      const wrong = `${TESTS.trimEnd()}\n- name: contractors read customers (wrong on purpose)\n  user: dave\n  groups: [contractors]\n  object: dataset:customers\n  action: read\n  expect: allow\n`;
      writeFileSync(join(dir, 'tests.yaml'), wrong);
      const o = await reloader.reload({ by: 'file-change' });
      expect(o).toMatchObject({ outcome: 'failed', version: serving, attempted_version: serving });
      expect(o.problems).toContainEqual(expect.objectContaining({ file: 'tests.yaml', message: expect.stringMatching(/^test "contractors read customers \(wrong on purpose\)" fails: expected allow/) }));
      expect(reloader.lastOutcome().outcome).toBe('failed');
      rmSync(join(dir, 'tests.yaml'));
      expect(await reloader.reload({ by: 'file-change' })).toMatchObject({ outcome: 'failed', problems: [expect.objectContaining({ message: 'policies.require_tests is on but tests.yaml is missing' })] });
      writeFileSync(join(dir, 'tests.yaml'), TESTS);
      expect(await reloader.reload({ by: 'file-change' })).toMatchObject({ outcome: 'unchanged', version: serving });
      expect(reloader.lastOutcome().outcome).toBe('unchanged');
      expect(reloader.current().version).toBe(serving);
    } finally {
      reloader.close();
    }
  });

  it('with require_tests off, a folder without tests.yaml loads and reloads', async () => {
    const dir = folder();
    rmSync(join(dir, 'tests.yaml'));
    const reloader = await PolicyReloader.start(dir, { watch: false, requireTests: false });
    try {
      writeFileSync(join(dir, 'policy.csv'), `${POLICY}p, role:analysts, policy:*, read, allow\n`);
      expect((await reloader.reload({ by: 'file-change' })).outcome).toBe('loaded');
    } finally {
      reloader.close();
    }
  });
});

describe('{user}: a namespace only its person writes', () => {
  it('alice writes scratch-alice/…, not scratch-bob/…; dave only his own; explain shows the pattern filled in', async () => {
    const p = await loadPolicy(SHIPPED);
    const alice = { user: 'alice', groups: ['analysts'] };
    const dave = { user: 'dave', groups: ['contractors'] };
    expect(decide(p, alice, 'dataset:scratch-alice/x', 'write')).toMatchObject({ allowed: true, rule: 'p, role:analysts, dataset:scratch-{user}/*, write, allow' });
    expect(decide(p, alice, 'dataset:scratch-bob/x', 'write').allowed).toBe(false);
    expect(decide(p, alice, 'dataset:scratch-alice', 'write').allowed).toBe(false);
    expect(decide(p, dave, 'dataset:scratch-dave/x', 'write').allowed).toBe(true);
    expect(decide(p, dave, 'dataset:scratch-alice/x', 'write').allowed).toBe(false);
    expect(decide(p, dave, 'dataset:scratch/cat_totals', 'write').allowed).toBe(false);
    // A name that starts like another's is not theirs: alice is not alice-x.
    expect(decide(p, alice, 'dataset:scratch-alice-x/y', 'write').allowed).toBe(false);
    const e = explain(p, alice, 'dataset:scratch-alice/x', 'write');
    expect(e.deciding).toMatchObject({ rule: 'p, role:analysts, dataset:scratch-{user}/*, write, allow', object_chain: ['dataset:scratch-alice/x', 'matches dataset:scratch-{user}/* (as dataset:scratch-alice/*)'] });
  });

  it('no user name widens a {user} pattern: a*, ../bob, team-7/q3, {user}, names with spaces or slashes', async () => {
    const dir = folder({
      policy: `${POLICY}p, role:analysts, dataset:{user}, write, allow\np, role:analysts, dataset:{user}/*, admin, allow\n`,
    });
    const p = await loadPolicy(dir);
    const as = (user: string) => ({ user, groups: ['analysts'] });
    const attempts: [string, string, string][] = [
      ['a*', 'dataset:scratch-ab/x', 'write'],
      ['a*', 'dataset:ab/x', 'admin'],
      ['*', 'dataset:bob/x', 'admin'],
      ['../bob', 'dataset:bob/x', 'admin'],
      ['team-7/q3', 'dataset:team-7/q3', 'write'],
      ['bob/x', 'dataset:bob/x', 'write'],
      ['{user}', 'dataset:scratch-bob/x', 'write'],
      ['bob x', 'dataset:scratch-bob/x', 'write'],
      ['', 'dataset:scratch-/x', 'write'],
    ];
    for (const [user, object, action] of attempts) {
      expect(decide(p, as(user), object, action).allowed, `${user} ${action} ${object}`).toBe(false);
      expect(userKeyMatch(object, object.startsWith('dataset:scratch-') ? 'dataset:scratch-{user}/*' : object.split('/').length > 1 ? 'dataset:{user}/*' : 'dataset:{user}', `user:${user}`), `${user} ${object}`).toBe(false);
    }
    // The owner's own name still works through both lines.
    expect(decide(p, as('bob'), 'dataset:bob/x', 'admin').allowed).toBe(true);
    expect(decide(p, as('bob'), 'dataset:bob', 'write').allowed).toBe(true);
  });

  it('policy diff shows a {user} grant as the pattern, per role', async () => {
    const before = await loadPolicy(folder({ policy: POLICY.replace('p, role:contractors, dataset:scratch-{user}/*, write, allow\n', '') }));
    const d = diffPolicies(before, await loadPolicy(SHIPPED));
    expect(d.changes).toContainEqual(expect.objectContaining({ subject: 'role:contractors', object: 'dataset:scratch-{user}/*', action: 'write', change: 'granted' }));
    expect(d.changes.every((c) => c.action === 'write' && c.object === 'dataset:scratch-{user}/*')).toBe(true);
  });

  it('stock Casbin with the same function registered decides the same', async () => {
    const dir = folder();
    const stock = await casbin.newEnforcer(join(dir, 'model.conf'), join(dir, 'policy.csv'));
    await stock.addFunction('userKeyMatch', userKeyMatch);
    const ours = await loadPolicy(dir);
    const people = [
      ['alice', 'analysts'],
      ['dave', 'contractors'],
      ['a*', 'analysts'],
      ['../alice', 'contractors'],
    ] as const;
    for (const [user, group] of people) await stock.addGroupingPolicy(`user:${user}`, `group:${group}`);
    let allowed = 0;
    for (const [user, group] of people) {
      for (const object of ['dataset:scratch-alice/x', 'dataset:scratch-dave/x', 'dataset:scratch-a/x', 'dataset:scratch/x', 'dataset:words']) {
        for (const action of ['read', 'write', 'admin']) {
          const mine = ours.evaluate({ user, groups: [group] }, object, action, []).allowed;
          expect(mine, `${user} ${action} ${object}`).toBe(stock.enforceSync(`user:${user}`, object, action));
          if (mine) allowed++;
        }
      }
    }
    expect(allowed).toBeGreaterThan(5);
  });

  it('lint allows {user} only in the object of a rule, as a whole part of a one-namespace dataset name', async () => {
    const cases: [string, RegExp][] = [
      ['p, user:{user}, dataset:words, read, allow', /\{user\} stands only in the object of a rule/],
      ['g, user:{user}, role:analysts', /\{user\} stands only in the object of a rule/],
      ['g2, dataset:{user}, label:pii', /\{user\} stands only in the object of a rule/],
      ['p2, user:{user}, max_cores, 1', /\{user\} stands only in the object of a rule/],
      ['p, role:analysts, dataset:scratch-{user}-x/*, write, allow', /must end its part of the name/],
      ['p, role:analysts, dataset:scratch/{user}/*, write, allow', /can never match: dataset names have at most one namespace/],
      ['p, role:analysts, label:{user}, read, allow', /stands only in dataset patterns/],
      ['p, role:analysts, dataset:{user}-{user}/*, read, allow', /more than once/],
      ['p, role:analysts, dataset:scratch-{name}/*, read, allow', /brace; the only placeholder is \{user\}/],
    ];
    for (const [line, message] of cases) {
      const result = await lintFiles('/generated', { model: MODEL, policy: `${POLICY}${line}\n` });
      expect(result.snapshot, line).toBeUndefined();
      expect(errors(result.problems)[0], line).toMatchObject({ file: 'policy.csv', message: expect.stringMatching(message) });
    }
    const plain = await lintFiles('/generated', { model: MODEL.replace('userKeyMatch(r.obj, p.obj, r.sub)', 'keyMatch(r.obj, p.obj)'), policy: POLICY });
    expect(errors(plain.problems)[0]).toMatchObject({ file: 'policy.csv', message: expect.stringMatching(/uses \{user\}, but the matcher does not fill it in/) });
  });
});

describe('through a running gateway', () => {
  let stack: Stack;
  let bob: string;
  const sha = (file: string) => createHash('sha256').update(readFileSync(join(stack.policies, file))).digest('hex');
  beforeAll(async () => {
    stack = await Stack.start();
    bob = await stack.login('bob');
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('a save that fails tests.yaml is refused and shown in GET /v1/policy and the 422; the reload event names the file watch and every file’s hash', async () => {
    const policyFile = join(stack.policies, 'policy.csv');
    const good = readFileSync(policyFile, 'utf8');
    const serving = (await stack.api('/v1/policy', bob)).json<{ version: string }>().version;
    writeFileSync(policyFile, good.replace('p, role:contractors, label:pii, read, deny\n', ''));
    const shown = await until(async () => {
      const b = (await stack.api('/v1/policy', bob)).json<{ version: string; last_reload: { outcome: string; trigger: { by: string }; files: Record<string, string>; problems: { file: string; message: string }[] } }>();
      return b.last_reload.outcome === 'failed' ? b : undefined;
    });
    expect(shown.version).toBe(serving);
    expect(shown.last_reload.trigger).toEqual({ by: 'file-change' });
    expect(shown.last_reload.problems).toContainEqual(expect.objectContaining({ file: 'tests.yaml', message: expect.stringMatching(/fails: expected deny by p, role:contractors, label:pii, read, deny, got allow/) }));
    expect(shown.last_reload.files).toEqual({ 'model.conf': sha('model.conf'), 'policy.csv': sha('policy.csv'), 'tests.yaml': sha('tests.yaml') });

    const refused = await stack.api('/v1/policy/reload', bob, { method: 'POST', body: {} });
    expect(refused.status).toBe(422);
    expect(refused.json()).toMatchObject({ error: 'policy_invalid', version: serving, problems: expect.arrayContaining([expect.objectContaining({ file: 'tests.yaml' })]) });

    const failedEvent = stack.auditEvents().find((e) => e.action === 'policy.reload_failed' && (e.details as { trigger?: string }).trigger === 'file-change');
    expect(failedEvent).toMatchObject({ actor: { user: 'system:file-watch', auth_method: 'system' }, details: { files: { 'policy.csv': sha('policy.csv'), 'model.conf': sha('model.conf'), 'tests.yaml': sha('tests.yaml') } } });
    const asked = stack.auditEvents().find((e) => e.action === 'policy.reload_failed' && (e.details as { trigger?: string }).trigger === 'api');
    expect(asked).toMatchObject({ actor: { user: 'bob' }, details: { files: { 'policy.csv': sha('policy.csv') } } });

    // Back to the good file: loaded by the watch, recorded with its hashes.
    writeFileSync(policyFile, `${good}p, role:analysts, policy:*, read, allow\n`);
    const loaded = await until(async () => {
      const b = (await stack.api('/v1/policy', bob)).json<{ version: string; last_reload: { outcome: string } }>();
      return b.last_reload.outcome === 'loaded' && b.version !== serving ? b : undefined;
    });
    const event = await until(async () => stack.auditEvents().find((e) => e.action === 'policy.reload' && e.policy_version === loaded.version));
    expect(event).toMatchObject({ actor: { user: 'system:file-watch' }, details: { trigger: 'file-change', version: loaded.version, previous_version: serving, files: { 'policy.csv': sha('policy.csv'), 'model.conf': sha('model.conf'), 'tests.yaml': sha('tests.yaml') } } });
  });

  it('a tautological model is refused while the old version serves: a stranger stays denied', async () => {
    const modelFile = join(stack.policies, 'model.conf');
    const serving = (await stack.api('/v1/policy', bob)).json<{ version: string }>().version;
    writeFileSync(modelFile, withMatcher(TAUTOLOGIES[0]!));
    try {
      const shown = await until(async () => {
        const b = (await stack.api('/v1/policy', bob)).json<{ version: string; last_reload: { outcome: string; problems: { file: string; message: string }[] } }>();
        return b.last_reload.outcome === 'failed' && b.last_reload.problems[0]?.file === 'model.conf' ? b : undefined;
      });
      expect(shown.version).toBe(serving);
      expect(shown.last_reload.problems.map((p) => p.message).join('\n')).toMatch(/constant true, which makes it true whatever the policy lines say[\s\S]*can be true without a policy line/);
      const carol = await stack.login('carol'); // auditors: no dataset rights
      expect((await stack.api('/v1/datasets', carol)).json<{ datasets: unknown[] }>().datasets).toEqual([]);
    } finally {
      writeFileSync(modelFile, MODEL);
    }
  });
});
