// Reads policies/ (model.conf and policy.csv), checks every line, and builds a snapshot beside
// whatever is serving. Large files are read in slices with pauses between them, so a reload of
// 100,000 lines does not stall the requests being decided meanwhile.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as pause } from 'node:timers/promises';
import { conformanceProblems } from './conformance.js';
import { type PolicyLine, readLines } from './lines.js';
import { MODEL_FILE, type PolicyModel, readModel } from './model.js';
import { effectProblem, matcherProblems } from './model-safety.js';
import { parsePolicyTests, runPolicyTests, TESTS_FILE } from './policy-tests.js';
import { PolicyError, type PolicyProblem } from './problems.js';
import { QuotaTable } from './quotas.js';
import { RoleGraph } from './roles.js';
import { RuleIndex } from './rule-index.js';
import { PolicySnapshot } from './snapshot.js';
import { checkLine, checkWhole, POLICY_FILE } from './validate.js';

export { MODEL_FILE, POLICY_FILE };

export interface PolicyFiles {
  model: string;
  policy: string;
  /** tests.yaml: its text, null when the folder has none, absent when not read. */
  tests?: string | null;
}

export interface LintOptions {
  /** Rules per slice of a load, between which the event loop serves requests. */
  yieldEvery?: number;
  /** Run tests.yaml (when read) and refuse the version if a case fails. Default true. */
  tests?: boolean;
  /**
   * Skip the model's safety and conformance checks. Only for comparing the evaluator with stock
   * Casbin on models lint refuses (test/policy-differential.test.ts); nothing serves with it.
   */
  trustModel?: boolean;
}

export interface LintResult {
  problems: PolicyProblem[];
  /** Present when there is no error: the version lint checked. */
  snapshot?: PolicySnapshot;
}

