// What lint finds, and the error a load throws when it finds anything it cannot serve.

export interface PolicyProblem {
  severity: 'error' | 'warning';
  /** The file's name inside the policy folder: model.conf or policy.csv. */
  file: string;
  /** 1-based; null when the problem belongs to the file as a whole. */
  line: number | null;
  message: string;
  /** What to do about it, when there is something to say. */
  hint?: string;
}

/** `policy.csv:12: error: ... (hint: ...)`, the line lint prints and logs carry. */
export function formatProblem(p: PolicyProblem): string {
  return `${p.file}${p.line === null ? '' : `:${p.line}`}: ${p.severity}: ${p.message}${p.hint ? ` (hint: ${p.hint})` : ''}`;
}

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  constructor(
    readonly problems: PolicyProblem[],
    message = summarize(problems),
  ) {
    super(message);
  }
}

function summarize(problems: PolicyProblem[]): string {
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors[0] ?? problems[0];
  if (!first) return 'invalid policy';
  return errors.length > 1 ? `${formatProblem(first)} (and ${errors.length - 1} more)` : formatProblem(first);
}
