// The answer to "may this subject do this?", as every room sees it: the policy room produces it,
// routes and the job path act on it, the audit trail records its reason and version.

export interface Decision {
  allowed: boolean;
  /** The policy line that decided, e.g. `p, role:analysts, dataset:transactions, read, allow`; null when no rule did. */
  rule: string | null;
  /** Where that line is, e.g. `policy.csv:12`. */
  line: string | null;
  reason: string;
  policyVersion: string;
}

export interface DecideOptions {
  /** The dataset's labels from its manifest (`pii`): they count as object links. */
  labels?: readonly string[];
}
