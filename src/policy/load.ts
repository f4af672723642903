// Reads policies/ (model.conf and policy.csv), checks every line, and builds a snapshot beside
// whatever is serving. Large files are read in slices with pauses between them, so a reload of
// 100,000 lines does not stall the requests being decided meanwhile.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as pause } from 'node:timers/promises';
import { type PolicyLine, readLines } from './lines.js';
import { MODEL_FILE, readModel } from './model.js';
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
  return { model: model.value, policy: policy.value };
}

/** The version: a content hash of both files, so the same files are the same version anywhere. */
export function policyVersion(files: PolicyFiles): string {
  return createHash('sha256').update(MODEL_FILE).update('\0').update(files.model).update('\0').update(POLICY_FILE).update('\0').update(files.policy).digest('hex').slice(0, 16);
}

/** Checks the files completely; builds the snapshot only if nothing is wrong. */
export async function lintFiles(dir: string, files: PolicyFiles, options: { yieldEvery?: number } = {}): Promise<LintResult> {
  const problems: PolicyProblem[] = [];
  const model = readModel(files.model, problems);
  if (!model) return { problems };

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
  const snapshot = new PolicySnapshot(policyVersion(files), new Date(), dir, model, lines, rules, graphs, index, quotas, problems);
  return { problems, snapshot };
}

export async function lintPolicy(dir: string): Promise<LintResult> {
  try {
    return await lintFiles(dir, await readPolicyFiles(dir));
  } catch (err) {
    if (err instanceof PolicyError) return { problems: err.problems };
    throw err;
  }
}

/** Loads a policy folder, or throws PolicyError with every problem found. */
export async function loadPolicy(dir: string, options: { yieldEvery?: number } = {}): Promise<PolicySnapshot> {
  const result = await lintFiles(dir, await readPolicyFiles(dir), options);
  if (!result.snapshot) throw new PolicyError(result.problems);
  return result.snapshot;
}
