// `gatehouse can-i ACTION OBJECT`: may I? Asked of the gateway (POST /v1/policy/explain), which
// decides with the caller's real groups from the token and the dataset's manifest labels, so the
// answer is the one a real request would get. yes/no on stdout and as the exit code (0/1), for
// scripts; the deciding rule on stderr, for the person.
import { structured } from './output.js';
import type { Explanation } from '../policy/index.js';
import { call, type Target } from './client/api.js';
import { loadLogin } from './client/credentials.js';
import { accessToken } from './client/session.js';
import { EXIT } from './exit-codes.js';
import { printLine, printNote } from './safe-text.js';

export interface CanIOptions {
  action: string;
  object: string;
  /** Someone else's access (the gateway requires read on policy:files for that). */
  as?: string | undefined;
  groups?: string[] | undefined;
  labels?: string[] | undefined;
  json: boolean;
}

type Answer = Explanation & { groups_source?: string; labels_source?: string };

export async function canI(target: Target, o: CanIOptions): Promise<number> {
  const token = await accessToken(target); // refuses first when not logged in
  const user = o.as ?? loadLogin(target)!.user;
  const body = { user, action: o.action, object: o.object, ...(o.groups ? { groups: o.groups } : {}), ...(o.labels ? { labels: o.labels } : {}) };
  const e = await call<Answer>(target, 'POST', '/v1/policy/explain', { token, body });
  const allowed = e.decision.allowed;
  if (o.json) {
    printLine(structured({ allowed, user: e.user, action: e.action, object: e.object, groups: e.groups, labels: e.labels, rule: e.decision.rule, line: e.decision.line, reason: e.decision.reason, policy_version: e.decision.policyVersion }));
  } else {
    printLine(allowed ? 'yes' : 'no');
    printNote(decidedBy(e));
  }
  return allowed ? EXIT.ok : EXIT.failure;
}

/** `allowed by policy.csv:12: p, role:analysts, dataset:customers, read` (or why nothing allowed). */
export function decidedBy(e: Answer): string {
  const who = `${e.user} (${e.groups.join(', ') || 'no groups'}${e.groups_source === 'last-login' ? ', as of their latest login' : ''})`;
  const verdict = e.decision.allowed ? 'allowed' : 'denied';
  if (e.deciding) return `${verdict} by ${e.deciding.line}: ${e.deciding.rule}\n  for ${who} via ${e.deciding.subject_chain.join(' → ')}; policy version ${e.decision.policyVersion}`;
  return `${verdict}: ${e.summary}\n  for ${who}; policy version ${e.decision.policyVersion}`;
}