export async function readPolicyFiles(dir: string): Promise<PolicyFiles> {
  const read = (name: string) => readFile(join(dir, name), 'utf8');
  // Both settled and reported in file order: whichever read failed first must not decide the message.
  const [model, policy] = await Promise.allSettled([read(MODEL_FILE), read(POLICY_FILE)]);
  const problems: PolicyProblem[] = [];
  for (const [name, result] of [[MODEL_FILE, model], [POLICY_FILE, policy]] as const) {
    if (result.status === 'fulfilled') continue;
    const code = (result.reason as NodeJS.ErrnoException).code ?? String(result.reason);
    const problem: PolicyProblem = { severity: 'error', file: name, line: null, message: `cannot read ${join(dir, name)}: ${code}` };
    if (code === 'ENOENT') problem.hint = `policies.dir is ${dir}; it needs ${MODEL_FILE} and ${POLICY_FILE}`;
    problems.push(problem);
  }
  if (model.status === 'rejected' || policy.status === 'rejected') throw new PolicyError(problems);
  let tests: string | null = null;
  try {
    tests = await read(TESTS_FILE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new PolicyError([{ severity: 'error', file: TESTS_FILE, line: null, message: `cannot read ${join(dir, TESTS_FILE)}: ${code ?? String(err)}` }]);
  }
  return { model: model.value, policy: policy.value, tests };
}

/** SHA-256 of each file as read, for the audit trail (null: the folder has no tests.yaml). */
export function fileHashes(files: PolicyFiles): Record<string, string | null> {
  const sha = (text: string) => createHash('sha256').update(text).digest('hex');
  return { [MODEL_FILE]: sha(files.model), [POLICY_FILE]: sha(files.policy), [TESTS_FILE]: files.tests == null ? null : sha(files.tests) };
}

/** The version: a content hash of both files, so the same files are the same version anywhere. */
export function policyVersion(files: PolicyFiles): string {
  return createHash('sha256').update(MODEL_FILE).update('\0').update(files.model).update('\0').update(POLICY_FILE).update('\0').update(files.policy).digest('hex').slice(0, 16);
}

/**
 * Checks the files completely: the model's shape and effect, every line, the model against stock
 * Casbin, then tests.yaml; builds the snapshot only if nothing is wrong.
 */
export async function lintFiles(dir: string, files: PolicyFiles, options: LintOptions = {}): Promise<LintResult> {
  const problems: PolicyProblem[] = [];
  const model = readModel(files.model, problems);
  if (!model) return { problems };
  const modelLine = (re: RegExp) => {
    const i = files.model.split('\n').findIndex((l) => re.test(l));
    return i < 0 ? null : i + 1;
  };
  const refuse = (message: string, re: RegExp, hint?: string) => problems.push({ severity: 'error', file: MODEL_FILE, line: modelLine(re), message, ...(hint ? { hint } : {}) });
  if (!options.trustModel) {
    const effect = effectProblem(model);
    if (effect) refuse(effect, /^\s*e\s*=/, 'use "some(where (p.eft == allow)) && !some(where (p.eft == deny))": allowed when an allow rule matches and no deny does');
    for (const m of matcherProblems(model)) refuse(m, /^\s*m\s*=/, 'the shipped matcher is g(r.sub, p.sub) && (userKeyMatch(r.obj, p.obj, r.sub) || g2(r.obj, p.obj)) && r.act == p.act');
    if (problems.length > 0) return { problems };
  }
  const result = await build(dir, files, model, options);
  if (!result.snapshot) return result;
  if (!options.trustModel) {
    const found = await conformanceProblems(files.model, result.snapshot, files.policy, async (policy) => build(dir, { model: files.model, policy }, model, {}));
    if (found.length > 0) {
      for (const m of found) refuse(m, /^\s*m\s*=/, 'use the canonical matcher (subject by role, object by pattern or label, action by equality) and an effect that allows only on an allow rule');
      return { problems: [...result.problems, ...problems] };
    }
  }
  // A folder read without tests.yaml (null) fails here: deleting the file must not turn the tests
  // off (policies.require_tests). Absent (undefined) means the caller did not read the folder.
  if (options.tests !== false && files.tests !== undefined) {
    const failures = testProblems(result.snapshot, files.tests);
    if (failures.length > 0) return { problems: [...result.problems, ...failures] };
  }
  return result;
}

const NO_TESTS_HINT = `add ${TESTS_FILE} with the cases this policy must decide (policies/${TESTS_FILE} in the distribution is an example), or set policies.require_tests: false in the gateway's config to serve without tests`;

/** tests.yaml (null: the folder has none) run against a built version: a problem per missing, unreadable or failing case. */
export function testProblems(snapshot: PolicySnapshot, text: string | null): PolicyProblem[] {
  if (text === null) return [{ severity: 'error', file: TESTS_FILE, line: null, message: `policies.require_tests is on but ${TESTS_FILE} is missing`, hint: NO_TESTS_HINT }];
  // Nothing but blank lines and comments: no cases, said as such.
  const { cases, problems } = /^[ \t]*[^#\s]/m.test(text) ? parsePolicyTests(text) : { cases: [], problems: [] };
  if (problems.length > 0) return problems.map((p) => ({ ...p, severity: 'error' as const, message: `${p.message} (the policy's tests cannot be read, so the version is not served)` }));
  if (cases.length === 0) return [{ severity: 'error', file: TESTS_FILE, line: null, message: `policies.require_tests is on but ${TESTS_FILE} has no cases`, hint: NO_TESTS_HINT }];
  return runPolicyTests(snapshot, cases)
    .filter((r) => !r.passed)
    .map((r) => ({ severity: 'error' as const, file: TESTS_FILE, line: r.line || null, message: `test "${r.name}" fails: expected ${r.expected}, got ${r.got} (${r.detail})`, hint: 'fix the policy, or the case if the change is meant; the previous version keeps serving meanwhile' }));
}

/** Reads and checks the lines with a parsed model; builds the snapshot only if nothing is wrong. */
async function build(dir: string, files: PolicyFiles, model: PolicyModel, options: LintOptions): Promise<LintResult> {
  const problems: PolicyProblem[] = [];
  const lines: PolicyLine[] = [];
  const rules: PolicyLine[] = [];
  const graphs = new Map(model.roleTypes.map((g) => [g, new RoleGraph()]));
  const quotas = new QuotaTable();
  const ruleTexts = new Set<string>();
  const report = (line: number, message: string, hint?: string, severity: 'error' | 'warning' = 'error') => problems.push({ severity, file: POLICY_FILE, line, message, ...(hint ? { hint } : {}) });
  const slices = options.yieldEvery ? { chunk: options.yieldEvery, pause: () => pause() } : {};
  await readLines(
    POLICY_FILE,
    files.policy,
    (type, fields, line) => {
      if (!checkLine(model, type, fields, line, report)) return;
      const l: PolicyLine = { id: lines.length, type, fields, file: POLICY_FILE, line };
      lines.push(l);
      // A repeated rule decides nothing new (lint warns about it); the index keeps the first.
      if (type === 'p') {
        const text = fields.join('\0');
        if (!ruleTexts.has(text)) {
          ruleTexts.add(text);
          rules.push(l);
        }
      }
      else if (type === 'p2') quotas.add(l);
      else graphs.get(type)?.addLink(fields[0]!, fields[1]!, { file: POLICY_FILE, line });
    },
    (p) => report(p.line, p.message),
    slices,
  );
  await checkWhole(model, lines, graphs, problems, slices);
  problems.sort((a, b) => (a.file === b.file ? (a.line ?? 0) - (b.line ?? 0) : a.file < b.file ? -1 : 1));
  if (problems.some((p) => p.severity === 'error')) return { problems };

  const index = await RuleIndex.build(
    model.matcher.plan,
    rules.map((r) => r.fields),
    options.yieldEvery ? () => pause() : undefined,
    options.yieldEvery,
  );
  const snapshot = new PolicySnapshot(policyVersion(files), new Date(), dir, model, lines, rules, graphs, index, quotas, problems, { model: files.model, policy: files.policy });
  return { problems, snapshot };
}

/** `gatehouse policy lint`: everything a reload checks, tests.yaml included. */
export async function lintPolicy(dir: string, options: LintOptions = {}): Promise<LintResult> {
  try {
    return await lintFiles(dir, await readPolicyFiles(dir), options);
  } catch (err) {
    if (err instanceof PolicyError) return { problems: err.problems };
    throw err;
  }
}

/** Loads a policy folder, or throws PolicyError with every problem found. */
export async function loadPolicy(dir: string, options: LintOptions = {}): Promise<PolicySnapshot> {
  // tests.yaml is `gatehouse policy test`'s to run and report here; a reload runs it itself.
  const result = await lintFiles(dir, await readPolicyFiles(dir), { tests: false, ...options });
  if (!result.snapshot) throw new PolicyError(result.problems);
  return result.snapshot;
}
