// policies/tests.yaml: the cases IT writes next to the policy, run by `gatehouse policy test` in
// their CI. A case is a decision with its expected outcome (and optionally the rule that must
// decide it), or a user's expected quota:
//   - user: dave
//     groups: [contractors]
//     object: dataset:customers
//     action: read
//     expect: deny
//   - user: alice
//     groups: [analysts]
//     quota: { max_cores: 8 }
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Type from 'typebox';
import { Value } from 'typebox/value';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { decideUncached } from './decide.js';
import { resolveQuota } from './explain.js';
import type { PolicyProblem } from './problems.js';
import type { PolicySnapshot } from './snapshot.js';
import { ACTIONS, objectProblem, QUOTA_LIMITS } from './vocabulary.js';

export const TESTS_FILE = 'tests.yaml';

const Name = Type.String({ minLength: 1, maxLength: 256 });
const Case = Type.Object(
  {
    name: Type.Optional(Type.String()),
    user: Name,
    groups: Type.Optional(Type.Array(Name)),
    labels: Type.Optional(Type.Array(Name)),
    object: Type.Optional(Type.String()),
    action: Type.Optional(Type.Union(ACTIONS.map((a) => Type.Literal(a)))),
    expect: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')])),
    /** The deciding line's text (`p, role:..., deny`) or place (`policy.csv:31`). */
    rule: Type.Optional(Type.String()),
    quota: Type.Optional(Type.Object(Object.fromEntries(QUOTA_LIMITS.map((l) => [l, Type.Optional(Type.Number({ minimum: 0 }))])), { additionalProperties: false })),
  },
  { additionalProperties: false },
);
type CaseBody = Type.Static<typeof Case>;

export interface PolicyTestCase extends CaseBody {
  /** Where the case starts in tests.yaml. */
  line: number;
}

export interface PolicyTestResult {
  name: string;
  line: number;
  passed: boolean;
  expected: string;
  got: string;
  /** The rule that decided, or the quota lines, for the table. */
  detail: string;
}

export async function readPolicyTests(dir: string): Promise<{ cases: PolicyTestCase[]; problems: PolicyProblem[] }> {
  let text: string;
  try {
    text = await readFile(join(dir, TESTS_FILE), 'utf8');
  } catch (err) {
    return { cases: [], problems: [{ severity: 'error', file: TESTS_FILE, line: null, message: `cannot read ${join(dir, TESTS_FILE)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] };
  }
  return parsePolicyTests(text);
}

export function parsePolicyTests(text: string): { cases: PolicyTestCase[]; problems: PolicyProblem[] } {
  const problems: PolicyProblem[] = [];
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  const at = (offset: number | undefined) => (offset === undefined ? null : counter.linePos(offset).line);
  for (const e of doc.errors) problems.push({ severity: 'error', file: TESTS_FILE, line: at(e.pos[0]), message: e.message.split('\n')[0]! });
  if (problems.length > 0) return { cases: [], problems };
  let seq = doc.contents;
  if (isMap(seq) && seq.has('tests')) seq = seq.get('tests', true) as unknown as typeof seq;
  if (!isSeq(seq)) return { cases: [], problems: [{ severity: 'error', file: TESTS_FILE, line: null, message: 'tests.yaml must be a list of cases (or `tests:` with a list)' }] };
  const cases: PolicyTestCase[] = [];
  for (const item of seq.items) {
    const line = at((item as unknown as { range?: number[] }).range?.[0]) ?? 0;
    const body = (item as { toJSON(): unknown }).toJSON();
    const fail = (message: string) => problems.push({ severity: 'error', file: TESTS_FILE, line, message });
    if (!Value.Check(Case, body)) {
      const first = [...Value.Errors(Case, body)][0];
      fail(`invalid case${first ? `: ${first.instancePath || '(case)'} ${first.message}` : ''}`);
      continue;
    }
    const c = body as CaseBody;
    const decisionCase = c.object !== undefined || c.action !== undefined || c.expect !== undefined;
    if (decisionCase && (c.object === undefined || c.action === undefined || c.expect === undefined)) fail('a decision case needs object, action and expect');
    else if (!decisionCase && c.quota === undefined) fail('a case needs object, action and expect, or quota');
    else if (c.object !== undefined && objectProblem(c.object)) fail(`object: ${objectProblem(c.object)}`);
    else cases.push({ ...c, line });
  }
  return { cases, problems };
}

export function runPolicyTests(policy: PolicySnapshot, cases: readonly PolicyTestCase[]): PolicyTestResult[] {
  const results: PolicyTestResult[] = [];
  for (const c of cases) {
    const subject = { user: c.user, groups: c.groups ?? [] };
    const who = `${c.user}${c.groups?.length ? ` [${c.groups.join(', ')}]` : ''}`;
    if (c.object !== undefined && c.action !== undefined && c.expect !== undefined) {
      const d = decideUncached(policy, subject, c.object, c.action, c.labels ?? []);
      const got = d.allowed ? 'allow' : 'deny';
      const ruleOk = c.rule === undefined || c.rule === d.rule || c.rule === d.line;
      results.push({
        name: c.name ?? `${who} ${c.action} ${c.object}`,
        line: c.line,
        passed: got === c.expect && ruleOk,
        expected: c.expect + (c.rule ? ` by ${c.rule}` : ''),
        got: got + (c.rule && !ruleOk ? ` by ${d.line ?? 'no rule'}` : ''),
        detail: d.line ?? 'no rule grants it',
      });
    }
    if (c.quota) {
      const { limits, detail } = resolveQuota(policy, subject);
      const wrong = Object.entries(c.quota).filter(([k, v]) => limits[k as keyof typeof limits] !== v);
      const keys = Object.keys(c.quota) as (keyof typeof limits)[];
      results.push({
        name: c.name ?? `${who} quota`,
        line: c.line,
        passed: wrong.length === 0,
        expected: keys.map((k) => `${k} ${c.quota![k]}`).join(', '),
        got: wrong.length === 0 ? 'as expected' : keys.map((k) => `${k} ${limits[k]}`).join(', '),
        detail: [...new Set(keys.map((k) => detail[k].line?.split(':').slice(0, 2).join(':') ?? 'built-in'))].join(', '),
      });
    }
  }
  return results;
}
