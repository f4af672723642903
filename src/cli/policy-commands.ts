// `gatehouse policy lint|test|explain|diff|reload|status`: IT's tools. lint, test, explain and diff
// read the files (--dir, default policies/) without a gateway, so they run in the policy
// repository's CI; reload and status ask the running gateway, and explain does too with --remote.
import { structured } from './output.js';
import { resolve } from 'node:path';
import {
  diffPolicies,
  explain,
  type Explanation,
  formatProblem,
  type PolicyProblem,
  lintPolicy,
  loadPolicy,
  QUOTA_LIMITS,
  readPolicyTests,
  runPolicyTests,
} from '../policy/index.js';
import { call, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { UsageError } from './fail.js';
import { printLine, printNote } from './safe-text.js';
import { table } from './table.js';

// Policy lines, names and the gateway's answers are data: printed escaped (src/cli/safe-text.ts).
const out = printLine;
const err = printNote;

export interface PolicyOptions {
  dir: string;
  json: boolean;
  groups?: string[];
  labels?: string[];
  remote: boolean;
  target: () => Target;
}

export async function policyCommand(sub: string | undefined, args: string[], options: PolicyOptions): Promise<number> {
  switch (sub) {
    case 'lint':
      return lint(options);
    case 'test':
      return test(options);
    case 'explain':
      return explainCommand(args, options);
    case 'diff':
      return diff(args, options);
    case 'reload':
      return reload(options);
    case 'status':
      return policyStatus(options);
    default:
      throw new UsageError(`policy ${sub ?? ''}: choose lint, test, explain, diff, reload or status`.replace('policy :', 'policy:'));
  }
}

async function lint(options: PolicyOptions): Promise<number> {
  const { problems, snapshot } = await lintPolicy(options.dir);
  const errors = problems.filter((p) => p.severity === 'error').length;
  if (options.json) {
    out(structured({ valid: errors === 0, dir: options.dir, version: snapshot?.version ?? null, problems }));
    return errors === 0 ? 0 : 1;
  }
  for (const p of problems) (p.severity === 'error' ? err : out)(formatProblem(p));
  if (snapshot) {
    const c = snapshot.counts;
    out(`${options.dir}: valid, version ${snapshot.version}: ${c.rules} rules, ${c.role_links} role links, ${c.label_links} label links, ${c.quota_lines} quota lines${problems.length ? `, ${problems.length} warning(s)` : ''}`);
    return 0;
  }
  err(`${options.dir}: ${errors} error(s); a gateway would keep serving its previous version`);
  return 1;
}

async function test(options: PolicyOptions): Promise<number> {
  const policy = await loadPolicy(options.dir);
  const { cases, problems } = await readPolicyTests(options.dir);
  if (problems.length > 0) {
    for (const p of problems) err(formatProblem(p));
    return 1;
  }
  const results = runPolicyTests(policy, cases);
  const failed = results.filter((r) => !r.passed).length;
  if (options.json) out(structured({ version: policy.version, passed: results.length - failed, failed, results }));
  else {
    out(table(['', 'case', 'expected', 'got', 'decided by'], results.map((r) => [r.passed ? 'PASS' : 'FAIL', r.name, r.expected, r.got, r.detail])));
    out(`\n${results.length - failed} passed, ${failed} failed (tests.yaml against version ${policy.version})`);
  }
  return failed === 0 && results.length > 0 ? 0 : 1;
}

async function explainCommand(args: string[], options: PolicyOptions): Promise<number> {
  const [user, action, object] = args;
  if (!user || !action || !object || args.length > 3) throw new UsageError('usage: gatehouse policy explain <user> <action> <object> [--groups a,b] [--labels pii] [--dir DIR | --remote]');
  let e: Explanation & { groups_source?: string; labels_source?: string };
  if (options.remote) {
    const target = options.target();
    e = await call(target, 'POST', '/v1/policy/explain', { token: await accessToken(target), body: { user, action, object, ...(options.groups ? { groups: options.groups } : {}), ...(options.labels ? { labels: options.labels } : {}) } });
  } else {
    // Offline, the files do not know anyone's groups: a silent "none" reads as a real denial.
    if (options.groups === undefined) err(`note: no --groups given, so ${user} is taken to be in no group; pass --groups, or ask the gateway with --remote (their groups from their latest login)`);
    e = explain(await loadPolicy(options.dir), { user, groups: options.groups ?? [] }, object, action, options.labels ?? []);
  }
  if (options.json) {
    out(structured(e));
    return 0;
  }
  out(`${e.decision.allowed ? 'ALLOWED' : 'DENIED'}: ${user} ${action} ${object}`);
  out(`  ${e.summary}`);
  const labelsNote = e.labels.length ? `; labels: ${e.labels.join(', ')}${e.labels_source ? ` (${e.labels_source})` : ''}` : !options.remote && object.startsWith('dataset:') ? '; no manifest labels offline (pass --labels, or ask the gateway with --remote)' : '';
  out(`  groups: ${e.groups.join(', ') || '(none)'}${e.groups_source ? ` (${e.groups_source})` : ''}${labelsNote}`);
  if (e.matched.length === 0) out('  no rule matched');
  for (const m of e.matched) {
    const mark = m.line === e.deciding?.line ? '→' : ' ';
    out(`${mark} ${m.effect.padEnd(5)} ${m.line}  ${m.rule}`);
    out(`        via ${m.subject_chain.join(' → ')}${m.object_chain.length > 1 ? `; ${m.object_chain.join(' → ')}` : ''}`);
  }
  out(`quota for ${user} (version ${e.decision.policyVersion}):`);
  out(
    table(
      ['  limit', 'value', 'from', 'via'],
      QUOTA_LIMITS.map((l) => {
        const d = e.quota.detail[l];
        const from = d.source === 'built-in' ? 'built-in default' : `${d.source === 'role' ? 'most generous role' : d.source === 'user' ? 'user line (wins)' : 'default'}: ${d.line}`;
        return [`  ${l}`, String(d.value), from, d.via.join(' → ')];
      }),
    ),
  );
  return 0;
}

async function diff(args: string[], options: PolicyOptions): Promise<number> {
  if (args.length !== 2) throw new UsageError('usage: gatehouse policy diff <old-dir> <new-dir>');
  const [before, after] = await Promise.all(args.map((d) => loadPolicy(resolve(d!))));
  const d = diffPolicies(before!, after!);
  if (options.json) {
    out(structured(d));
    return 0;
  }
  out(`access changes from ${d.from_version} (${args[0]}) to ${d.to_version} (${args[1]}):`);
  if (d.summary.length === 0) out('  none');
  for (const line of d.summary) out(`  ${line}`);
  if (d.changes.length > 0) {
    out('');
    out(table(['change', 'subject', 'action', 'object', 'rule'], d.changes.map((c) => [c.change, c.subject, c.action, c.object, c.rule ?? ''])));
  }
  return 0;
}

async function reload(options: PolicyOptions): Promise<number> {
  const target = options.target();
  const o = await call<{ outcome: string; version: string; previous_version: string; duration_ms: number; problems: { file: string; line: number | null; message: string; severity: string }[] }>(target, 'POST', '/v1/policy/reload', { token: await accessToken(target), body: {} });
  if (options.json) out(structured(o));
  else if (o.outcome === 'unchanged') out(`version ${o.version} is already serving`);
  else out(`version ${o.version} now serving (was ${o.previous_version}), loaded in ${o.duration_ms} ms`);
  return 0;
}

interface PolicyState {
  version: string;
  loaded_at: string;
  dir: string;
  counts: { rules: number; role_links: number; label_links: number; quota_lines: number };
  warnings: PolicyProblem[];
  last_reload: { outcome: 'loaded' | 'unchanged' | 'failed'; version: string; attempted_version: string | null; trigger: { by: string; user?: string }; at: string; duration_ms: number; problems: PolicyProblem[] };
}

/** What the gateway serves (GET /v1/policy); exit 1 when its latest reload was refused, so the files are not what serves. */
async function policyStatus(options: PolicyOptions): Promise<number> {
  const target = options.target();
  const s = await call<PolicyState>(target, 'GET', '/v1/policy', { token: await accessToken(target) });
  const refused = s.last_reload.outcome === 'failed';
  if (options.json) {
    out(structured(s));
    return refused ? 1 : 0;
  }
  const c = s.counts;
  out(`serving version ${s.version} since ${s.loaded_at} (${s.dir} on the gateway)`);
  out(`  ${c.rules} rules, ${c.role_links} role links, ${c.label_links} label links, ${c.quota_lines} quota lines`);
  const r = s.last_reload;
  const by = r.trigger.by === 'api' ? `asked by ${r.trigger.user ?? 'an admin'}` : r.trigger.by;
  if (refused) out(`last reload REFUSED at ${r.at} (${by}): version ${r.attempted_version ?? '(unreadable)'} has errors; ${s.version} keeps serving`);
  else out(`last reload ${r.outcome} at ${r.at} (${by}) in ${r.duration_ms} ms`);
  // A success's problems are the serving version's warnings, listed below.
  if (refused) for (const p of r.problems) out(`  ${formatProblem(p)}`);
  if (s.warnings.length > 0) out('warnings in the serving version:');
  for (const w of s.warnings) out(`  ${formatProblem(w)}`);
  return refused ? 1 : 0;
}
