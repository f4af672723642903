// What the console shows a person: each page and button with the policy question that opens it.
// Asked of the same Authorizer the API enforces with, on the serving version, so the console never
// guesses; the API still decides every request itself. A page on the caller's own things (their
// datasets, jobs, quota, certificate) needs no grant: `own`.
import type { Authorizer, Subject } from '../identity/index.js';

export interface Capability {
  name: string;
  kind: 'page' | 'button';
  /** The person's own things: shown to everyone signed in. */
  own?: true;
  /** Else: shown when any of these is allowed. */
  anyOf?: { object: string; action: string }[];
}

export const CAPABILITIES: readonly Capability[] = [
  // The data scientist's pages: each acts on the caller's own things (the API filters and decides).
  { name: 'datasets', kind: 'page', own: true },
  { name: 'jobs', kind: 'page', own: true },
  { name: 'submit', kind: 'page', own: true },
  { name: 'quota', kind: 'page', own: true },
  { name: 'certificate', kind: 'page', own: true },
  { name: 'cancel_own_job', kind: 'button', own: true },
  // The auditor's and IT's pages, each behind the grant its API route asks for.
  { name: 'audit', kind: 'page', anyOf: [{ object: 'audit:events', action: 'read' }] },
  { name: 'lineage', kind: 'page', anyOf: [{ object: 'audit:events', action: 'read' }] },
  { name: 'export_audit', kind: 'button', anyOf: [{ object: 'audit:events', action: 'read' }] },
  { name: 'policy', kind: 'page', anyOf: [{ object: 'policy:files', action: 'read' }] },
  { name: 'can_i', kind: 'page', anyOf: [{ object: 'policy:files', action: 'read' }] },
  { name: 'reload_policy', kind: 'button', anyOf: [{ object: 'policy:files', action: 'admin' }] },
  { name: 'usage', kind: 'page', anyOf: [{ object: 'job:all', action: 'read' }, { object: 'job:all', action: 'admin' }] },
  { name: 'cancel_any_job', kind: 'button', anyOf: [{ object: 'job:all', action: 'admin' }] },
  // cert:all, as GET /v1/certs?all=1 asks (a concrete object: `cert:*` is a pattern, never decided).
  { name: 'certificates', kind: 'page', anyOf: [{ object: 'cert:all', action: 'read' }, { object: 'cert:all', action: 'admin' }] },
  { name: 'revoke_certificate', kind: 'button', anyOf: [{ object: 'cert:all', action: 'admin' }] },
  { name: 'chains', kind: 'page', anyOf: [{ object: 'audit:chains', action: 'read' }] },
];

export interface CapabilityAnswer {
  user: string;
  groups: string[];
  policy_version: string;
  pages: string[];
  buttons: string[];
  /** For each shown page or button that policy opened: the rule that did (people ask why they see it). */
  rules: Record<string, string>;
}

export function capabilitiesOf(subject: Subject, authorizer: Authorizer): CapabilityAnswer {
  const pages: string[] = [];
  const buttons: string[] = [];
  const rules: Record<string, string> = {};
  for (const c of CAPABILITIES) {
    let shown = c.own === true;
    for (const need of c.anyOf ?? []) {
      const decision = authorizer.decide(subject, need.object, need.action);
      if (decision.allowed) {
        shown = true;
        if (decision.rule) rules[c.name] = decision.rule;
        break;
      }
    }
    if (shown) (c.kind === 'page' ? pages : buttons).push(c.name);
  }
  return { user: subject.user, groups: [...subject.groups], policy_version: authorizer.version(), pages, buttons, rules };
}
